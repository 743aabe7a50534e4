"""The reconciler's two looks: what Dfns still holds for approval, and what the engine waits on.

Both are pages, so a sweep costs one Dfns call per ``page_size`` pending approvals and one
visibility call per thousand waiting requests, never a call per request. The comparison and
the wake-ups are the workflow's (:mod:`workflows.reconciler`): an activity only reads.
"""

from __future__ import annotations

import base64
import binascii

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import read_errors
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import (
    PendingApprovalsInput,
    PendingApprovalsPage,
    WaitingRequest,
    WaitingRequestsInput,
    WaitingRequestsPage,
)
from signgate.dfns.client import DfnsClient
from signgate.dfns.models import SignatureStatus

__all__ = ["WAITING_STATUSES", "ReconcilerActivities", "waiting_query"]

WAITING_STATUSES: tuple[SignatureStatus, ...] = (SignatureStatus.PENDING, SignatureStatus.EXECUTING)
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


class ReconcilerActivities:
    """Reads for :class:`workflows.reconciler.ReconcilerWorkflow` (Dfns and visibility)."""

    def __init__(self, dfns: DfnsClient) -> None:
        self._dfns = dfns

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
