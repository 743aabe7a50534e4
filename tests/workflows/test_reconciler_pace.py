"""ReconcilerWorkflow's pace and its answer to the safety net, on the time-skipping server.

The two activities are fakes here (this tests the workflow's timing, one layer): a
visibility page with a thousand waiting requests and pending-approval pages served from a
list. The real activities against the sandbox and a dev server are in
``tests/e2e/test_reconciler.py``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from signgate import activity_api as api
from signgate import ids
from signgate.contracts import (
    PendingApprovalsInput,
    PendingApprovalsPage,
    ReconcilerInput,
    ReconcilerProgress,
    WaitingRequest,
    WaitingRequestsInput,
    WaitingRequestsPage,
)
from signgate.dfns.models import SignatureStatus
from tests.support.eventually import eventually
from tests.support.temporal import skip_time
from workflows.reconciler import ReconcilerWorkflow

PAGES = 5


class FakeOrg:
    """Five pages of pending approvals; every waiting request stays pending."""

    def __init__(self) -> None:
        self.page_calls: list[datetime] = []

    @api.WAITING_REQUESTS.implements
    async def waiting(self, input: WaitingRequestsInput) -> WaitingRequestsPage:
        return WaitingRequestsPage(
            requests=[
                WaitingRequest(
                    workflow_id=f"wf-{n}", signature_id=f"sig-{n}", status=SignatureStatus.PENDING
                )
                for n in range(PAGES)
            ]
        )

    @api.PENDING_APPROVALS.implements
    async def pending(self, input: PendingApprovalsInput) -> PendingApprovalsPage:
        self.page_calls.append(activity.info().current_attempt_scheduled_time)
        index = int(input.token or "0")
        return PendingApprovalsPage(
            signature_ids=[f"sig-{index}"],
            next_token=str(index + 1) if index + 1 < PAGES else None,
        )


async def test_pages_are_read_no_faster_than_the_budget_allows(ts_env: WorkflowEnvironment) -> None:
    org = FakeOrg()
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    lanes = [ids.dfns_task_queue(task_queue, lane) for lane in api.LANES]
    workers = [
        Worker(ts_env.client, task_queue=task_queue, workflows=[ReconcilerWorkflow]),
        Worker(ts_env.client, task_queue=task_queue, activities=[org.waiting]),
        *(Worker(ts_env.client, task_queue=q, activities=[org.pending]) for q in lanes),
    ]
    for w in workers:
        await w.__aenter__()
    try:
        handle = await ts_env.client.start_workflow(
            ReconcilerWorkflow.run,
            # Six calls a minute: pages 10 s apart, so a sweep of five takes 40 s, longer
            # than the 15 s interval, and the next sweep's first page still waits its turn.
            ReconcilerInput(interval=timedelta(seconds=15), calls_per_minute=6, sweeps_per_run=3),
            id=f"reconciler-{task_queue}",
            task_queue=task_queue,
        )

        # Two sweeps' pages take 90 s of workflow time; the server skips it.
        await skip_time(ts_env, timedelta(minutes=2))

        async def two_sweeps() -> ReconcilerProgress | None:
            state: ReconcilerProgress = await handle.query(ReconcilerWorkflow.progress)
            return state if len(org.page_calls) >= 2 * PAGES and state.sweeps >= 2 else None

        state = await eventually(two_sweeps, what="two paced sweeps")
        gaps = [b - a for a, b in zip(org.page_calls, org.page_calls[1:], strict=False)]
        # (scheduled times are stamped a few milliseconds either side of the timer)
        assert min(gaps) >= timedelta(seconds=9.9), gaps
        assert state.woken == 0, "every request is still pending: nobody to wake"
        assert state.last_ok_sweep_started_at is not None
        assert state.last_error is None
        await handle.terminate("test over")
    finally:
        for w in reversed(workers):
            await w.__aexit__(None, None, None)
