"""signgate.client on a real stack: dev server, sandbox over HTTP, the engine's worker."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from signgate.client import (
    InvalidSignatureInput,
    NotRunning,
    RequestNotFound,
    SignatureHandle,
    SigngateClient,
)
from signgate.contracts import PollingPolicy, SignatureOutcome, SignatureProgress
from signgate.dfns.requests import HashRequest
from tests.support.engine_worker import RunningWorker
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox

pytestmark = pytest.mark.e2e

FAST = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2))


def _hash() -> HashRequest:
    return HashRequest(hash=uuid.uuid4().hex * 2)


def _id(what: str) -> str:
    return f"client-{what}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def signgate(worker: RunningWorker) -> SigngateClient:
    return SigngateClient(worker.client, task_queue=worker.task_queue)


async def test_an_ungated_key_is_signed_within_the_wait(
    signgate: SigngateClient, sandbox: EngineSandbox
) -> None:
    result = await signgate.sign(
        sandbox.target("key", "evm-auto"),
        _hash(),
        request_id=_id("auto"),
        wait=timedelta(seconds=30),
        polling=FAST,
    )
    assert isinstance(result, SignatureOutcome)
    assert result.kind == "signed"
    assert result.verification is not None and result.verification.status == "verified"


async def test_a_gated_key_gives_a_handle_that_resolves_after_approval(
    signgate: SigngateClient, sandbox: EngineSandbox
) -> None:
    request_id = _id("gated")
    target, request = sandbox.target("key", "evm-gated"), _hash()
    result = await signgate.sign(
        target, request, request_id=request_id, wait=timedelta(seconds=5), polling=FAST
    )
    assert isinstance(result, SignatureHandle)
    assert result.started and result.request_id == request_id

    # The same request id again attaches: nothing new starts, no second Dfns request.
    again = await signgate.sign(
        target, request, request_id=request_id, wait=timedelta(seconds=1), polling=FAST
    )
    assert isinstance(again, SignatureHandle) and not again.started

    seen: list[SignatureProgress] = []
    follow = result.progress(every=timedelta(milliseconds=200))

    async def pending_approval() -> SignatureProgress | None:
        state = await anext(follow)
        seen.append(state)
        return state if state.approval_id is not None else None

    waiting = await eventually(pending_approval, what="the approval to be known")
    assert waiting.status == "Pending"
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        for name in ("alice", "bob"):
            status = await signgate.approve(
                request_id, sandbox.dfns_client(name, http), reason=f"ok by {name}"
            )
        assert status == "Approved"
    async for state in follow:
        seen.append(state)
    outcome = await result.outcome()
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    statuses = [str(s.status) for s in seen]
    assert statuses[-1] in ("Signed", "Confirmed"), statuses
    assert "Pending" in statuses[:-1], statuses

    found = await sandbox.signatures_with_external_id("evm-gated", outcome.external_id)
    assert found == [outcome.signature_id]
    # After it settled: a retry returns the same outcome, and a decision is refused clearly.
    settled = await signgate.sign(
        target, request, request_id=request_id, wait=timedelta(seconds=5), polling=FAST
    )
    assert isinstance(settled, SignatureOutcome) and settled.signature_id == outcome.signature_id
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        with pytest.raises(NotRunning):
            await signgate.deny(request_id, sandbox.dfns_client("alice", http))
    summaries = {s.request_id: s for s in await signgate.list(limit=200)}
    assert request_id in summaries


async def test_deny_and_cancel_end_with_their_outcomes(
    signgate: SigngateClient, sandbox: EngineSandbox
) -> None:
    target = sandbox.target("key", "evm-gated")
    denied = await signgate.start(target, _hash(), request_id=_id("deny"), polling=FAST)
    cancelled = await signgate.start(target, _hash(), request_id=_id("cancel"), polling=FAST)

    async def approval_known(handle: SignatureHandle) -> str | None:
        return (await handle.status()).approval_id

    await eventually(lambda: approval_known(denied), what="the approval to deny")
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        await signgate.deny(denied.request_id, sandbox.dfns_client("alice", http), reason="no")
    await eventually(lambda: approval_known(cancelled), what="the approval to cancel")
    await signgate.cancel(cancelled.request_id)
    assert (await denied.outcome()).kind == "rejected"
    assert (await cancelled.outcome()).kind == "cancelled"
    with pytest.raises(NotRunning):
        await signgate.cancel(cancelled.request_id)


async def test_bad_input_and_unknown_ids_are_clear_errors(
    signgate: SigngateClient, sandbox: EngineSandbox
) -> None:
    with pytest.raises(InvalidSignatureInput, match="request_id"):
        await signgate.start(sandbox.target("key", "evm-auto"), _hash(), request_id="has space")
    with pytest.raises(InvalidSignatureInput, match="external_id"):
        await signgate.start(
            sandbox.target("key", "evm-auto"),
            HashRequest(hash="ab" * 32, external_id="mine"),
            request_id=_id("bad"),
        )
    with pytest.raises(RequestNotFound):
        await signgate.status(_id("missing"))
    auto = await signgate.sign(
        sandbox.target("key", "evm-auto"),
        _hash(),
        request_id=_id("auto"),
        wait=timedelta(seconds=30),
    )
    assert isinstance(auto, SignatureOutcome)
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        with pytest.raises(NotRunning):
            await signgate.approve(auto.workflow_id, sandbox.dfns_client("alice", http))
