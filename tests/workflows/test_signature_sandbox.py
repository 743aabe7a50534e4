"""SignatureWorkflow on the time-skipping server against the real sandbox over HTTP.

The engine's real activities talk to a sandbox on 127.0.0.1 whose clock follows the
workflow's (``EngineSandbox.clock_sync_hook``): three days of waiting take milliseconds
of Temporal time and one clock jump at the sandbox, while approvals, denials, expiry,
signatures and their verification are all real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.downstream import SqliteLedger
from activities.payout import serialize_eip1559
from signgate.contracts import (
    BuildTransferInput,
    LedgerDelivery,
    PollingPolicy,
    SignatureOutcome,
    SignatureWorkflowInput,
    SigningTarget,
)
from signgate.dfns.requests import HashRequest, TransactionRequest
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import skip_time
from tests.workflows.fakes import S
from worker import engine_activities, engine_workers
from workflows.signature import SignatureWorkflow

Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]
HASH = "5e" * 32


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EngineSandbox]:
    running = EngineSandbox(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Engine:
    env: WorkflowEnvironment
    sandbox: EngineSandbox
    task_queue: str
    ledger: SqliteLedger
    responses: list[int]

    def input(self, target: SigningTarget, **overrides: Any) -> SignatureWorkflowInput:
        values: dict[str, Any] = {"target": target, "request": HashRequest(hash=HASH)}
        values.update(overrides)
        return SignatureWorkflowInput.model_validate(values)

    async def start(self, inp: SignatureWorkflowInput, suffix: str = "") -> Handle:
        return await self.env.client.start_workflow(
            SignatureWorkflow.run,
            inp,
            id=f"sig-{self.task_queue}{suffix}",
            task_queue=self.task_queue,
        )


@pytest.fixture
async def engine(
    ts_env: WorkflowEnvironment, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> AsyncIterator[Engine]:
    responses: list[int] = []

    async def record(response: httpx.Response) -> None:
        responses.append(response.status_code)

    hooks: dict[str, list[Any]] = {
        "request": [sandbox.clock_sync_hook()],
        "response": [record],
    }
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    async with (
        httpx.AsyncClient(base_url=sandbox.base_url, timeout=10, event_hooks=hooks) as http,
        httpx.AsyncClient(timeout=5) as callbacks,
    ):
        activities = engine_activities(
            sandbox.dfns_client("engine", http),
            callbacks,
            callback_secrets={"default": SecretStr("s3cret-callback-key")},
            ledgers={"default": ledger},
        )
        async with engine_workers(
            ts_env.client,
            task_queue=task_queue,
            workflows=[SignatureWorkflow],
            activities=activities,
        ):
            yield Engine(ts_env, sandbox, task_queue, ledger, responses)


async def _progress(handle: Handle, done: Any) -> Any:
    async def reached() -> Any:
        progress = await handle.query(SignatureWorkflow.state)
        return progress if done(progress) else None

    return await eventually(reached, what=f"{handle.id} reached the expected state")


async def _pending_approval(handle: Handle) -> str:
    progress = await _progress(handle, lambda p: p.approval_id is not None)
    approval_id: str = progress.approval_id
    return approval_id


async def test_approval_after_three_days_is_found_by_polling(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    handle = await engine.start(engine.input(sandbox.target("key", "evm-gated")))
    approval_id = await _pending_approval(handle)
    await skip_time(engine.env, timedelta(days=3))
    await sandbox.decide(approval_id, "alice", "bob")
    outcome = await handle.result()

    assert outcome.kind == "signed"
    assert outcome.verification is not None
    assert outcome.verification.status == "verified"
    assert outcome.verification.method == "ecdsa-secp256k1/hash"
    assert outcome.verification.public_key == sandbox.key("evm-gated")["publicKey"]
    assert outcome.approval is not None and outcome.approval.status == "Approved"
    assert {d.user_id for d in outcome.approval.decisions} == {
        sandbox.identity("alice").user_id,
        sandbox.identity("bob").user_id,
    }
    assert outcome.date_requested is not None and outcome.date_signed is not None
    assert outcome.date_signed - outcome.date_requested >= timedelta(days=3)
    assert 70 < outcome.polls < 95  # backed off to one poll an hour
    assert await sandbox.signatures_with_external_id("evm-gated", outcome.external_id) == [
        outcome.signature_id
    ]


async def test_denial_by_an_approver_is_rejected(engine: Engine, sandbox: EngineSandbox) -> None:
    handle = await engine.start(engine.input(sandbox.target("wallet", "evm-gated")))
    approval_id = await _pending_approval(handle)
    await skip_time(engine.env, timedelta(hours=5))
    await sandbox.decide(approval_id, "bob", value="Denied")
    outcome = await handle.result()
    assert outcome.kind == "rejected"
    assert outcome.dfns_status is S.REJECTED
    assert outcome.approval is not None and outcome.approval.status == "Denied"
    assert [d.value for d in outcome.approval.decisions] == ["Denied"]
    assert outcome.signature is None and outcome.verification is None


async def test_expiry_by_the_sandbox_auto_reject_timeout(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    handle = await engine.start(engine.input(sandbox.target("key", "evm-expiring")))
    outcome = await handle.result()
    assert (outcome.kind, outcome.expiry) == ("expired", "approval_timeout")
    assert outcome.dfns_status is S.REJECTED
    assert outcome.approval is not None and outcome.approval.status == "Expired"
    assert outcome.denial is None
    # autoRejectTimeout is 60 minutes of sandbox time, which followed the workflow's clock.
    assert outcome.date_requested is not None
    waited = outcome.finished_at - outcome.date_requested
    assert timedelta(minutes=60) <= waited < timedelta(hours=2)


async def test_the_callers_deadline_denies_the_approval_at_the_sandbox(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    deadline = await engine.env.get_current_time() + timedelta(hours=6)
    inp = engine.input(sandbox.target("key", "evm-gated"), deadline=deadline)
    handle = await engine.start(inp)
    outcome = await handle.result()
    assert (outcome.kind, outcome.expiry) == ("expired", "deadline")
    assert outcome.denial is not None and outcome.denial.denied
    assert outcome.dfns_status is S.REJECTED
    assert outcome.approval is not None and outcome.approval.status == "Denied"
    [decision] = outcome.approval.decisions
    assert decision.user_id == sandbox.identity("engine").user_id
    assert decision.value == "Denied" and "deadline passed" in (decision.reason or "")
    assert deadline <= outcome.finished_at < deadline + timedelta(minutes=5)


async def test_cancellation_denies_the_approval_and_still_delivers(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    inp = engine.input(sandbox.target("key", "evm-gated"), deliveries=[LedgerDelivery()])
    handle = await engine.start(inp)
    await _pending_approval(handle)
    await skip_time(engine.env, timedelta(hours=1))
    await handle.cancel()
    outcome = await handle.result()
    assert outcome.kind == "cancelled"
    assert outcome.dfns_status is S.REJECTED
    assert outcome.approval is not None and outcome.approval.status == "Denied"
    [record] = await engine.ledger.records()
    assert record.outcome == "cancelled" and record.signature_id == outcome.signature_id


async def test_a_failed_request_is_an_outcome(engine: Engine, sandbox: EngineSandbox) -> None:
    handle = await engine.start(engine.input(sandbox.target("key", "evm-gated")))
    progress = await _progress(handle, lambda p: p.signature_id is not None)
    await sandbox.fail_signature(progress.signature_id, "HSM unavailable")
    outcome = await handle.result()
    assert outcome.kind == "failed"
    assert outcome.dfns_status is S.FAILED
    assert outcome.reason is not None and "HSM unavailable" in outcome.reason


async def test_a_transaction_waits_for_confirmed(engine: Engine, sandbox: EngineSandbox) -> None:
    unsigned = serialize_eip1559(
        BuildTransferInput(
            chain_id=11155111,
            nonce=7,
            to="0x" + "11" * 20,
            value_wei=10**15,
            max_fee_per_gas=30 * 10**9,
            max_priority_fee_per_gas=10**9,
        )
    )
    request = TransactionRequest(transaction="0x" + unsigned.hex())
    inp = engine.input(
        sandbox.target("wallet", "evm-auto"), request=request, wait_for_confirmed=True
    )
    handle = await engine.start(inp)
    outcome = await handle.result()
    assert outcome.kind == "confirmed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert outcome.verification.method == "ecdsa-secp256k1/evm-tx"
    assert outcome.signed_data is not None and outcome.tx_hash is not None
    assert outcome.date_confirmed is not None


async def test_429_and_5xx_are_retried_without_doubling(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    await sandbox.set_faults(rate429=1.0)
    handle = await engine.start(engine.input(sandbox.target("key", "evm-auto")))
    await eventually(lambda: 429 in engine.responses, what="a 429 answered")
    await sandbox.set_faults(rate429=0.0, errorRate=1.0, errorStatus=503)
    await eventually(lambda: 503 in engine.responses, what="a 503 answered")
    await sandbox.set_faults(errorRate=0.0)
    outcome = await handle.result()
    assert 429 in engine.responses and 503 in engine.responses
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert await sandbox.signatures_with_external_id("evm-auto", outcome.external_id) == [
        outcome.signature_id
    ]


async def test_continue_as_new_during_the_wait_keeps_the_request(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    inp = engine.input(
        sandbox.target("key", "evm-gated"),
        polling=PollingPolicy(continue_as_new_after_polls=4),
    )
    handle = await engine.start(inp)
    approval_id = await _pending_approval(handle)
    await skip_time(engine.env, timedelta(days=1))
    await sandbox.decide(approval_id, "alice", "bob")
    outcome = await handle.result()
    final = await handle.query(SignatureWorkflow.state)
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert final.run > 5
    assert outcome.approval_id == approval_id
    assert await sandbox.signatures_with_external_id("evm-gated", outcome.external_id) == [
        outcome.signature_id
    ]


# Five skips of hours through a retry storm: on a busy machine longer than the suite's 300 s.
@pytest.mark.timeout(900)
async def test_a_5xx_storm_longer_than_any_retry_policy_never_decides_an_outcome(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    """Every Dfns path answers 504 for longer than any bounded retry lasts, twice: at submit,
    and while approvals, a deadline and a cancel are under way. Each request still ends
    with what Dfns (or the caller) decided, and Dfns holds exactly one request for each."""
    polling = PollingPolicy(initial_interval=timedelta(minutes=5))
    start = await engine.env.get_current_time()
    gated = sandbox.target("key", "evm-gated")
    plans = {
        "approved": engine.input(gated, polling=polling),
        "denied": engine.input(gated, polling=polling),
        "deadline": engine.input(gated, polling=polling, deadline=start + timedelta(hours=3)),
        "cancelled": engine.input(gated, polling=polling),
        "auto": engine.input(sandbox.target("key", "evm-auto"), polling=polling),
    }
    await sandbox.set_faults(errorRate=1.0, errorStatus=504)
    handles = {name: await engine.start(inp, suffix=f"-{name}") for name, inp in plans.items()}
    await skip_time(engine.env, timedelta(minutes=30))
    assert all(status == 504 for status in engine.responses) and len(engine.responses) > 20
    await sandbox.set_faults(errorRate=0.0)
    await skip_time(engine.env, timedelta(minutes=2))  # past the submits' retry backoff
    approvals = {name: await _pending_approval(handles[name]) for name in plans if name != "auto"}
    await sandbox.decide(approvals["approved"], "alice", "bob")
    await sandbox.decide(approvals["denied"], "bob", value="Denied")

    await sandbox.set_faults(errorRate=1.0, errorStatus=502)
    await skip_time(engine.env, timedelta(hours=2))
    await handles["cancelled"].cancel()
    await skip_time(engine.env, timedelta(hours=2))  # the deadline passes in the storm
    failing = await handles["approved"].query(SignatureWorkflow.state)
    assert failing.poll_failures >= 2, "polls ran out of retries and were recorded"
    await sandbox.set_faults(errorRate=0.0)

    outcomes = {name: await handle.result() for name, handle in handles.items()}
    assert {name: o.kind for name, o in outcomes.items()} == {
        "approved": "signed",
        "denied": "rejected",
        "deadline": "expired",
        "cancelled": "cancelled",
        "auto": "signed",
    }
    assert outcomes["deadline"].denial is not None and outcomes["deadline"].denial.denied
    assert outcomes["cancelled"].denial is not None and outcomes["cancelled"].denial.denied
    for name, outcome in outcomes.items():
        key = "evm-auto" if name == "auto" else "evm-gated"
        assert await sandbox.signatures_with_external_id(key, outcome.external_id) == [
            outcome.signature_id
        ], name
        if outcome.kind == "signed":
            assert outcome.verification is not None
            assert outcome.verification.status == "verified"
    assert {502, 504} <= set(engine.responses)


async def test_a_denial_whose_answer_was_lost_is_still_the_engines(
    engine: Engine, sandbox: EngineSandbox
) -> None:
    """The deny commits at Dfns but the connection drops before the answer: the retry finds
    the approval already Denied, by the engine itself, and the outcome is still the
    deadline's, not a rejection by someone else."""
    deadline = await engine.env.get_current_time() + timedelta(hours=1)
    handle = await engine.start(engine.input(sandbox.target("key", "evm-gated"), deadline=deadline))
    await _pending_approval(handle)
    await sandbox.set_faults(dropAfterCommit=1, dropPathPrefix="/v2/policy-approvals")
    outcome = await handle.result()
    assert (outcome.kind, outcome.expiry) == ("expired", "deadline")
    assert outcome.denial is not None and outcome.denial.denied
    assert outcome.approval is not None and outcome.approval.status == "Denied"
