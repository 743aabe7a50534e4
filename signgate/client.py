"""signgate from code: start a signature, wait for it a while, follow it, decide on it.

A small typed facade over the ordinary ``temporalio`` client (configured by
``temporalio.envconfig`` through :mod:`signgate.temporal_client`, as every signgate
process is), so a caller needs none of Temporal's details::

    client = await SigngateClient.connect()
    result = await client.sign(target, request, request_id="payout-42", wait=timedelta(seconds=5))
    if isinstance(result, SignatureHandle):       # still waiting for approval
        async for progress in result.progress():  # each change of status or approval
            ...
        outcome = await result.outcome()
    else:
        outcome = result                          # settled within the wait

The ``request_id`` is the business key and the workflow id: one Dfns request per id, ever.
Starting an id that is running or closed starts nothing and attaches to it
(``handle.started`` is ``False``), so a caller that retries after a crash never doubles a
request. Errors form one tree under :class:`SigngateError`:

* :class:`InvalidSignatureInput` — the input was refused before anything started;
* :class:`RequestNotFound` — no signature workflow has that id;
* :class:`NotRunning` — the request has already settled (cancel, approve or deny came late);
* :class:`NoPendingApproval` — approve / deny found no approval waiting for a decision;
* :class:`DecisionRefused` — Dfns refused the approver's decision (its message says why);
* :class:`SignatureFailed` — the workflow failed: Dfns refused the request, the request at
  Dfns is not the one asked for, or a returned signature did not verify (``error_type``
  says which, as one of ``signgate.ids.ERR_*``). A rejected, failed, expired or cancelled
  request is an *outcome*, not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from signgate import ids
from signgate.contracts import (
    DeliverySpec,
    PollingPolicy,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
)
from signgate.dfns.client import DfnsClient, SigningTarget
from signgate.dfns.errors import DfnsError
from signgate.dfns.requests import ApprovalDecisionRequest, SignatureRequestBody
from signgate.temporal_client import connect_temporal

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "DecisionRefused",
    "InvalidSignatureInput",
    "NoPendingApproval",
    "NotRunning",
    "RequestNotFound",
    "RequestSummary",
    "SignatureFailed",
    "SignatureHandle",
    "SigngateClient",
    "SigngateError",
]

DEFAULT_TASK_QUEUE = "signgate"


class SigngateError(Exception):
    """Every error :mod:`signgate.client` raises; ``message`` says what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSignatureInput(SigngateError):
    """The target, request or options were refused before anything was started."""


class RequestNotFound(SigngateError):
    """No signature workflow has this request id."""


class NotRunning(SigngateError):
    """The request has settled; what was asked of it can no longer change anything."""


class NoPendingApproval(SigngateError):
    """There is no approval waiting for a decision on this request."""


class DecisionRefused(SigngateError):
    """Dfns refused the approver's decision (not an approver, already decided, ...)."""


class SignatureFailed(SigngateError):
    """The workflow failed instead of reaching an outcome (``error_type``: ``ids.ERR_*``)."""

    def __init__(self, message: str, *, error_type: str | None) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class RequestSummary:
    """One signature workflow as visibility shows it (no query: cheap for long lists)."""

    request_id: str
    running: bool
    status: str | None
    """Dfns's last status, or ``SubmitUnknown`` (``SignGateStatus``)."""
    outcome: str | None
    """The outcome kind once settled (``SignGateOutcome``)."""
    signature_id: str | None
    started_at: datetime | None
    closed_at: datetime | None


def _failure(request_id: str, exc: WorkflowFailureError) -> SignatureFailed:
    cause: BaseException | None = exc.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if isinstance(cause, ApplicationError):
        return SignatureFailed(f"{request_id} failed: {cause.message}", error_type=cause.type)
    return SignatureFailed(f"{request_id} failed: {exc.cause or exc}", error_type=None)


class SignatureHandle:
    """One signature request by its request id; every method asks the workflow afresh."""

    def __init__(
        self, handle: WorkflowHandle[Any, SignatureOutcome], *, started: bool, run_id: str | None
    ) -> None:
        self._handle = handle
        self.request_id = handle.id
        self.started = started
        """Whether this call started the request (``False``: it existed and was attached)."""
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"SignatureHandle({self.request_id!r}, started={self.started})"

    async def outcome(self, *, within: timedelta | None = None) -> SignatureOutcome:
        """Wait for the outcome (for ``within`` at most: then ``TimeoutError``)."""
        waiting = self._handle.result()
        try:
            if within is None:
                return await waiting
            return await asyncio.wait_for(waiting, within.total_seconds())
        except WorkflowFailureError as exc:
            raise _failure(self.request_id, exc) from None
        except RPCError as exc:
            raise _not_found(self.request_id, exc) from None

    async def status(self) -> SignatureProgress:
        """Where the request stands (the workflow's ``state`` query)."""
        try:
            state: SignatureProgress = await self._handle.query(
                ids.QUERY_STATE, result_type=SignatureProgress
            )
        except RPCError as exc:
            raise _not_found(self.request_id, exc) from None
        return state

    async def running(self) -> bool:
        """Whether the request is still waiting (its workflow is open)."""
        try:
            described = await self._handle.describe()
        except RPCError as exc:
            raise _not_found(self.request_id, exc) from None
        return described.status == WorkflowExecutionStatus.RUNNING

    async def progress(
        self, *, every: timedelta = timedelta(seconds=1)
    ) -> AsyncIterator[SignatureProgress]:
        """Each change of status, approval or decision until the request settles.

        The first item is where the request stands now. Changes are read with the ``state``
        query every ``every`` (a query costs Temporal, never Dfns); the iterator ends once
        the workflow has closed, after yielding its last state.
        """
        last: tuple[object, ...] | None = None
        while True:
            open_now = await self.running()
            state = await self.status()
            key = (
                state.status,
                state.signature_id,
                state.approval_id,
                state.approval.status if state.approval else None,
                len(state.approval.decisions) if state.approval else 0,
                state.submit_unknown,
                state.cancel_requested,
                state.deadline_passed,
            )
            if key != last:
                last = key
                yield state
            if not open_now:
                return
            await asyncio.sleep(every.total_seconds())

    async def cancel(self) -> None:
        """Ask the engine to stop waiting: it denies its own pending approval at Dfns and
        reports ``cancelled`` (or the outcome Dfns reached first)."""
        if not await self.running():
            raise NotRunning(f"{self.request_id} has already settled; nothing to cancel")
        await self._handle.cancel()


def _not_found(request_id: str, exc: RPCError) -> SigngateError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return RequestNotFound(f"no signature request {request_id!r} (no such workflow)")
    return SigngateError(f"{request_id}: Temporal answered {exc.status.name}: {exc.message}")


class SigngateClient:
    """Signature requests through signgate's workflows, for callers that are not workflows."""

    def __init__(self, temporal: Client, *, task_queue: str = DEFAULT_TASK_QUEUE) -> None:
        self.temporal = temporal
        self.task_queue = task_queue

    @classmethod
    async def connect(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        task_queue: str = DEFAULT_TASK_QUEUE,
    ) -> SigngateClient:
        """Connect with Temporal's own settings (``TEMPORAL_ADDRESS``, profiles, TLS...)."""
        return cls(await connect_temporal(environ), task_queue=task_queue)

    # --- starting -------------------------------------------------------------------------

    async def start(
        self,
        target: SigningTarget,
        request: SignatureRequestBody,
        *,
        request_id: str,
        deadline: datetime | None = None,
        deliveries: Sequence[DeliverySpec] = (),
        wait_for_confirmed: bool = False,
        polling: PollingPolicy | None = None,
    ) -> SignatureHandle:
        """Start the request, or attach to the one this ``request_id`` already names."""
        workflow_input = self._input(
            target, request, request_id, deadline, deliveries, wait_for_confirmed, polling
        )
        try:
            handle = await self.temporal.start_workflow(
                ids.SIGNATURE_WORKFLOW,
                workflow_input,
                id=request_id,
                task_queue=self.task_queue,
                result_type=SignatureOutcome,
                # FAIL + REJECT_DUPLICATE: the server says, by refusing, that it started
                # nothing, whether the id's holder is running or closed; we attach to it.
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError as exc:
            existing = self.temporal.get_workflow_handle(request_id, result_type=SignatureOutcome)
            return SignatureHandle(existing, started=False, run_id=exc.run_id)
        return SignatureHandle(handle, started=True, run_id=handle.result_run_id)

    async def sign(
        self,
        target: SigningTarget,
        request: SignatureRequestBody,
        *,
        request_id: str,
        wait: timedelta,
        deadline: datetime | None = None,
        deliveries: Sequence[DeliverySpec] = (),
        wait_for_confirmed: bool = False,
        polling: PollingPolicy | None = None,
    ) -> SignatureOutcome | SignatureHandle:
        """:meth:`start`, then the outcome if it comes within ``wait``, else the handle.

        Calling again with the same ``request_id`` attaches to the same request.
        """
        handle = await self.start(
            target,
            request,
            request_id=request_id,
            deadline=deadline,
            deliveries=deliveries,
            wait_for_confirmed=wait_for_confirmed,
            polling=polling,
        )
        try:
            return await handle.outcome(within=wait)
        except TimeoutError:
            return handle

    def handle(self, request_id: str) -> SignatureHandle:
        """The handle of an existing request (nothing is checked until it is used)."""
        return SignatureHandle(
            self.temporal.get_workflow_handle(request_id, result_type=SignatureOutcome),
            started=False,
            run_id=None,
        )

    # --- asking and deciding --------------------------------------------------------------

    async def status(self, request_id: str) -> SignatureProgress:
        """Where ``request_id`` stands (the workflow's ``state`` query)."""
        return await self.handle(request_id).status()

    async def cancel(self, request_id: str) -> None:
        """See :meth:`SignatureHandle.cancel`."""
        await self.handle(request_id).cancel()

    async def approve(
        self, request_id: str, approver: DfnsClient, *, reason: str | None = None
    ) -> str:
        """Approve the request's pending approval as ``approver`` (a Dfns client holding that
        user's token and credential); the approval's status after the decision."""
        return await self._decide(request_id, approver, "Approved", reason)

    async def deny(
        self, request_id: str, approver: DfnsClient, *, reason: str | None = None
    ) -> str:
        """Deny the request's pending approval as ``approver``; the approval's status after."""
        return await self._decide(request_id, approver, "Denied", reason)

    async def _decide(
        self,
        request_id: str,
        approver: DfnsClient,
        value: Literal["Approved", "Denied"],
        reason: str | None,
    ) -> str:
        handle = self.handle(request_id)
        if not await handle.running():
            raise NotRunning(f"{request_id} has already settled; there is nothing to decide")
        state = await handle.status()
        if state.approval_id is None:
            raise NoPendingApproval(
                f"{request_id} has no approval yet (status {state.status}); a request that no "
                "policy gates needs no decision"
            )
        try:
            body = ApprovalDecisionRequest(value=value, reason=reason)
        except ValidationError as exc:
            raise InvalidSignatureInput(f"reason: {exc.errors()[0]['msg']}") from None
        try:
            approval = await approver.create_approval_decision(state.approval_id, body)
        except DfnsError as exc:
            raise DecisionRefused(f"{value} on {state.approval_id} refused: {exc}") from None
        return str(approval.status)

    async def list(self, *, running: bool | None = None, limit: int = 100) -> list[RequestSummary]:
        """Signature requests, newest first, from visibility (search attributes)."""
        query = f"WorkflowType = '{ids.SIGNATURE_WORKFLOW}'"
        if running is not None:
            query += f" AND ExecutionStatus {'=' if running else '!='} 'Running'"
        found: list[RequestSummary] = []
        async for wf in self.temporal.list_workflows(query, limit=limit):
            attributes = wf.typed_search_attributes
            found.append(
                RequestSummary(
                    request_id=wf.id,
                    running=wf.status == WorkflowExecutionStatus.RUNNING,
                    status=attributes.get(ids.SA_STATUS),
                    outcome=attributes.get(ids.SA_OUTCOME),
                    signature_id=attributes.get(ids.SA_SIGNATURE_ID),
                    started_at=wf.start_time,
                    closed_at=wf.close_time,
                )
            )
        return found

    # --- input ------------------------------------------------------------------------------

    def _input(
        self,
        target: SigningTarget,
        request: SignatureRequestBody,
        request_id: str,
        deadline: datetime | None,
        deliveries: Sequence[DeliverySpec],
        wait_for_confirmed: bool,
        polling: PollingPolicy | None,
    ) -> SignatureWorkflowInput:
        try:
            ids.validate_business_key(request_id)
        except ValueError as exc:
            raise InvalidSignatureInput(f"request_id {request_id!r}: {exc}") from None
        values: dict[str, Any] = {
            "target": target,
            "request": request,
            "idempotency_key": request_id,
            "deadline": deadline,
            "deliveries": list(deliveries),
            "wait_for_confirmed": wait_for_confirmed,
        }
        if polling is not None:
            values["polling"] = polling
        try:
            return SignatureWorkflowInput(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidSignatureInput(f"signature input refused: {problems}") from None
