"""The reconciler wakes the requests whose approval moved, through a kill -9 of its worker.

Webhooks are off and every request polls once an hour, so only the reconciler's sweeps of
``GET /v2/policy-approvals?status=Pending`` can tell a workflow that its approval was decided.
One request is approved and one denied while the worker runs; the worker is then killed with
SIGKILL, the third is approved while no worker runs, and a new worker process takes over:
every request ends as Dfns decided, each woken by exactly one applied hint, with one Dfns
request each and one reconciler execution for the task queue.

The safety net: a request whose polls fall due every 20 s skips them (no Dfns call) while the
reconciler sweeps, polls Dfns again once the reconciler is gone, and so still learns of its
approval.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle

from signgate import ids
from signgate.contracts import (
    PollingPolicy,
    ReconcilerProgress,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
)
from signgate.dfns.requests import HashRequest
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.signature import SignatureWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HOURLY = PollingPolicy(initial_interval=timedelta(hours=1), max_interval=timedelta(hours=1))
Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]


async def _progress(handle: Handle) -> SignatureProgress:
    progress: SignatureProgress = await handle.query(ids.QUERY_STATE, result_type=SignatureProgress)
    return progress


async def _start(
    client: Client, sandbox: EngineSandbox, task_queue: str, polling: PollingPolicy, prefix: str
) -> Handle:
    """A gated hash request with ``polling``, its workflow id starting with ``prefix``."""
    handle: Handle = await client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput(
            target=sandbox.target("key", "evm-gated"),
            request=HashRequest(hash="0x" + uuid.uuid4().hex * 2),
            polling=polling,
        ),
        id=f"{prefix}-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
    )
    return handle


async def _approval_of(handle: Handle) -> str:
    async def probe() -> str | None:
        progress = await _progress(handle)
        return progress.approval_id if progress.status == "Pending" else None

    found: str = await eventually(probe, what=f"{handle.id} waits for its approval", within=120)
    return found


async def test_the_reconciler_wakes_moved_requests_across_a_kill_9(
    dev_server: DevServer, client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    env = {
        **engine_env(dev_server, sandbox, task_queue, tmp_path),
        "SIGNGATE_RECONCILER_ENABLED": "true",
        "SIGNGATE_RECONCILE_INTERVAL_SECONDS": "1",
    }
    worker = WorkerProcess(env).start()
    try:
        handles = [
            await _start(client, sandbox, task_queue, HOURLY, f"reconcile-{plan}")
            for plan in ("approve", "deny", "later")
        ]
        approve, deny, later = handles
        approvals = [await _approval_of(h) for h in handles]
        await sandbox.decide(approvals[0], "alice", "bob")
        await sandbox.decide(approvals[1], "bob", value="Denied")
        assert (await approve.result()).kind == "signed"
        assert (await deny.result()).kind == "rejected"
        # The third is still waiting: nothing woke it, its approval is pending.
        assert (await _progress(later)).status == "Pending"
    finally:
        worker.kill()

    # Decided while no worker runs: the next worker's reconciler must notice it.
    await sandbox.decide(approvals[2], "alice", "bob")
    worker = WorkerProcess(env).start()
    try:
        assert (await later.result()).kind == "signed"
        await _check(client, sandbox, task_queue, handles)
    finally:
        worker.terminate()


async def _check(
    client: Client, sandbox: EngineSandbox, task_queue: str, handles: list[Handle]
) -> None:
    """Queries need a worker: run while the second one is up."""
    for handle in handles:
        progress = await _progress(handle)
        # One hint applied per request: a second sweep's hint for the same move is ignored.
        assert progress.events_applied == 1, (handle.id, progress)
        # Polls wait an hour: the one read each made was the reconciler's wake-up.
        assert progress.next_poll_in is None or progress.next_poll_in > timedelta(minutes=30)
        outcome = await handle.result()
        assert outcome.external_id is not None
        found = await sandbox.signatures_with_external_id("evm-gated", outcome.external_id)
        assert found == [outcome.signature_id], "one Dfns request per workflow"
    reconciler = client.get_workflow_handle(ids.reconciler_workflow_id(task_queue))
    state: ReconcilerProgress = await reconciler.query(
        ids.QUERY_RECONCILER, result_type=ReconcilerProgress
    )
    assert state.woken >= 3 and state.sweeps >= 2, state
    runs = [
        wf
        async for wf in client.list_workflows(
            f"WorkflowId = '{reconciler.id}' AND ExecutionStatus = 'Running'"
        )
    ]
    assert len(runs) == 1, "one reconciler for the task queue, however many workers started"
    await reconciler.terminate("test over")


async def test_safety_net_polls_skip_dfns_while_the_reconciler_sweeps_and_resume_without_it(
    dev_server: DevServer, client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    env = {
        **engine_env(dev_server, sandbox, task_queue, tmp_path),
        "SIGNGATE_RECONCILER_ENABLED": "true",
        "SIGNGATE_RECONCILE_INTERVAL_SECONDS": "1",
    }
    safety_net = PollingPolicy(
        initial_interval=timedelta(seconds=20),
        max_interval=timedelta(seconds=20),
        reconciled=True,
        jitter=0.25,
    )
    worker = WorkerProcess(env).start()
    try:
        handle = await _start(client, sandbox, task_queue, safety_net, "safety-net")
        approval = await _approval_of(handle)

        async def skipped_twice() -> SignatureProgress | None:
            progress = await _progress(handle)
            return progress if progress.polls_skipped >= 2 else None

        before = await eventually(skipped_twice, what="two safety-net polls skipped", within=180)
        reconciler = client.get_workflow_handle(ids.reconciler_workflow_id(task_queue))
        await reconciler.terminate("the test takes the reconciler away")

        async def polled_again() -> bool:
            return (await _progress(handle)).polls > before.polls

        await eventually(polled_again, what="a safety-net poll read Dfns", within=180)
        # Decided while no reconciler sweeps: only the request's own poll can notice it.
        await sandbox.decide(approval, "alice", "bob")
        assert (await handle.result()).kind == "signed"
        assert (await _progress(handle)).events_applied == 0, "no hint: a poll noticed it"
    finally:
        worker.terminate()
