"""End to end: a real Temporal dev server, the sandbox over HTTP, the engine's worker.

Every target (key, wallet, legacy public key) and scheme (ECDSA, EdDSA, Schnorr) reaches
a verified ``Signed``; a response lost after commit still makes exactly one request; a
worker killed while requests wait and restarted finishes them all, none doubled; a
tampered signature is refused and never delivered; no secret reaches workflow history.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from activities.downstream import SIGNATURE_HEADER, SqliteLedger, verify_callback_signature
from signgate import crypto, ids
from signgate.contracts import (
    BuildTransferInput,
    CallbackDelivery,
    LedgerDelivery,
    PayoutInput,
    PayoutOutcome,
    PollingPolicy,
    SignatureOutcome,
    SignatureWorkflowInput,
    SigningTarget,
)
from signgate.dfns.requests import (
    CreateWebhookRequest,
    Eip712Request,
    HashRequest,
    MessageRequest,
    SignatureRequestBody,
    TransactionRequest,
)
from tests.support.engine_worker import CALLBACK_SECRET, RunningWorker
from tests.support.eventually import eventually
from tests.support.recorder import HttpRecorder
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.payout import PayoutWorkflow
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]
FAST = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2))


def _hash() -> str:
    return uuid.uuid4().hex * 2


def _unsigned_transfer(nonce: int) -> str:
    from activities.payout import serialize_eip1559

    spec = BuildTransferInput(
        chain_id=11155111,
        nonce=nonce,
        to="0x" + "42" * 20,
        value_wei=12345,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
    )
    return "0x" + serialize_eip1559(spec).hex()


def _eip712() -> Eip712Request:
    return Eip712Request.model_validate(
        {
            "types": {
                "Person": [
                    {"name": "name", "type": "string"},
                    {"name": "wallet", "type": "address"},
                ],
                "Mail": [
                    {"name": "from", "type": "Person"},
                    {"name": "to", "type": "Person"},
                    {"name": "contents", "type": "string"},
                ],
            },
            "domain": {
                "name": "signgate",
                "version": "1",
                "chainId": 11155111,
                "verifyingContract": "0x" + "cc" * 20,
            },
            "message": {
                "from": {"name": "Cow", "wallet": "0x" + "cd" * 20},
                "to": {"name": "Bob", "wallet": "0x" + "bb" * 20},
                "contents": "Hello, Bob!",
            },
        }
    )


async def _start(
    worker: RunningWorker,
    target: SigningTarget,
    request: SignatureRequestBody,
    **overrides: Any,
) -> Handle:
    values: dict[str, Any] = {"target": target, "request": request, "polling": FAST}
    values.update(overrides)
    return await worker.client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput.model_validate(values),
        id=f"e2e-{uuid.uuid4().hex[:12]}",
        task_queue=worker.task_queue,
    )


CASES: list[tuple[str, str, str, Any]] = [
    ("key", "evm-auto", "ecdsa-secp256k1/hash", lambda: HashRequest(hash=_hash())),
    (
        "key",
        "evm-auto",
        "ecdsa-secp256k1/eip191",
        lambda: MessageRequest(message="0x" + b"pay 10 USDC".hex(), network="EthereumSepolia"),
    ),
    ("wallet", "evm-auto", "ecdsa-secp256k1/eip712", _eip712),
    (
        "wallet",
        "evm-auto",
        "ecdsa-secp256k1/evm-tx",
        lambda: TransactionRequest(transaction=_unsigned_transfer(3)),
    ),
    ("public-key", "legacy", "ecdsa-secp256k1/hash", lambda: HashRequest(hash=_hash())),
    ("key", "ed", "ed25519/message", lambda: MessageRequest(message="0x" + os.urandom(77).hex())),
    ("wallet", "ed", "ed25519/hash", lambda: HashRequest(hash=_hash())),
    (
        "key",
        "taproot",
        "bip340/taproot-tweaked",
        lambda: HashRequest(hash=_hash(), taproot_merkle_root=""),
    ),
    (
        "wallet",
        "taproot",
        "bip340/taproot-tweaked",
        lambda: HashRequest(hash=_hash(), taproot_merkle_root="0x" + "77" * 32),
    ),
]


async def test_every_target_and_scheme_reaches_a_verified_signed(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    handles = [
        await _start(worker, sandbox.target(kind, key), build()) for kind, key, _, build in CASES
    ]
    outcomes = await asyncio.gather(*(h.result() for h in handles))
    for (kind, key, method, _), outcome in zip(CASES, outcomes, strict=True):
        where = f"{kind} {key}"
        assert outcome.kind == "signed", where
        assert outcome.verification is not None, where
        assert outcome.verification.status == "verified", (where, outcome.verification)
        assert outcome.verification.method == method, where
        assert outcome.verification.public_key == sandbox.key(
            "evm-auto" if key == "legacy" else key
        )["publicKey"].removeprefix("0x"), where
    legacy = outcomes[4]
    assert legacy.dfns_status is not None and legacy.raw_status == "Executed"


async def test_a_response_dropped_after_commit_still_makes_one_request(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    await sandbox.set_faults(dropAfterCommit=1, dropPathPrefix="/keys/")
    handle = await _start(worker, sandbox.target("key", "evm-auto"), HashRequest(hash=_hash()))
    outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    history = await handle.fetch_history()
    submit_attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert submit_attempts[0] >= 2, "the first submit lost its response and was retried"
    found = await sandbox.signatures_with_external_id("evm-auto", outcome.external_id)
    assert found == [outcome.signature_id]


async def test_a_tampered_signature_is_refused_and_never_delivered(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    with HttpRecorder() as receiver:
        deliveries = [LedgerDelivery(), CallbackDelivery(url=receiver.url())]
        await sandbox.set_faults(corruptSignatures=1)
        tampered = await _start(
            worker,
            sandbox.target("key", "evm-auto"),
            HashRequest(hash=_hash()),
            deliveries=deliveries,
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await tampered.result()
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == ids.ERR_VERIFICATION_FAILED and cause.non_retryable
        assert "does not verify" in cause.message
        assert receiver.received == []
        assert await worker.ledger.records() == []

        # The fault is spent: the next request is verified and delivered, signed by HMAC.
        good = await _start(
            worker,
            sandbox.target("key", "evm-auto"),
            HashRequest(hash=_hash()),
            deliveries=deliveries,
        )
        outcome = await good.result()
    assert outcome.kind == "signed"
    [delivery] = receiver.accepted()
    verify_callback_signature(
        CALLBACK_SECRET.encode(), delivery.headers.get(SIGNATURE_HEADER), delivery.body
    )
    body = json.loads(delivery.body)
    assert body["payload"]["signature_id"] == outcome.signature_id
    assert delivery.headers["Idempotency-Key"] == body["idempotency_key"]
    [record] = await worker.ledger.records()
    assert record.signature_id == outcome.signature_id


async def test_callbacks_are_retried_until_2xx_and_ledger_writes_once(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    with HttpRecorder() as receiver:
        receiver.respond("/callback", 500, 500)
        deliveries = [CallbackDelivery(url=receiver.url()), LedgerDelivery()]
        handle = await _start(
            worker,
            sandbox.target("key", "evm-auto"),
            HashRequest(hash=_hash()),
            deliveries=deliveries,
        )
        outcome = await handle.result()
    assert [r.status for r in receiver.received] == [500, 500, 200]
    keys = {r.headers["Idempotency-Key"] for r in receiver.received}
    assert len(keys) == 1, "every attempt carries the same idempotency key"
    callback, ledger = outcome.deliveries
    assert callback.detail.endswith("attempt 3") and not callback.first_time
    assert ledger.first_time
    # Recording the same outcome again (a retried activity) does not add a row.
    again = await worker.ledger.records()
    assert len(again) == 1


async def test_payout_signs_through_a_child_records_and_notifies(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    wallet = sandbox.key("evm-auto")["wallets"][0]
    with HttpRecorder() as receiver:
        payout: WorkflowHandle[PayoutWorkflow, PayoutOutcome] = await worker.client.start_workflow(
            PayoutWorkflow.run,
            PayoutInput(
                source=SigningTarget(kind="wallet", id=wallet["id"]),
                transfer=BuildTransferInput(
                    chain_id=11155111,
                    nonce=42,
                    to="0x" + "a1" * 20,
                    value_wei=5 * 10**16,
                    max_fee_per_gas=40 * 10**9,
                    max_priority_fee_per_gas=2 * 10**9,
                ),
                wait_for_confirmed=True,
                polling=FAST,
                callback=CallbackDelivery(url=receiver.url("/payouts")),
            ),
            id=f"payout-{uuid.uuid4().hex[:10]}",
            task_queue=worker.task_queue,
        )
        outcome = await payout.result()
    assert outcome.kind == "confirmed"
    assert outcome.signature.verification is not None
    assert outcome.signature.verification.status == "verified"
    assert outcome.signed_transaction is not None
    sender = crypto.evm_transaction_sender(bytes.fromhex(outcome.signed_transaction[2:]))
    assert sender.lower() == wallet["address"].lower()
    assert outcome.signature.workflow_id == ids.child_signature_workflow_id(payout.id)
    [record] = await worker.ledger.records()
    assert record.record_kind == "payout" and record.outcome == "confirmed"
    assert record.payload["signed_transaction"] == outcome.signed_transaction
    [notice] = receiver.accepted()
    assert json.loads(notice.body)["payload"]["payout_id"] == payout.id
    assert outcome.notified is not None and outcome.recorded is not None


async def test_a_killed_worker_restarts_and_finishes_every_request_once(
    client: Client, dev_server: DevServer, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    await sandbox.set_faults(dropAfterCommit=0, corruptSignatures=0)
    engine = sandbox.identity("engine")
    env = engine_env(dev_server, sandbox, task_queue, tmp_path)
    first = process = WorkerProcess(env).start()
    targets = [
        sandbox.target("key", "evm-gated"),
        sandbox.target("wallet", "evm-gated"),
        sandbox.target("key", "evm-gated"),
        sandbox.target("wallet", "evm-gated"),
    ]
    handles: list[Handle] = []
    try:
        for i, target in enumerate(targets):
            handles.append(
                await client.start_workflow(
                    SignatureWorkflow.run,
                    SignatureWorkflowInput(
                        target=target,
                        request=HashRequest(hash=_hash()),
                        polling=FAST,
                        deliveries=[LedgerDelivery()],
                    ),
                    id=f"kill-{task_queue}-{i}",
                    task_queue=task_queue,
                )
            )
        approvals = [await _approval_id(h) for h in handles]
        process.kill()

        # Nobody runs the workflows now; approve everything at Dfns meanwhile.
        for approval_id in approvals:
            await sandbox.decide(approval_id, "alice", "bob")
        # A second start of the same business key attaches to the running request.
        again: Handle = await client.start_workflow(
            SignatureWorkflow.run,
            SignatureWorkflowInput(target=targets[0], request=HashRequest(hash=_hash())),
            id=handles[0].id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert again.result_run_id == handles[0].result_run_id

        process = WorkerProcess(env).start()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=180
        )
        async with httpx.AsyncClient() as http:
            metrics = await http.get(f"http://127.0.0.1:{env['SIGNGATE_METRICS_PORT']}/metrics")
        assert "temporal_workflow_completed" in metrics.text
        assert "temporal_activity_execution_latency" in metrics.text
        assert process.terminate() == 0, "SIGTERM shuts the worker down cleanly"
    finally:
        process.kill()
    for outcome in outcomes:
        assert outcome.kind == "signed"
        assert outcome.verification is not None and outcome.verification.status == "verified"
        key_name = "evm-gated"
        found = await sandbox.signatures_with_external_id(key_name, outcome.external_id)
        assert found == [outcome.signature_id]
    ledger = await SqliteLedger(tmp_path / "ledger.sqlite").records()
    assert sorted(r.workflow_id for r in ledger) == sorted(h.id for h in handles)
    events = process.events()
    assert any(e.get("event") == "worker.stopped" for e in events)
    # JSON logs carry the activity's and the workflow's context as fields.
    submitted = [e for e in first.events() if e.get("event") == "signature.submitted"]
    assert submitted and all(e["activity_type"] == ids.ACTIVITY_SUBMIT for e in submitted)
    assert {e["workflow_id"] for e in submitted} == {h.id for h in handles}
    changed = [e for e in events if e.get("event") == "signature.status_changed"]
    assert changed and all("temporal_workflow" in e for e in changed)
    secrets = [engine.auth_token, *sandbox.secrets()]
    assert not any(secret in line for line in first.lines + process.lines for secret in secrets)


async def _approval_id(handle: Handle) -> str:
    async def approval_id() -> str | None:
        return (await handle.query(SignatureWorkflow.state)).approval_id

    return await eventually(approval_id, what=f"{handle.id} knows its approval")


async def test_no_secret_reaches_any_recorded_history(
    worker: RunningWorker, sandbox: EngineSandbox, dev_server: DevServer
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        created = await sandbox.dfns_client("engine", http).create_webhook(
            CreateWebhookRequest(url="http://127.0.0.1:9/webhook", events=["*"])
        )
    webhook_secret = created.secret.get_secret_value()
    with HttpRecorder() as receiver:
        deliveries = [CallbackDelivery(url=receiver.url()), LedgerDelivery()]
        signed = await _start(
            worker,
            sandbox.target("key", "evm-auto"),
            HashRequest(hash=_hash()),
            deliveries=deliveries,
        )
        gated = await _start(
            worker,
            sandbox.target("key", "evm-gated"),
            HashRequest(hash=_hash()),
            deliveries=deliveries,
            deadline=None,
        )
        await _approval_id(gated)
        await gated.cancel()
        assert (await signed.result()).kind == "signed"
        assert (await gated.result()).kind == "cancelled"
    secrets = [*sandbox.secrets(), webhook_secret, CALLBACK_SECRET]
    histories = 0
    async for execution in worker.client.list_workflows():
        handle = worker.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        # Payload data is raw bytes in the protobuf and base64 in the JSON export: check both.
        raw = b"".join(event.SerializeToString() for event in history.events)
        text = history.to_json()
        histories += 1
        for secret in secrets:
            assert secret.encode() not in raw, f"a secret reached {execution.id}'s history"
            assert secret not in text, f"a secret reached {execution.id}'s history"
    assert histories >= 2


async def test_the_worker_connects_from_temporal_environment_variables(
    dev_server: DevServer,
) -> None:
    from signgate.temporal_client import connect_temporal

    client = await connect_temporal(
        environ={"TEMPORAL_ADDRESS": dev_server.address, "TEMPORAL_NAMESPACE": "default"}
    )
    assert client.namespace == "default"
    assert client.data_converter is pydantic_data_converter
    await client.workflow_service.get_system_info(GetSystemInfoRequest())
