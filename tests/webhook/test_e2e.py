"""End to end: dev server, sandbox, receiver and worker over real HTTP, with webhook faults.

* an approval wakes the workflow at once (its poll timer is an hour away);
* a resolved approval travels in the signed event's signal: one signal, no approval read;
* duplicated and reordered deliveries change nothing and cost no extra signals;
* a lost ``signed`` event is caught by the next poll;
* a forged event is refused and the workflow is untouched;
* a signed event's own copy of the request stands for a read only when its signature
  verifies: one signed by another key (under a right HMAC) makes the workflow read Dfns;
* a receiver restarted mid-stream loses nothing: the sandbox retries;
* an event that beats the visibility index is answered 503, a retry still unknown 200;
* ``signgate webhook register`` and ``signgate webhook`` as processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import stat
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from signgate import crypto, ids
from signgate.contracts import SignatureOutcome, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from signgate.webhook.verify import SIGNATURE_HEADER
from tests.support.engine_worker import RunningWorker
from tests.support.eventually import eventually
from tests.support.ports import free_port
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.webhook.stack import (
    FAST_POLLS,
    NO_TIMER_POLLS,
    Handle,
    RunningReceiver,
    approval_id_of,
    progress,
    start_gated,
    webhook_events,
)
from tests.webhook.support import event, sign, signature_request, signed
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

OUTCOME_WITHIN = 120.0
"""Seconds to wait for a workflow result or a process (generous: CI runs on a busy machine)."""


async def approval_reported(handle: Handle) -> None:
    """Wait until the ``policy.approval.pending`` webhook reached the workflow."""

    async def probe() -> bool:
        return (await progress(handle)).approval is not None

    await eventually(probe, what=f"{handle.id} told of its pending approval")


async def signals_in(handle: Handle) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )


async def post(url: str, body: bytes, header: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            url,
            content=body,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )


async def approved_and_verified(
    sandbox: EngineSandbox, handle: Handle, approval_id: str
) -> SignatureOutcome:
    """Alice and bob approve; the workflow ends signed, its signature verified."""
    await sandbox.decide(approval_id, "alice", "bob")
    async with asyncio.timeout(OUTCOME_WITHIN):
        outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    return outcome


async def test_an_approved_request_completes_without_waiting_for_a_poll(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        ping = await sandbox.dfns_client("engine", http).ping_webhook(
            receiver.registration.webhook_id
        )
    assert ping.status == "200", ping

    handle = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
    approval_id = await approval_id_of(handle)
    await approval_reported(handle)
    waiting = await progress(handle)
    assert waiting.status == "Pending"
    assert waiting.approval is not None and waiting.approval.status == "Pending"
    assert waiting.polls == 0

    outcome = await approved_and_verified(sandbox, handle, approval_id)
    done = await progress(handle)
    # The timer was an hour away: every poll was one a webhook asked for, and none at all
    # when the worker already held the key to check the signed event's own copy.
    assert outcome.polls <= 2
    assert outcome.polls >= 1 or done.views_taken == 1
    assert done.events_applied >= 2
    assert outcome.approval is not None
    deciders = {d.user_id for d in outcome.approval.decisions}
    assert deciders == {sandbox.identity("alice").user_id, sandbox.identity("bob").user_id}
    stats = receiver.receiver.stats
    assert stats["delivered"] >= 2
    assert receiver.receiver.kinds["wallet.signature.signed"] >= 1
    assert not any(key.startswith("rejected:") for key in stats)

    # A late event (a status never delivered before) for the finished workflow: 200, closed.
    late = event(
        "wallet.signature.failed",
        {
            "signatureRequest": signature_request(
                "Failed", external_id=outcome.external_id, signature_id=str(outcome.signature_id)
            )
        },
    )
    response = await post(receiver.url, *signed(late, receiver.secret()))
    assert response.status_code == 200
    assert response.json()["outcome"] == "closed"


async def test_a_resolved_approval_rides_in_the_signed_events_signal(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    handle = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
    approval_id = await approval_id_of(handle)
    await approval_reported(handle)
    before = await signals_in(handle)

    outcome = await approved_and_verified(sandbox, handle, approval_id)
    # One signal for the approval's resolution and the signature: the status event with the
    # approval in it. The workflow knew the decisions without reading the approval.
    history = await handle.fetch_history()
    signalled = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signalled) == before + 1
    last = signalled[-1]
    assert last.signal_name == ids.SIGNAL_STATUS_EVENT
    carried = json.loads(last.input.payloads[0].data)
    assert carried["status"] == "Signed"
    assert carried["approval"]["approval_id"] == approval_id
    assert carried["approval"]["status"] == "Approved"
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert ids.ACTIVITY_DESCRIBE_APPROVAL not in scheduled
    assert outcome.approval is not None and outcome.approval.status == "Approved"
    deciders = {d.user_id for d in outcome.approval.decisions}
    assert deciders == {sandbox.identity("alice").user_id, sandbox.identity("bob").user_id}
    assert receiver.receiver.stats["held"] >= 1


async def test_duplicated_and_reordered_events_change_nothing(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    await sandbox.set_faults(
        webhookDuplicate=1.0, webhookReorder=3, webhookReorderHoldSeconds=0.3, webhookSeed=11
    )
    handles = [
        await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS) for _ in range(4)
    ]
    for handle in handles:
        await approval_reported(handle)
    for handle in handles:
        await sandbox.decide(await approval_id_of(handle), "alice", "bob")
    async with asyncio.timeout(OUTCOME_WITHIN):
        outcomes = await asyncio.gather(*(h.result() for h in handles))

    for handle, outcome in zip(handles, outcomes, strict=True):
        assert outcome.kind == "signed", handle.id
        assert outcome.verification is not None and outcome.verification.status == "verified"
        # Still exactly one Dfns request per workflow.
        found = await sandbox.signatures_with_external_id("evm-gated", outcome.external_id)
        assert found == [outcome.signature_id]
        # Each piece of news reached the workflow once: approval pending, approval resolved,
        # signed. Every duplicate stopped at the receiver.
        assert await signals_in(handle) <= 3
    assert receiver.receiver.stats["duplicate"] >= 4


async def test_a_lost_signed_event_is_caught_by_the_next_poll(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    handle = await start_gated(client, sandbox, worker.task_queue, FAST_POLLS)
    approval_id = await approval_id_of(handle)
    await approval_reported(handle)
    await sandbox.set_faults(webhookLoss=1.0)
    await sandbox.decide(approval_id, "alice", "bob")
    async with asyncio.timeout(OUTCOME_WITHIN):
        outcome = await handle.result()

    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert outcome.polls >= 1
    assert receiver.receiver.kinds["wallet.signature.signed"] == 0
    # The sandbox believes it delivered the event: it vanished on the way, as Dfns warns.
    events = await webhook_events(sandbox, receiver.registration.webhook_id)
    signed_events = [e for e in events if e["kind"] == "wallet.signature.signed"]
    assert signed_events and all(e["status"] == "200" for e in signed_events)


async def test_a_forged_event_is_refused_and_the_workflow_untouched(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    handle = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
    approval_id = await approval_id_of(handle)
    await approval_reported(handle)
    before = await progress(handle)
    signals_before = await signals_in(handle)
    assert before.signature_id is not None

    forged = event(
        "wallet.signature.rejected",
        {
            "signatureRequest": signature_request(
                "Rejected",
                external_id=ids.external_id_for(handle.id),
                signature_id=before.signature_id,
            )
        },
    )
    body, _ = signed(forged)
    response = await post(receiver.url, body, sign(body, "whs-forger-does-not-know-it"))
    assert response.status_code == 401
    assert response.json()["error"] == "bad-signature"
    # A genuine body replayed later than the tolerance is refused too.
    stale = dict(forged, timestampSent=forged["timestampSent"] - 3600)
    response = await post(receiver.url, *signed(stale, receiver.secret()))
    assert response.status_code == 401
    assert response.json()["error"] == "stale-timestamp"

    after = await progress(handle)
    assert after.status == "Pending"
    assert after.events_applied == before.events_applied
    assert after.events_ignored == before.events_ignored
    assert await signals_in(handle) == signals_before

    await sandbox.decide(approval_id, "alice", "bob")
    async with asyncio.timeout(OUTCOME_WITHIN):
        outcome = await handle.result()
    assert outcome.kind == "signed"


async def test_a_signed_event_stands_for_a_read_only_when_its_signature_verifies(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    # A first request makes sure this worker has read the key (it may have already).
    first = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
    await sandbox.decide(await approval_id_of(first), "alice", "bob")
    async with asyncio.timeout(OUTCOME_WITHIN):
        assert (await first.result()).kind == "signed"

    handle = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
    approval_id = await approval_id_of(handle)
    await approval_reported(handle)
    before = await progress(handle)
    assert before.signature_id is not None and before.polls == 0

    # A correctly signed webhook whose request is "Signed" by another key: the HMAC is
    # right (whoever holds the secret), the signature is not the key's.
    forged_request = signature_request(
        "Signed", external_id=ids.external_id_for(handle.id), signature_id=before.signature_id
    )
    forged_request["keyId"] = sandbox.target("key", "evm-gated").id
    digest = hashlib.sha256(b"not the request's hash").digest()
    sig = crypto.ecdsa_sign(hashlib.sha256(b"another key").digest(), digest)
    forged_request["signature"] = {
        "r": "0x" + sig.r.to_bytes(32, "big").hex(),
        "s": "0x" + sig.s.to_bytes(32, "big").hex(),
        "recid": sig.recid,
    }
    forged = event("wallet.signature.signed", {"signatureRequest": forged_request})
    response = await post(receiver.url, *signed(forged, receiver.secret()))
    assert response.status_code == 200, response.text

    async def read_instead() -> bool:
        now = await progress(handle)
        return now.polls == 1

    await eventually(read_instead, what="the forged copy refused and Dfns read instead")
    after = await progress(handle)
    assert after.status == "Pending", "Dfns said Pending: the forged copy changed nothing"
    assert after.views_taken == 0

    # The real signed event carries Dfns's own copy: it verifies, and no read is made.
    outcome = await approved_and_verified(sandbox, handle, approval_id)
    assert outcome.polls == 1, "only the forged event's read"
    assert (await progress(handle)).views_taken == 1
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        dfns = sandbox.dfns_client("engine", http)
        truth = await dfns.fetch(sandbox.target("key", "evm-gated"), str(outcome.signature_id))
    assert outcome.signature == truth.signature, "the outcome is Dfns's signature"


async def test_a_receiver_restarted_mid_stream_loses_nothing(
    client: Client, sandbox: EngineSandbox, worker: RunningWorker, receiver: RunningReceiver
) -> None:
    handles = [
        await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS) for _ in range(3)
    ]
    approvals = [await approval_id_of(h) for h in handles]
    for handle in handles:
        await approval_reported(handle)  # the stream's first events got through

    await receiver.server.stop()
    for approval_id in approvals:
        await sandbox.decide(approval_id, "alice", "bob")

    async def refused() -> bool:
        events = await webhook_events(sandbox, receiver.registration.webhook_id)
        return any(e["deliveryFailed"] for e in events)

    await eventually(refused, what="a delivery refused")
    await receiver.server.start()
    async with asyncio.timeout(OUTCOME_WITHIN):
        outcomes = await asyncio.gather(*(h.result() for h in handles))

    assert [o.kind for o in outcomes] == ["signed"] * 3
    assert receiver.receiver.stats["redelivered"] >= 1
    events = await webhook_events(sandbox, receiver.registration.webhook_id)
    assert any(e["status"] == "ECONNREFUSED" for e in events)
    assert any(e["deliveryAttempt"] >= 2 and e["status"] == "200" for e in events)


async def test_an_event_that_beats_the_visibility_index(
    client: Client, sandbox: EngineSandbox, receiver: RunningReceiver
) -> None:
    # No worker polls this queue, so the workflow never runs its first task and its
    # externalId search attribute never becomes visible: the receiver cannot find it.
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput(
            target=sandbox.target("key", "evm-gated"),
            request=HashRequest(hash="0x" + uuid.uuid4().hex * 2),
        ),
        id=f"wh-invisible-{uuid.uuid4().hex[:8]}",
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    try:
        data = {
            "signatureRequest": signature_request(
                "Signed", external_id=ids.external_id_for(handle.id)
            )
        }
        first = await post(receiver.url, *signed(event(data=data), receiver.secret()))
        assert first.status_code == 503, first.text
        retry = await post(receiver.url, *signed(event(data=data, attempt=2), receiver.secret()))
        assert retry.status_code == 200
        assert retry.json()["outcome"] == "not-ours"
    finally:
        await handle.terminate("test over")


def _command_env(sandbox: EngineSandbox, dev_server: DevServer, tmp_path: Path) -> dict[str, str]:
    engine = sandbox.identity("engine")
    key_file = tmp_path / "engine.pem"
    key_file.write_text(engine.private_key_pem)
    key_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "TEMPORAL_"))}
    env.update(
        {
            "SIGNGATE_DFNS_BASE_URL": sandbox.base_url,
            "SIGNGATE_DFNS_AUTH_TOKEN": engine.auth_token,
            "SIGNGATE_DFNS_CREDENTIAL_ID": engine.cred_id,
            "SIGNGATE_DFNS_PRIVATE_KEY_FILE": str(key_file),
            "SIGNGATE_WEBHOOK_SECRET_FILE": str(tmp_path / "state" / "webhook.json"),
            "SIGNGATE_LOG_FORMAT": "json",
            "TEMPORAL_ADDRESS": dev_server.address,
            "TEMPORAL_NAMESPACE": dev_server.namespace,
        }
    )
    return env


def _read_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signgate.webhook",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_commands_register_and_serve(
    client: Client,
    sandbox: EngineSandbox,
    dev_server: DevServer,
    worker: RunningWorker,
    tmp_path: Path,
) -> None:
    env = _command_env(sandbox, dev_server, tmp_path)
    secret_file = Path(env["SIGNGATE_WEBHOOK_SECRET_FILE"])
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/dfns"

    code, output = await _run(env, "register", "--url", url)
    assert code == 0, output
    stored = _read_json(secret_file)
    secret = stored["current"]["secret"]
    first_id = stored["current"]["webhookId"]
    assert f"registered webhook {first_id}" in output
    assert secret not in output
    assert _mode(secret_file) == 0o600

    serving = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signgate.webhook",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert serving.stdout is not None
        async with asyncio.timeout(OUTCOME_WITHIN):
            while "listening on" not in (line := (await serving.stdout.readline()).decode()):
                assert line, "the receiver exited: " + "".join(lines)
                lines.append(line)
        assert url in line

        handle = await start_gated(client, sandbox, worker.task_queue, NO_TIMER_POLLS)
        await sandbox.decide(await approval_id_of(handle), "alice", "bob")
        async with asyncio.timeout(OUTCOME_WITHIN):
            outcome = await handle.result()
        assert outcome.kind == "signed"

        async with httpx.AsyncClient(timeout=5) as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        assert health["counts"]["delivered"] >= 1

        # Registering again rotates: the old webhook is deleted, its secret still accepted.
        code, output = await _run(env, "register", "--url", url, "--replace")
        assert code == 0, output
        rotated = _read_json(secret_file)
        assert rotated["previous"]["webhookId"] == first_id
        assert rotated["current"]["webhookId"] != first_id
        assert f"previous webhook {first_id}: deleted at Dfns" in output
        async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
            listed = await sandbox.dfns_client("engine", http).list_webhooks()
        assert first_id not in {w.id for w in listed.items}
        old_signed = event(data={"signatureRequest": signature_request(external_id="invoice-1")})
        response = await post(url, *signed(old_signed, secret))
        assert response.status_code == 200 and response.json()["outcome"] == "not-ours"
    finally:
        serving.send_signal(signal.SIGTERM)
        async with asyncio.timeout(OUTCOME_WITHIN):
            rest, _ = await serving.communicate()
        async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
            dfns = sandbox.dfns_client("engine", http)
            for webhook in (await dfns.list_webhooks()).items:
                if webhook.url == url:
                    await dfns.delete_webhook(webhook.id)
    logs = "".join(lines) + rest.decode()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so a parent sees why it stopped.
    assert serving.returncode in (0, -signal.SIGTERM), logs
    assert "Finished server process" in logs
    assert secret not in logs
    assert rotated["current"]["secret"] not in logs
