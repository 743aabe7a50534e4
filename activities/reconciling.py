"""The reconciler's two looks, and the question a waiting request asks of it.

The looks are what Dfns still holds for approval and what the engine waits on. Both are
pages, so a sweep costs one Dfns call per ``page_size`` pending approvals and one visibility
call per thousand waiting requests, never a call per request. The comparison and the
wake-ups are the workflow's (:mod:`workflows.reconciler`): an activity only reads.

The question (``reconciler_swept``) is a Temporal query, answered from a cache a few seconds
old, so thousands of safety-net polls falling due cost the reconciler one query, not
thousands, and Dfns nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from datetime import datetime, timedelta
from typing import Final

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.errors import read_errors
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import (
    RECONCILED_STATUSES,
    PendingApprovalsInput,
    PendingApprovalsPage,
    ReconcilerProgress,
    ReconcilerSwept,
    ReconcilerSweptInput,
    WaitingRequest,
    WaitingRequestsInput,
    WaitingRequestsPage,
)
from signgate.dfns.client import DfnsClient
from signgate.dfns.models import SignatureStatus

__all__ = [
    "VISIBILITY_MARGIN",
    "WAITING_STATUSES",
    "ReconcilerActivities",
    "swept_since",
    "waiting_query",
]

_log = structlog.get_logger(__name__)

VISIBILITY_MARGIN: Final = timedelta(seconds=5)
"""How much later than a wait's start a sweep must start to count: a status a workflow has
just recorded reaches the visibility index a moment later, and a sweep that listed the
waiting requests before it did would not have looked at that request."""

_PROGRESS_TTL: Final = 10.0
"""Seconds a worker reuses the reconciler's answer before it asks again."""

WAITING_STATUSES: Final = RECONCILED_STATUSES
"""The statuses in which a request waits at Dfns (for its approval, or for the signer)."""


def waiting_query(task_queue: str) -> str:
    """The visibility query of the ``SignatureWorkflow``\\ s of ``task_queue`` waiting at Dfns."""
    if "'" in task_queue or "\\" in task_queue:
        raise ValueError(f"task queue {task_queue!r} cannot be quoted in a visibility query")
    statuses = ", ".join(f"'{s.value}'" for s in WAITING_STATUSES)
    return (
        f"WorkflowType = '{ids.SIGNATURE_WORKFLOW}' AND ExecutionStatus = 'Running'"
        f" AND TaskQueue = '{task_queue}' AND {ids.SA_STATUS.name} IN ({statuses})"
    )


def swept_since(progress: ReconcilerProgress, since: datetime) -> bool:
    """Whether ``progress`` shows a full sweep that started late enough after ``since``.

    Such a sweep saw the request waiting and would have woken it had its approval moved.
    """
    started = progress.last_ok_sweep_started_at
    return started is not None and started >= since + VISIBILITY_MARGIN


class ReconcilerActivities:
    """Reads for :class:`workflows.reconciler.ReconcilerWorkflow` (Dfns and visibility), and
    the safety net's question to it."""

    def __init__(self, dfns: DfnsClient) -> None:
        self._dfns = dfns
        self._progress: dict[str, tuple[float, ReconcilerProgress | None, str | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @api.RECONCILER_SWEPT.implements
    async def reconciler_swept(self, input: ReconcilerSweptInput) -> ReconcilerSwept:
        """Has the queue's reconciler swept since ``input.since``? Never an error: when the
        reconciler cannot be asked, the answer is "not known" and the caller polls Dfns."""
        progress, why = await self._reconciler_progress(activity.client(), input.task_queue)
        if progress is None:
            return ReconcilerSwept(swept=False, why=why)
        return ReconcilerSwept(swept=swept_since(progress, input.since))

    async def _reconciler_progress(
        self, client: Client, task_queue: str
    ) -> tuple[ReconcilerProgress | None, str | None]:
        lock = self._locks.setdefault(task_queue, asyncio.Lock())
        async with lock:  # one query at a time per queue; the others take its answer
            cached = self._progress.get(task_queue)
            if cached is not None and time.monotonic() - cached[0] < _PROGRESS_TTL:
                return cached[1], cached[2]
            progress: ReconcilerProgress | None = None
            why: str | None = None
            handle = client.get_workflow_handle(ids.reconciler_workflow_id(task_queue))
            try:
                progress = await handle.query(
                    ids.QUERY_RECONCILER,
                    result_type=ReconcilerProgress,
                    rpc_timeout=timedelta(seconds=10),
                )
            except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
                why = f"the reconciler did not answer: {exc}"
                _log.info("reconciler.unknown", task_queue=task_queue, error=str(exc))
            self._progress[task_queue] = (time.monotonic(), progress, why)
            return progress, why

    @api.PENDING_APPROVALS.implements
    async def pending_approvals(self, input: PendingApprovalsInput) -> PendingApprovalsPage:
        """One page of the org's pending approvals: the signature requests they hold."""
        with read_errors("list pending approvals"):
            page = await self._dfns.list_approvals(
                status="Pending", limit=input.page_size, pagination_token=input.token
            )
        return PendingApprovalsPage(
            signature_ids=[
                a.signature_request_id for a in page.items if a.signature_request_id is not None
            ],
            next_token=page.next_page_token,
        )

    @api.WAITING_REQUESTS.implements
    async def waiting_requests(self, input: WaitingRequestsInput) -> WaitingRequestsPage:
        """One page of waiting requests from Temporal's visibility index."""
        token: bytes | None = None
        if input.token is not None:
            try:
                token = base64.b64decode(input.token, validate=True)
            except binascii.Error:
                raise ApplicationError(
                    "the visibility page token is not base64", non_retryable=True
                ) from None
        executions = activity.client().list_workflows(
            waiting_query(input.task_queue), page_size=input.page_size, next_page_token=token
        )
        await executions.fetch_next_page()
        requests: list[WaitingRequest] = []
        for execution in executions.current_page or []:
            attrs = execution.typed_search_attributes
            signature_id, status = attrs.get(ids.SA_SIGNATURE_ID), attrs.get(ids.SA_STATUS)
            if signature_id is None or status not in {s.value for s in WAITING_STATUSES}:
                continue
            requests.append(
                WaitingRequest(
                    workflow_id=execution.id,
                    signature_id=signature_id,
                    status=SignatureStatus(status),
                )
            )
        next_token = executions.next_page_token
        return WaitingRequestsPage(
            requests=requests,
            next_token=base64.b64encode(next_token).decode() if next_token else None,
        )
