"""ReconcilerWorkflow: notice approvals that moved, at a cost that grows with pages, not requests.

One reconciler runs per task queue (its id is :func:`signgate.ids.reconciler_workflow_id`),
that is per Dfns organisation the workers of that queue speak for. It sweeps at most once
every ``interval``:

1. **waiting**: the ``SignatureWorkflow``\\ s of its task queue that wait at Dfns, from
   Temporal's visibility index (a page per thousand; no Dfns call);
2. **pending**: the organisation's pending approvals, ``GET /v2/policy-approvals?status=
   Pending``, a page of ``page_size`` a call, on the budgeted reads queue, paced to
   ``calls_per_minute``;
3. **wake** each waiting request whose approval is no longer pending (and, once a minute,
   each request waiting for the signer) with a status hint, the same signal a webhook brings.

The pace is what keeps the cost flat: the reconciler spends at most ``calls_per_minute``
however many requests wait. Many pages make a sweep longer (a thousand pages' worth of
pending approvals take ``pages / calls_per_minute`` minutes to notice), never dearer. The
sweeps it finishes are also what the waiting requests' safety-net polls ask about
(``last_ok_sweep_started_at``): while the reconciler sweeps, those polls cost Dfns nothing.

Waiting is listed before pending: a request visible as ``Pending`` had its approval created
before it showed that status, so an approval missing from the later list has left
``Pending``. A page that shifted while it was read can only make a request look moved; the
hint then costs that workflow one read, which finds ``Pending`` and drops the hint. A hint is
never the truth: the woken workflow reads its request before it records a status, and a
second hint for the same move is ignored as a duplicate. A sweep that could not read a page
wakes nobody (a partial list would only cost reads) and the next sweep starts afresh.

After ``sweeps_per_run`` sweeps, or when the server suggests it, the reconciler continues as
new, so its history stays bounded however long it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from signgate import activity_api as api
    from signgate import ids
    from signgate.contracts import (
        PendingApprovalsInput,
        ReconcilerInput,
        ReconcilerProgress,
        StatusEvent,
        WaitingRequest,
        WaitingRequestsInput,
    )
    from signgate.dfns.models import SignatureStatus

__all__ = ["ReconcilerWorkflow", "to_wake"]

_SIGNALS_AT_ONCE = 100
_SIGNER_EVERY = timedelta(minutes=1)
"""Requests waiting for the signer are read at most this often (no list shows their move)."""
_NEXT_STATUS = {
    SignatureStatus.PENDING: SignatureStatus.EXECUTING,
    SignatureStatus.EXECUTING: SignatureStatus.SIGNED,
}
"""The least status past a waiting one: the hint that wakes a workflow without claiming more."""


def to_wake(
    waiting: Iterable[WaitingRequest], pending: set[str], *, signer: bool = True
) -> list[tuple[WaitingRequest, SignatureStatus]]:
    """The waiting requests to wake, each with its hint's status, one per workflow.

    A ``Pending`` request whose signature id is in no pending approval has moved; an
    ``Executing`` request waits for the signer, which no approval list shows, so it is read
    when ``signer`` says this sweep looks at those.
    """
    chosen: dict[str, tuple[WaitingRequest, SignatureStatus]] = {}
    for request in waiting:
        if request.status is SignatureStatus.PENDING and request.signature_id in pending:
            continue
        if request.status is SignatureStatus.EXECUTING and not signer:
            continue
        hint = _NEXT_STATUS.get(request.status)
        if hint is not None:
            chosen.setdefault(request.workflow_id, (request, hint))
    return list(chosen.values())


@workflow.defn(name=ids.RECONCILER_WORKFLOW)
class ReconcilerWorkflow:
    """Sweep, wake, sleep; continue as new now and then (see the module docstring)."""

    def __init__(self) -> None:
        self._sweeps = 0
        self._woken = 0
        self._last_sweep_at: datetime | None = None
        self._last_waiting = 0
        self._last_pending = 0
        self._last_error: str | None = None
        self._last_ok_started: datetime | None = None
        self._signer_looked_at: datetime | None = None
        self._last_call_at: datetime | None = None

    @workflow.run
    async def run(self, input: ReconcilerInput) -> None:
        """Run ``sweeps_per_run`` sweeps, then continue as new with the counts."""
        self._sweeps, self._woken = input.sweeps, input.woken
        self._last_ok_started = input.last_ok_sweep_started_at
        for _ in range(input.sweeps_per_run):
            started = workflow.now()
            await self._sweep(input)
            rest = input.interval - (workflow.now() - started)
            if rest > timedelta(0):
                await workflow.sleep(rest)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(
            input.model_copy(
                update={
                    "sweeps": self._sweeps,
                    "woken": self._woken,
                    "last_ok_sweep_started_at": self._last_ok_started,
                }
            )
        )

    @workflow.query(name=ids.QUERY_RECONCILER)
    def progress(self) -> ReconcilerProgress:
        """Sweeps made, workflows woken, and what the last sweep saw."""
        return ReconcilerProgress(
            sweeps=self._sweeps,
            woken=self._woken,
            last_sweep_at=self._last_sweep_at,
            last_waiting=self._last_waiting,
            last_pending=self._last_pending,
            last_error=self._last_error,
            last_ok_sweep_started_at=self._last_ok_started,
        )

    async def _sweep(self, input: ReconcilerInput) -> None:
        self._sweeps += 1
        started = self._last_sweep_at = workflow.now()
        try:
            waiting = await self._waiting()
            # Nothing waits: no Dfns call at all.
            pending = await self._pending(input) if waiting else set()
        except ActivityError as exc:
            cause = exc.cause if exc.cause is not None else exc
            self._last_error = str(cause)
            workflow.logger.warning("reconciler.sweep_failed", extra={"error": str(cause)})
            return
        self._last_error = None
        self._last_waiting, self._last_pending = len(waiting), len(pending)
        looked = self._signer_looked_at
        signer = looked is None or started - looked >= _SIGNER_EVERY
        if signer:
            self._signer_looked_at = started
        wake = to_wake(waiting, pending, signer=signer)
        for start in range(0, len(wake), _SIGNALS_AT_ONCE):
            chunk = wake[start : start + _SIGNALS_AT_ONCE]
            sent = await asyncio.gather(*(self._wake(r, s) for r, s in chunk))
            self._woken += sum(sent)
        self._last_ok_started = started
        if wake:
            workflow.logger.info(
                "reconciler.woke",
                extra={"waiting": len(waiting), "pending": len(pending), "woken": len(wake)},
            )

    async def _waiting(self) -> list[WaitingRequest]:
        found: list[WaitingRequest] = []
        token: str | None = None
        while True:
            page = await api.WAITING_REQUESTS.run(
                WaitingRequestsInput(task_queue=workflow.info().task_queue, token=token)
            )
            found.extend(page.requests)
            token = page.next_token
            if token is None:
                return found

    async def _pending(self, input: ReconcilerInput) -> set[str]:
        found: set[str] = set()
        token: str | None = None
        gap = (
            timedelta(minutes=1) / input.calls_per_minute
            if input.calls_per_minute is not None
            else timedelta(0)
        )
        while True:
            # Each call at least ``gap`` after the one before, across sweeps too.
            if self._last_call_at is not None:
                rest = self._last_call_at + gap - workflow.now()
                if rest > timedelta(0):
                    await workflow.sleep(rest)
            self._last_call_at = workflow.now()
            page = await api.PENDING_APPROVALS.run(
                PendingApprovalsInput(page_size=input.page_size, token=token)
            )
            found.update(page.signature_ids)
            token = page.next_token
            if token is None:
                return found

    async def _wake(self, request: WaitingRequest, status: SignatureStatus) -> bool:
        event = StatusEvent(
            signature_id=request.signature_id,
            status=status,
            source="reconciler",
            event_id=f"reconcile-{self._sweeps}",
        )
        try:
            await workflow.get_external_workflow_handle(request.workflow_id).signal(
                ids.SIGNAL_STATUS_EVENT, event
            )
        except Exception as exc:  # it finished since the index answered: nothing to wake
            workflow.logger.info(
                "reconciler.wake_missed",
                extra={"workflow_id": request.workflow_id, "error": str(exc)},
            )
            return False
        return True
