"""Record the histories the replay tests replay: ``python -m tests.replay.record``.

Each scenario runs the engine's real workflows and activities on the time-skipping server
against a fresh sandbox (the same set-up as ``tests/workflows/test_signature_sandbox.py``)
and writes every run's history to ``tests/replay/histories/<scenario>[-run<n>].json``.

Re-record only on purpose: the committed files are what running workflows look like to a
new worker. Until the first release a change of commands replaces the old path and the
histories are re-recorded; from then on, follow ARCHITECTURE.md's versioning rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.downstream import SqliteLedger
from signgate.activity_api import Lane
from signgate.contracts import (
    ApprovalDecisionInfo,
    ApprovalEvent,
    BatchPayout,
    BuildTransferInput,
    CallbackDelivery,
    LedgerDelivery,
    PayoutBatchInput,
    PayoutInput,
    PollingPolicy,
    ReconcilerInput,
    SignatureWorkflowInput,
    SigningTarget,
    StatusEvent,
)
from signgate.dfns.models import SignatureStatus
from signgate.dfns.requests import HashRequest
from signgate.ids import child_signature_workflow_id, reconciler_workflow_id
from tests.support.eventually import eventually
from tests.support.recorder import HttpRecorder
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import skip_time, start_dev_server, start_time_skipping
from worker import engine_activities, engine_workers
from workflows.batch import PayoutBatchWorkflow
from workflows.payout import PayoutWorkflow
from workflows.reconciler import ReconcilerWorkflow
from workflows.signature import SignatureWorkflow

HISTORIES = Path(__file__).with_name("histories")
HASH = "c0ffee" * 10 + "c0ff"

Scenario = Callable[[Client, EngineSandbox, str, str], Awaitable[None]]


def _input(target: SigningTarget, **overrides: Any) -> SignatureWorkflowInput:
    values: dict[str, Any] = {"target": target, "request": HashRequest(hash=HASH)}
    values.update(overrides)
    return SignatureWorkflowInput.model_validate(values)


async def _approval_id(client: Client, workflow_id: str) -> str:
    handle = client.get_workflow_handle_for(SignatureWorkflow.run, workflow_id)

    async def approval_id() -> str | None:
        return (await handle.query(SignatureWorkflow.state)).approval_id

    return await eventually(approval_id, what=f"{workflow_id} knows its approval")


async def signed_after_polling(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    env = _ENV[0]
    with HttpRecorder() as receiver:
        deliveries = [LedgerDelivery(), CallbackDelivery(url=receiver.url())]
        handle = await client.start_workflow(
            SignatureWorkflow.run,
            _input(sb.target("key", "evm-gated"), deliveries=deliveries),
            id=wid,
            task_queue=tq,
        )
        approval = await _approval_id(client, wid)
        await skip_time(env, timedelta(hours=2))
        await sb.decide(approval, "alice", "bob")
        await handle.result()


async def _decided(
    client: Client,
    sb: EngineSandbox,
    tq: str,
    wid: str,
    target: SigningTarget,
    polling: PollingPolicy,
    *,
    wait: timedelta | None = None,
) -> tuple[WorkflowHandle[Any, Any], str]:
    """Start a request on a gated target, wait ``wait`` of workflow time, approve it as alice
    and bob; returns the handle and the approval id."""
    handle = await client.start_workflow(
        SignatureWorkflow.run, _input(target, polling=polling), id=wid, task_queue=tq
    )
    approval = await _approval_id(client, wid)
    if wait is not None:
        await skip_time(_ENV[0], wait)
    await sb.decide(approval, "alice", "bob")
    return handle, approval


async def _signed_event(
    handle: WorkflowHandle[Any, Any], sb: EngineSandbox, target: SigningTarget
) -> StatusEvent:
    """The ``Signed`` status event of the handle's request, once the sandbox has signed it."""
    progress = await handle.query(SignatureWorkflow.state)
    signature_id = progress.signature_id
    assert signature_id is not None

    async def signed() -> bool:
        async with httpx.AsyncClient(base_url=sb.base_url, timeout=10) as http:
            view = await sb.dfns_client("engine", http).fetch(target, signature_id)
        return view.status is SignatureStatus.SIGNED

    await eventually(signed, what=f"the sandbox signed {signature_id}")
    return StatusEvent(signature_id=signature_id, status=SignatureStatus.SIGNED)


async def signed_by_status_event(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    polling = PollingPolicy(initial_interval=timedelta(hours=1))
    target = sb.target("wallet", "evm-gated")
    handle, _ = await _decided(client, sb, tq, wid, target, polling)
    event = await _signed_event(handle, sb, target)
    await handle.execute_update(SignatureWorkflow.report_status_event, event)
    # The duplicate, as a webhook retry would send it. The update's own workflow task can
    # finish the run first; then there is nothing to ignore.
    with contextlib.suppress(RPCError):
        await handle.signal(SignatureWorkflow.status_event, event)
    await handle.result()


async def _resolved_approval_event(sb: EngineSandbox, approval_id: str) -> ApprovalEvent:
    """The approval as Dfns's ``policy.approval.resolved`` webhook carries it, read back."""
    async with httpx.AsyncClient(base_url=sb.base_url, timeout=10) as http:
        approval = await sb.dfns_client("engine", http).get_approval(approval_id)
    assert approval.status != "Pending" and approval.date_resolved is not None
    return ApprovalEvent(
        approval_id=approval.id,
        status=approval.status,  # type: ignore[arg-type]  # checked by the model
        decisions=[
            ApprovalDecisionInfo(user_id=d.user_id, value=d.value, date=d.date, reason=d.reason)
            for d in approval.decisions
        ],
        initiator_id=approval.initiator_id,
        expiration_date=approval.expiration_date,
        date_resolved=approval.date_resolved,
        signature_id=approval.signature_request_id,
    )


async def signed_by_webhook_status(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """The status event alone: read, verified and the approval read in one workflow task."""
    polling = PollingPolicy(initial_interval=timedelta(hours=1))
    target = sb.target("key", "evm-gated")
    handle, _ = await _decided(client, sb, tq, wid, target, polling)
    await handle.signal(SignatureWorkflow.status_event, await _signed_event(handle, sb, target))
    await handle.result()


async def signed_by_webhook_local_read(
    client: Client, sb: EngineSandbox, tq: str, wid: str
) -> None:
    """The status event with the budget off: the read is a local activity in its task."""
    polling = PollingPolicy(initial_interval=timedelta(hours=1), local_reads=True)
    target = sb.target("key", "evm-gated")
    handle, _ = await _decided(client, sb, tq, wid, target, polling)
    await handle.signal(SignatureWorkflow.status_event, await _signed_event(handle, sb, target))
    await handle.result()


async def signed_by_carried_view(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """The signed event carries the request, as Dfns's does: its signature verifies in a
    local activity and the workflow finishes without reading the request."""
    polling = PollingPolicy(initial_interval=timedelta(hours=1), local_reads=True)
    target = sb.target("key", "evm-gated")
    handle, _ = await _decided(client, sb, tq, wid, target, polling)
    hint = await _signed_event(handle, sb, target)
    async with httpx.AsyncClient(base_url=sb.base_url, timeout=10) as http:
        view = await sb.dfns_client("engine", http).fetch(target, hint.signature_id)
    carried = view.model_copy(update={"request_body": {}})
    event = hint.model_copy(update={"external_id": view.external_id, "view": carried})
    await handle.signal(SignatureWorkflow.status_event, StatusEvent.model_validate(event))
    await handle.result()


async def budget_queued_reads(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """The same input on workers that keep a budget: they refuse the local reads (a patch
    marker records it) and the read runs on the reads queue."""
    await signed_by_webhook_local_read(client, sb, tq, wid)


async def signed_after_approval_event(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """Both webhooks of an approval: the resolved approval, then the request's status."""
    polling = PollingPolicy(initial_interval=timedelta(hours=1))
    target = sb.target("wallet", "evm-gated")
    handle, approval = await _decided(client, sb, tq, wid, target, polling)
    await handle.signal(
        SignatureWorkflow.approval_event, await _resolved_approval_event(sb, approval)
    )
    await handle.signal(SignatureWorkflow.status_event, await _signed_event(handle, sb, target))
    await handle.result()


async def signed_with_approval_in_status_event(
    client: Client, sb: EngineSandbox, tq: str, wid: str
) -> None:
    """The receiver held the resolved approval for the request's status event: one signal
    carries both, and the outcome needs no read of the approval."""
    polling = PollingPolicy(initial_interval=timedelta(hours=1))
    target = sb.target("key", "evm-gated")
    handle, approval = await _decided(client, sb, tq, wid, target, polling)
    resolved = await _resolved_approval_event(sb, approval)
    hint = await _signed_event(handle, sb, target)
    event = hint.model_copy(update={"approval": resolved})
    await handle.signal(SignatureWorkflow.status_event, StatusEvent.model_validate(event))
    await handle.result()


async def approval_event_then_poll(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """The resolved approval arrives, its status event is lost: the next poll, brought
    forward to the initial interval, finds the request signed."""
    polling = PollingPolicy(initial_interval=timedelta(minutes=1), max_interval=timedelta(hours=1))
    target = sb.target("key", "evm-gated")
    handle, approval = await _decided(client, sb, tq, wid, target, polling, wait=timedelta(hours=2))
    await handle.signal(
        SignatureWorkflow.approval_event, await _resolved_approval_event(sb, approval)
    )
    await handle.result()


async def expired_by_deadline(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    deadline = await _ENV[0].get_current_time() + timedelta(hours=3)
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        _input(sb.target("key", "evm-gated"), deadline=deadline),
        id=wid,
        task_queue=tq,
    )
    await handle.result()


async def expired_by_approval_timeout(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    handle = await client.start_workflow(
        SignatureWorkflow.run, _input(sb.target("key", "evm-expiring")), id=wid, task_queue=tq
    )
    await handle.result()


async def cancelled(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        _input(sb.target("key", "evm-gated"), deliveries=[LedgerDelivery()]),
        id=wid,
        task_queue=tq,
    )
    await _approval_id(client, wid)
    await skip_time(_ENV[0], timedelta(minutes=20))
    await handle.cancel()
    await handle.result()


async def continued_as_new(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    polling = PollingPolicy(continue_as_new_after_polls=3)
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        _input(sb.target("key", "evm-gated"), polling=polling),
        id=wid,
        task_queue=tq,
    )
    approval = await _approval_id(client, wid)
    await skip_time(_ENV[0], timedelta(minutes=30))
    await sb.decide(approval, "alice", "bob")
    await handle.result()


async def verification_failed(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    await sb.set_faults(corruptSignatures=1)
    handle = await client.start_workflow(
        SignatureWorkflow.run, _input(sb.target("key", "evm-auto")), id=wid, task_queue=tq
    )
    # The workflow fails (the signature does not verify): that failure is what is recorded.
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()


async def payout_confirmed(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    wallet = sb.key("evm-auto")["wallets"][0]["id"]
    handle = await client.start_workflow(
        PayoutWorkflow.run,
        PayoutInput(
            source=SigningTarget(kind="wallet", id=wallet),
            transfer=BuildTransferInput(
                chain_id=11155111,
                nonce=1,
                to="0x" + "a1" * 20,
                value_wei=10**16,
                max_fee_per_gas=30 * 10**9,
                max_priority_fee_per_gas=10**9,
            ),
            wait_for_confirmed=True,
        ),
        id=wid,
        task_queue=tq,
    )
    await handle.result()


BATCH_PAYOUTS = 3
"""The batch scenario's payouts: ids ``<batch id>-payout-<n>``, two per run."""


async def batch(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    payouts = [
        BatchPayout(id=f"{wid}-payout-{n}", to="0x" + "a2" * 20, value_wei=10**15 + n, nonce=n)
        for n in range(BATCH_PAYOUTS)
    ]
    await client.execute_workflow(
        PayoutBatchWorkflow.run,
        PayoutBatchInput(
            source=sb.target("key", "evm-auto"),
            payouts=payouts,
            concurrency=2,
            payouts_per_run=2,
            summary=[LedgerDelivery()],
        ),
        id=wid,
        task_queue=tq,
    )


async def reconciled(client: Client, sb: EngineSandbox, tq: str, wid: str) -> None:
    """The reconciler (paced, 15 sweeps a run) lets a request skip its safety-net polls,
    then wakes it once its approval is decided."""
    reconciler = await client.start_workflow(
        ReconcilerWorkflow.run,
        ReconcilerInput(interval=timedelta(seconds=1), calls_per_minute=120, sweeps_per_run=15),
        # The queue's own reconciler id: the request's safety net asks that one.
        id=reconciler_workflow_id(tq),
        task_queue=tq,
    )
    safety_net = PollingPolicy(
        initial_interval=timedelta(seconds=20),
        max_interval=timedelta(seconds=20),
        reconciled=True,
        jitter=0.25,
    )
    request_id = f"{wid}-request"
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        _input(sb.target("key", "evm-gated"), polling=safety_net),
        id=request_id,
        task_queue=tq,
    )
    approval = await _approval_id(client, request_id)

    async def skipped() -> bool:
        progress = await handle.query(SignatureWorkflow.state)
        return progress.polls_skipped >= 1

    await eventually(skipped, what="a safety-net poll skipped", within=120)
    await sb.decide(approval, "alice", "bob")
    await handle.result()

    async def in_second_run() -> bool:
        progress = await reconciler.query(ReconcilerWorkflow.progress)
        return progress.woken >= 1 and progress.sweeps > 15

    await eventually(in_second_run, what="the reconciler woke the request and continued as new")
    await reconciler.terminate("recorded")


SCENARIOS: dict[str, Scenario] = {
    "signed-after-polling": signed_after_polling,
    "signed-by-status-event": signed_by_status_event,
    "signed-by-webhook-status": signed_by_webhook_status,
    "signed-by-webhook-local-read": signed_by_webhook_local_read,
    "signed-by-carried-view": signed_by_carried_view,
    "budget-queued-reads": budget_queued_reads,
    "signed-after-approval-event": signed_after_approval_event,
    "signed-with-approval-in-status-event": signed_with_approval_in_status_event,
    "approval-event-then-poll": approval_event_then_poll,
    "expired-by-deadline": expired_by_deadline,
    "expired-by-approval-timeout": expired_by_approval_timeout,
    "cancelled": cancelled,
    "continued-as-new": continued_as_new,
    "verification-failed": verification_failed,
    "payout-confirmed": payout_confirmed,
    "batch": batch,
    "reconciled": reconciled,
}
ON_DEV_SERVER: frozenset[str] = frozenset({"reconciled"})
"""Scenarios that need visibility queries, which the time-skipping server does not serve."""
BUDGETED: frozenset[str] = frozenset({"budget-queued-reads"})
"""Scenarios whose workers keep a Dfns budget (lane rates set)."""
_ENV: list[WorkflowEnvironment] = []


async def _run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of ``workflow_id``, first to last (following continue-as-new)."""
    latest = await client.get_workflow_handle(workflow_id).fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    run_id = started.first_execution_run_id
    histories: list[WorkflowHistory] = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


async def record(name: str, scenario: Scenario, directory: Path) -> list[Path]:
    """Run one scenario and write the histories of every run of every workflow it made."""
    env = await (start_dev_server() if name in ON_DEV_SERVER else start_time_skipping())
    _ENV[:] = [env]
    sandbox = EngineSandbox(directory / name).start()
    tq = f"record-{name}"
    stem = name
    wid = f"replay-{stem}"
    written: list[Path] = []
    try:
        async with (
            httpx.AsyncClient(
                base_url=sandbox.base_url,
                timeout=10,
                event_hooks={"request": [sandbox.clock_sync_hook()]},
            ) as http,
            httpx.AsyncClient(timeout=5) as callbacks,
        ):
            activities = engine_activities(
                sandbox.dfns_client("engine", http),
                callbacks,
                callback_secrets={"default": SecretStr("recorder-callback-secret")},
                ledgers={"default": SqliteLedger(directory / name / "ledger.sqlite")},
            )
            rates: dict[Lane, float] | None = (
                {"reads": 50.0, "writes": 50.0} if name in BUDGETED else None
            )
            async with engine_workers(
                env.client, task_queue=tq, activities=activities, rates=rates
            ):
                await scenario(env.client, sandbox, tq, wid)
                workflow_ids = [reconciler_workflow_id(tq) if scenario is reconciled else wid]
                if scenario is payout_confirmed:
                    workflow_ids.append(child_signature_workflow_id(wid))
                if scenario is batch:
                    workflow_ids.append(f"{wid}-payout-0")
                if scenario is reconciled:
                    workflow_ids.append(f"{wid}-request")
                for workflow_id in workflow_ids:
                    histories = await _run_histories(env.client, workflow_id)
                    for index, history in enumerate(histories):
                        file_stem = stem if workflow_id == workflow_ids[0] else f"{stem}-child"
                        if scenario in (batch, reconciled) and workflow_id != workflow_ids[0]:
                            file_stem = workflow_id.removeprefix("replay-")
                        suffix = "" if len(histories) == 1 else f"-run{index + 1}"
                        path = HISTORIES / f"{file_stem}{suffix}.json"
                        path.write_text(history.to_json())
                        written.append(path)
    finally:
        sandbox.stop()
        await env.shutdown()
    return written


async def main(names: list[str]) -> None:
    """Record the named scenarios (all by default)."""
    HISTORIES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(SCENARIOS):
            for path in await record(name, SCENARIOS[name], Path(tmp)):
                print(f"wrote {path.relative_to(Path.cwd())}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
