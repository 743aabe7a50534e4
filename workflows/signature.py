"""SignatureWorkflow: one Dfns signature request, from submit to a verified, delivered outcome.

The workflow id is the caller's business key. The run:

1. submits the request once: its ``externalId`` is derived from the idempotency key, so a
   retried submit (lost response, worker death) converges on the same Dfns request;
2. waits durably in one loop: ``wait_condition(hint, timeout=interval)``. A status event
   (signal or update, from the webhook receiver) that moves the status forward wakes it at
   once, and the workflow task it wakes reads the request, verifies and finishes with local
   activities; a resolved approval brings the next poll forward (the request's own status
   event is the wake-up); a timeout runs one poll; the interval backs off to a cap and
   resets on progress. Events are hints: every status the workflow records was read from
   Dfns;
3. past the caller's deadline, or when cancelled, denies its own pending approval at Dfns
   and reports ``expired`` / ``cancelled`` (a request already executing or signed is
   reported as what it is);
4. verifies a returned signature against the key's public key with real cryptography;
   a signature that does not verify fails the workflow and is never delivered;
5. runs the downstream deliveries for the outcome, and returns it.

It continues as new when the server suggests it (or after ``continue_as_new_after_polls``
polls), carrying its state, once signal and update handlers have finished.

Dfns's terminal statuses are outcomes, not errors: ``Rejected`` and ``Failed`` complete
the workflow with that outcome. The workflow fails only for an input Dfns refuses, a
request that is not ours, or a signature that does not verify.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from signgate import ids
    from signgate.contracts import (
        ApprovalEvent,
        ApprovalInfo,
        CallbackDelivery,
        CallbackInput,
        DeliveryReceipt,
        DenialResult,
        DenyApprovalInput,
        DescribeApprovalInput,
        EventAck,
        FetchInput,
        LedgerInput,
        OutcomeKind,
        ReadAndVerifyInput,
        ReadAndVerifyResult,
        SignatureOutcome,
        SignatureProgress,
        SignatureWorkflowInput,
        SignatureWorkflowState,
        StatusEvent,
        SubmitInput,
        VerificationResult,
        VerifyInput,
        status_rank,
    )
    from signgate.dfns.models import SignatureRequestView, SignatureStatus

_T = TypeVar("_T")

_DFNS_CALL_TIMEOUT = timedelta(seconds=60)
_VERIFY_TIMEOUT = timedelta(seconds=30)
_DELIVERY_TIMEOUT = timedelta(seconds=60)

# A submit is safe to repeat forever (same externalId, same body): never give up on it.
_SUBMIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# A poll that keeps failing is not fatal: the loop records it and polls again later.
_POLL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
_DENY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
_DESCRIBE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
_VERIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# "Retried until 2xx": deliveries never give up; the cap keeps a dead receiver cheap.
_DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=10)
)

# A patch (``workflow.patched``) changes the commands a run issues; a run that began before
# it keeps replaying its old commands (tests/replay holds histories of both). One id for
# the whole change, as each patch costs a marker and a search-attribute upsert per run.
# Under it:
# * the read that follows a status hint, and the approval read at the end, are local
#   activities: the workflow task a webhook wakes reads, verifies and finishes on its own,
#   with no activity task and no further workflow task in between;
# * a resolved approval alone does not read the request: Dfns follows it with the
#   request's own status event, and two reads for one approval race each other (a signal
#   landing while a workflow task completes the workflow makes Temporal refuse the
#   completion and run the task again); the next poll is brought forward instead;
# * a resolved approval whose webhook carried it in full is not read again.
_PATCH_LOCAL_READS = "local-reads"
# A second patch, decided once per run when the run first waits (so its marker is recorded
# while nothing waits on it, not in the workflow task that completes the request, and a
# request signed at submission, which never waits, pays nothing for it). Until it is
# decided, and in runs that began before it, the run behaves as before it. Under it:
# * everything ``local-reads`` does (its own marker is then never recorded);
# * a read that finds signatures verifies them in the same activity
#   (``read_and_verify_signature_request``): one local activity, not two, in the workflow
#   task a webhook wakes;
# * search-attribute changes made within one workflow task go out as one upsert (the
#   status and the outcome of a finishing request: one visibility write, not two).
_PATCH_LEAN = "lean-commands"

_FINAL = frozenset({SignatureStatus.CONFIRMED, SignatureStatus.FAILED, SignatureStatus.REJECTED})
_APPROVAL_ORDER = {"Pending": 0, "Approved": 1, "Denied": 1, "Expired": 1}


@workflow.defn(name=ids.SIGNATURE_WORKFLOW, failure_exception_types=[ValidationError])
class SignatureWorkflow:
    """One signature request per execution; see the module docstring."""

    @workflow.init
    def __init__(self, input: SignatureWorkflowInput) -> None:
        self._input = input
        if input.state is not None:
            self._state = input.state
        else:
            key = input.idempotency_key or workflow.info().workflow_id
            self._state = SignatureWorkflowState(
                idempotency_key=key,
                external_id=ids.external_id_for(key),
                started_at=workflow.now(),
            )
        self._request = input.request.model_copy(update={"external_id": self._state.external_id})
        self._approval_changed = False
        self._stop_handled = False
        self._next_poll_at: datetime | None = None
        self._notes: list[str] = []
        self._lean: bool | None = None  # decided at the run's first wait
        self._pending_attributes: dict[str, SearchAttributeUpdate[Any]] = {}

    # --- messages -------------------------------------------------------------------------

    @workflow.signal(name=ids.SIGNAL_STATUS_EVENT)
    def status_event(self, event: StatusEvent) -> None:
        """A status hint that needs no answer (e.g. forwarded by a webhook receiver)."""
        self._hint(event)

    @workflow.update(name=ids.UPDATE_STATUS_EVENT)
    def report_status_event(self, event: StatusEvent) -> EventAck:
        """A status hint, acknowledged: ``applied`` when it woke the workflow."""
        return self._hint(event)

    @report_status_event.validator
    def _validate_status_event(self, event: StatusEvent) -> None:
        reason = self._foreign(event)
        if reason is not None:
            raise ValueError(reason)

    @workflow.signal(name=ids.SIGNAL_APPROVAL_EVENT)
    def approval_event(self, event: ApprovalEvent) -> None:
        """Approval progress: decisions so far; a resolved approval brings the next poll
        forward (see ``run``)."""
        st = self._state
        known_id = st.approval_id
        if known_id is not None and event.approval_id != known_id:
            st.events_ignored += 1
            return
        if (
            event.signature_id is not None
            and st.signature_id is not None
            and event.signature_id != st.signature_id
        ):
            st.events_ignored += 1
            return
        current = st.approval
        if current is not None and _APPROVAL_ORDER.get(current.status, 0) > _APPROVAL_ORDER.get(
            event.status, 0
        ):
            st.events_ignored += 1
            return
        decisions = {d.user_id: d for d in (current.decisions if current else [])}
        decisions.update({d.user_id: d for d in event.decisions})
        st.approval = ApprovalInfo(
            id=event.approval_id,
            status=event.status,
            decisions=list(decisions.values()),
            quorum=event.quorum if event.quorum is not None or current is None else current.quorum,
            initiator_id=event.initiator_id or (current.initiator_id if current else None),
            expiration_date=event.expiration_date or (current.expiration_date if current else None),
            date_resolved=event.date_resolved or (current.date_resolved if current else None),
        )
        st.events_applied += 1
        if event.status != "Pending":
            self._approval_changed = True

    @workflow.query(name=ids.QUERY_STATE)
    def state(self) -> SignatureProgress:
        """Where the request stands: status, approval, time in status, polls made."""
        st = self._state
        now = workflow.now()
        since = st.status_since or st.started_at
        return SignatureProgress(
            status=st.status,
            signature_id=st.signature_id,
            approval_id=st.approval_id,
            approval=st.approval,
            as_of=now,
            status_since=since,
            time_in_status=max(now - since, timedelta(0)),
            polls=st.polls,
            poll_failures=st.poll_failures,
            events_applied=st.events_applied,
            events_ignored=st.events_ignored,
            run=st.run,
            next_poll_in=(
                max(self._next_poll_at - now, timedelta(0)) if self._next_poll_at else None
            ),
            deadline_passed=st.deadline_passed,
            cancel_requested=st.cancel_requested,
        )

    # --- run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: SignatureWorkflowInput) -> SignatureOutcome:
        """Submit, wait, verify, deliver; return the outcome."""
        st = self._state
        policy = input.polling
        if st.run == 1 and st.signature_id is None:
            self._upsert(
                ids.SA_STATUS.value_set("Submitting"),
                ids.SA_TARGET_ID.value_set(input.target.id),
                ids.SA_IDEMPOTENCY_KEY.value_set(st.idempotency_key),
                ids.SA_EXTERNAL_ID.value_set(st.external_id),
            )
        if st.signature_id is None:
            if self._deadline_reached():
                st.deadline_passed = True
                self._notes.append("the deadline had passed before submission: nothing was sent")
                return await self._finish()
            await self._submit()

        interval = st.next_interval or policy.initial_interval
        polls_this_run = 0
        while not self._finished():
            if st.status is SignatureStatus.SIGNED:
                # Waiting for Confirmed: check the signature now, not days later.
                await self._ensure_verified()
            if self._stop_due():
                st.deadline_passed = st.deadline_passed or self._deadline_reached()
                if await self._stop():
                    break
                interval = policy.initial_interval
                continue
            if self._should_continue_as_new(polls_this_run):
                self._flush_attributes()
                await workflow.wait_condition(workflow.all_handlers_finished)
                st.run += 1
                st.next_interval = interval
                workflow.logger.info(
                    "signature.continue_as_new", extra={"run": st.run, "polls": st.polls}
                )
                workflow.continue_as_new(input.model_copy(update={"state": st}))

            timeout = interval
            if input.deadline is not None and not self._stop_handled:
                timeout = min(timeout, input.deadline - workflow.now())
            woke = await self._wait(timeout)
            if not woke and self._stop_due():
                continue
            if woke and not self._status_hinted() and self._local_reads():
                # Only the approval resolved: the request's own status event follows and is
                # the wake-up; reading now would race it (two wake-ups for one approval).
                # Look again within the initial interval in case that event is lost.
                self._approval_changed = False
                interval = policy.initial_interval
                st.next_interval = interval
                continue
            hinted = self._hint_pending()
            changed = await self._poll(local=hinted and self._local_reads())
            polls_this_run += 1
            if hinted and st.hint_rank > status_rank(st.status):
                # The hint ran ahead of what Dfns shows: drop it, look again soon.
                st.hint_rank = status_rank(st.status)
                changed = True
            interval = (
                policy.initial_interval
                if changed
                else min(interval * policy.backoff_coefficient, policy.max_interval)
            )
            st.next_interval = interval

        if st.status in (SignatureStatus.SIGNED, SignatureStatus.CONFIRMED):
            await self._ensure_verified()
        await self._describe_approval()
        return await self._finish()

    async def _finish(self) -> SignatureOutcome:
        """Decide the outcome, show it in visibility, run the deliveries for it."""
        outcome = self._outcome()
        self._upsert(ids.SA_OUTCOME.value_set(outcome.kind))
        self._flush_attributes()
        await workflow.wait_condition(workflow.all_handlers_finished)
        receipts = await self._deliver(outcome)
        return outcome.model_copy(update={"deliveries": receipts})

    # --- steps ----------------------------------------------------------------------------

    async def _submit(self) -> None:
        try:
            view = await self._activity(
                ids.ACTIVITY_SUBMIT,
                SubmitInput(target=self._input.target, request=self._request),
                SignatureRequestView,
                _SUBMIT_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                self._upsert(ids.SA_STATUS.value_set("Refused"))
                self._flush_attributes()
                raise ApplicationError(
                    f"Dfns refused the signature request: {cause.message}",
                    type=cause.type or ids.ERR_INVALID_REQUEST,
                    non_retryable=True,
                ) from err
            raise
        self._apply(view)
        workflow.logger.info(
            "workflow.signature_submitted",
            extra={"signature_id": view.id, "status": str(view.status)},
        )

    async def _poll(self, *, local: bool = False) -> bool:
        """Read the request from Dfns; True when the status moved forward."""
        st = self._state
        assert st.signature_id is not None
        self._approval_changed = False
        st.polls += 1
        verification: VerificationResult | None = None
        try:
            if self._lean is True:
                read = await self._activity(
                    ids.ACTIVITY_READ_AND_VERIFY,
                    ReadAndVerifyInput(
                        target=self._input.target,
                        signature_id=st.signature_id,
                        external_id=st.external_id,
                        request=self._request,
                        verify=st.verification is None,
                    ),
                    ReadAndVerifyResult,
                    _POLL_RETRY,
                    local=local,
                )
                view, verification = read.view, read.verification
            else:
                view = await self._activity(
                    ids.ACTIVITY_FETCH,
                    FetchInput(
                        target=self._input.target,
                        signature_id=st.signature_id,
                        external_id=st.external_id,
                    ),
                    SignatureRequestView,
                    _POLL_RETRY,
                    local=local,
                )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == ids.ERR_REQUEST_MISMATCH:
                raise
            st.poll_failures += 1
            st.last_poll_error = str(cause or err)
            workflow.logger.warning(
                "signature.poll_failed", extra={"error": st.last_poll_error, "polls": st.polls}
            )
            return False
        st.last_poll_error = None
        moved = self._apply(view)
        if verification is not None:
            # Keyed by the signatures it checked: ``_ensure_verified`` reuses it only for
            # a snapshot that carries exactly those.
            st.verification = verification
            st.verified_signatures = _signature_key(view)
        return moved

    async def _stop(self) -> bool:
        """Deadline passed or cancelled: deny our own pending approval. True when done."""
        st = self._state
        self._stop_handled = True
        why = "cancelled" if st.cancel_requested else "deadline passed"
        await self._poll()
        if st.status is not SignatureStatus.PENDING:
            # Executing or signed already: it will be reported as what it is.
            return self._finished()
        approval_id = st.approval_id
        if approval_id is None:
            st.denial = DenialResult(
                approval_id="",
                denied=False,
                detail="the request is Pending without an approval id; nothing to deny",
            )
            return True
        try:
            st.denial = await self._activity(
                ids.ACTIVITY_DENY_APPROVAL,
                DenyApprovalInput(
                    approval_id=approval_id,
                    reason=f"signgate: {why} for {workflow.info().workflow_id}",
                ),
                DenialResult,
                _DENY_RETRY,
            )
        except ActivityError as err:
            st.denial = DenialResult(
                approval_id=approval_id, denied=False, detail=f"denial failed: {err.cause or err}"
            )
        workflow.logger.info(
            "signature.denied_own_approval",
            extra={"approval_id": approval_id, "denied": st.denial.denied, "why": why},
        )
        await self._poll()
        if not st.denial.denied and st.status is SignatureStatus.PENDING:
            return True
        return self._finished()

    async def _ensure_verified(self) -> None:
        st = self._state
        snap = st.snapshot
        assert snap is not None
        result = st.verification
        if result is None or not _same_signatures(st.verified_signatures, snap):
            # Local: a key read and a few milliseconds of curve arithmetic need no task
            # queue round trip; the result is still recorded in history (as a marker).
            result = await self._activity(
                ids.ACTIVITY_VERIFY,
                VerifyInput(target=self._input.target, request=self._request, snapshot=snap),
                VerificationResult,
                _VERIFY_RETRY,
                limit=_VERIFY_TIMEOUT,
                local=True,
            )
            st.verification = result
            st.verified_signatures = _signature_key(snap)
        if result.status == "invalid":
            self._upsert(ids.SA_OUTCOME.value_set("verification-failed"))
            self._flush_attributes()
            raise ApplicationError(
                f"signature {snap.id} does not verify and was not delivered: {result.detail}",
                result.model_dump(mode="json"),
                type=ids.ERR_VERIFICATION_FAILED,
                non_retryable=True,
            )

    async def _describe_approval(self) -> None:
        st = self._state
        approval_id = st.approval_id
        if approval_id is None:
            return
        local = False
        if self._local_reads():
            known = st.approval
            if (
                known is not None
                and known.id == approval_id
                and known.status != "Pending"
                and known.date_resolved is not None
            ):
                # Dfns's resolved-approval webhook carries the whole approval, decisions
                # included; nothing can change once it is resolved.
                return
            local = True
        try:
            st.approval = await self._activity(
                ids.ACTIVITY_DESCRIBE_APPROVAL,
                DescribeApprovalInput(approval_id=approval_id),
                ApprovalInfo,
                _DESCRIBE_RETRY,
                local=local,
            )
        except ActivityError as err:
            # The outcome stands without the decisions; say why they are missing.
            self._notes.append(f"approval {approval_id} could not be read: {err.cause or err}")

    async def _deliver(self, outcome: SignatureOutcome) -> list[DeliveryReceipt]:
        receipts: list[DeliveryReceipt] = []
        deliveries = self._input.deliveries
        if not deliveries:
            return receipts
        verification = outcome.verification
        if (
            verification is not None
            and verification.status == "unverifiable"
            and not self._input.deliver_unverifiable
        ):
            return receipts
        payload = outcome.model_dump(mode="json", exclude={"deliveries"})
        st = self._state
        for index, spec in enumerate(deliveries):
            if spec.on is not None and outcome.kind not in spec.on:
                continue
            key = f"{st.idempotency_key}/{index}-{spec.kind}"
            if isinstance(spec, CallbackDelivery):
                receipt = await self._activity(
                    ids.ACTIVITY_DELIVER_CALLBACK,
                    CallbackInput(
                        spec=spec, idempotency_key=key, event="signature.outcome", payload=payload
                    ),
                    DeliveryReceipt,
                    _DELIVERY_RETRY,
                    limit=_DELIVERY_TIMEOUT,
                )
            else:
                receipt = await self._activity(
                    ids.ACTIVITY_RECORD_LEDGER,
                    LedgerInput(
                        spec=spec,
                        idempotency_key=key,
                        workflow_id=outcome.workflow_id,
                        record_kind="signature",
                        outcome=outcome.kind,
                        signature_id=outcome.signature_id,
                        payload=payload,
                    ),
                    DeliveryReceipt,
                    _DELIVERY_RETRY,
                    limit=_DELIVERY_TIMEOUT,
                )
            receipts.append(receipt)
        return receipts

    # --- state ----------------------------------------------------------------------------

    def _apply(self, view: SignatureRequestView) -> bool:
        """Record what Dfns said; True when the status moved forward."""
        st = self._state
        if st.signature_id is not None and view.id != st.signature_id:
            raise ApplicationError(
                f"Dfns returned signature request {view.id}, expected {st.signature_id}",
                type=ids.ERR_REQUEST_MISMATCH,
                non_retryable=True,
            )
        if view.external_id is not None and view.external_id != st.external_id:
            raise ApplicationError(
                f"Dfns request {view.id} carries externalId {view.external_id!r}, "
                f"expected {st.external_id!r}",
                type=ids.ERR_REQUEST_MISMATCH,
                non_retryable=True,
            )
        first = st.signature_id is None
        st.signature_id = view.id
        new_rank = status_rank(view.status)
        old_rank = status_rank(st.status)
        if new_rank == 0:
            workflow.logger.warning(
                "signature.unknown_status", extra={"raw_status": view.raw_status}
            )
            if st.snapshot is None:
                st.snapshot = view
            return False
        if new_rank < old_rank or (new_rank == old_rank and view.status != st.status):
            # A stale read (or a second terminal status): statuses only move forward.
            return False
        moved = new_rank > old_rank
        st.snapshot = view
        if moved:
            st.status = view.status
            st.status_since = workflow.now()
            attributes: list[SearchAttributeUpdate[Any]] = [
                ids.SA_STATUS.value_set(str(view.status))
            ]
            if first:
                attributes.append(ids.SA_SIGNATURE_ID.value_set(view.id))
            self._upsert(*attributes)
            workflow.logger.info(
                "signature.status_changed",
                extra={"signature_id": view.id, "status": str(view.status)},
            )
        return moved

    def _foreign(self, event: StatusEvent) -> str | None:
        st = self._state
        if st.signature_id is not None and event.signature_id != st.signature_id:
            return f"signature id {event.signature_id!r} is not this workflow's request"
        if event.external_id is not None and event.external_id != st.external_id:
            return f"externalId {event.external_id!r} is not this workflow's request"
        return None

    def _hint(self, event: StatusEvent) -> EventAck:
        st = self._state
        reason = self._foreign(event)
        if reason is None and status_rank(event.status) <= max(
            status_rank(st.status), st.hint_rank
        ):
            reason = "stale or duplicate: the status is already there"
        if reason is not None:
            st.events_ignored += 1
            return EventAck(applied=False, reason=reason, status=st.status)
        st.hint_rank = status_rank(event.status)
        st.events_applied += 1
        return EventAck(
            applied=True, reason="the workflow will read the request now", status=st.status
        )

    def _local_reads(self) -> bool:
        """Whether a hint is followed up by local activities (see ``_PATCH_LOCAL_READS``)."""
        return self._lean is True or workflow.patched(_PATCH_LOCAL_READS)

    def _upsert(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Change search attributes: at once before ``_PATCH_LEAN``, else gathered until
        the workflow next waits (``_flush_attributes``), later values winning."""
        if self._lean is not True:
            workflow.upsert_search_attributes(list(updates))
            return
        for update in updates:
            self._pending_attributes[update.key.name] = update

    def _flush_attributes(self) -> None:
        """Send the gathered search-attribute changes as one upsert, if there are any."""
        if self._pending_attributes:
            workflow.upsert_search_attributes(list(self._pending_attributes.values()))
            self._pending_attributes.clear()

    def _hint_pending(self) -> bool:
        return self._approval_changed or self._status_hinted()

    def _status_hinted(self) -> bool:
        return self._state.hint_rank > status_rank(self._state.status)

    def _finished(self) -> bool:
        status = self._state.status
        if status in _FINAL:
            return True
        if status is SignatureStatus.SIGNED:
            return not self._input.wait_for_confirmed or self._stop_handled
        return False

    def _deadline_reached(self) -> bool:
        deadline = self._input.deadline
        return deadline is not None and workflow.now() >= deadline

    def _stop_due(self) -> bool:
        return not self._stop_handled and (self._state.cancel_requested or self._deadline_reached())

    def _should_continue_as_new(self, polls_this_run: int) -> bool:
        limit = self._input.polling.continue_as_new_after_polls
        if limit is not None and polls_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    async def _wait(self, wait_for: timedelta) -> bool:
        """Wait for a hint or the timeout; True when a hint woke us."""
        if self._lean is None:
            self._lean = workflow.patched(_PATCH_LEAN)
        if self._hint_pending():
            return True
        if wait_for <= timedelta(0):
            return False
        self._flush_attributes()
        self._next_poll_at = workflow.now() + wait_for
        try:
            await workflow.wait_condition(self._hint_pending, timeout=wait_for)
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            self._state.cancel_requested = True
            return False
        finally:
            self._next_poll_at = None
        return True

    async def _activity(
        self,
        name: str,
        arg: Any,
        result_type: type[_T],
        retry: RetryPolicy,
        *,
        limit: timedelta = _DFNS_CALL_TIMEOUT,
        local: bool = False,
    ) -> _T:
        """Run an activity to completion even if the workflow is cancelled meanwhile.

        Cancelling a submit half-way would leave it unknown whether Dfns holds a request;
        cancelling a poll or a delivery gains nothing. The cancel is remembered instead and
        handled by the loop (deny the approval), so it is never lost.
        """
        if not local:
            # The workflow task ends here: what it changed must be visible meanwhile.
            self._flush_attributes()
        handle = (
            workflow.start_local_activity(
                name, arg, result_type=result_type, start_to_close_timeout=limit, retry_policy=retry
            )
            if local
            else workflow.start_activity(
                name, arg, result_type=result_type, start_to_close_timeout=limit, retry_policy=retry
            )
        )
        result: _T
        try:
            result = await asyncio.shield(handle)
        except asyncio.CancelledError:
            self._state.cancel_requested = True
            result = await handle
        return result

    # --- outcome --------------------------------------------------------------------------

    def _outcome(self) -> SignatureOutcome:
        st = self._state
        snap = st.snapshot
        kind, expiry = self._verdict()
        notes = list(self._notes)
        verification = st.verification
        if verification is not None and verification.status == "unverifiable":
            if self._input.deliver_unverifiable:
                notes.append(
                    f"signature not verified ({verification.detail}); delivered because "
                    "deliver_unverifiable is set"
                )
            elif self._input.deliveries:
                notes.append(
                    f"signature not verified ({verification.detail}); not delivered "
                    "(set deliver_unverifiable to deliver it anyway)"
                )
        if st.denial is not None and not st.denial.denied:
            notes.append(f"own approval not denied: {st.denial.detail}")
            if st.status is SignatureStatus.PENDING:
                notes.append("the request is still Pending at Dfns and may yet be signed")
        if st.status is SignatureStatus.SIGNED and self._input.wait_for_confirmed:
            notes.append("stopped waiting for Confirmed: the signature is Signed, not Confirmed")
        if st.deadline_passed and kind in ("signed", "confirmed", "failed"):
            notes.append("the deadline passed while the request was already being signed")
        if st.cancel_requested and kind in ("signed", "confirmed", "failed"):
            notes.append("cancellation came after the request was approved; reported as is")
        return SignatureOutcome(
            kind=kind,
            workflow_id=workflow.info().workflow_id,
            idempotency_key=st.idempotency_key,
            external_id=st.external_id,
            target=self._input.target,
            request_kind=self._request.kind,
            signature_id=st.signature_id,
            dfns_status=st.status,
            raw_status=snap.raw_status if snap else None,
            signature=snap.signature if snap else None,
            signatures=list(snap.signatures) if snap else [],
            signed_data=snap.signed_data if snap else None,
            tx_hash=snap.tx_hash if snap else None,
            network=snap.network if snap else None,
            key_id=snap.key_id if snap else None,
            wallet_id=snap.wallet_id if snap else None,
            approval_id=st.approval_id,
            approval=st.approval,
            reason=snap.reason if snap else None,
            date_requested=snap.date_requested if snap else None,
            date_policy_resolved=snap.date_policy_resolved if snap else None,
            date_signed=snap.date_signed if snap else None,
            date_confirmed=snap.date_confirmed if snap else None,
            finished_at=workflow.now(),
            verification=verification,
            expiry=expiry,
            denial=st.denial,
            cancel_requested=st.cancel_requested,
            deadline_passed=st.deadline_passed,
            polls=st.polls,
            notes=notes,
        )

    def _verdict(self) -> tuple[OutcomeKind, Literal["deadline", "approval_timeout"] | None]:
        st = self._state
        status = st.status
        if status is SignatureStatus.CONFIRMED:
            return "confirmed", None
        if status is SignatureStatus.SIGNED:
            return "signed", None
        if status is SignatureStatus.FAILED:
            return "failed", None
        stopped_by_us = st.denial is not None and (
            st.denial.denied or status is SignatureStatus.PENDING or status is None
        )
        if status is SignatureStatus.REJECTED and not stopped_by_us:
            if st.approval is not None and st.approval.status == "Expired":
                return "expired", "approval_timeout"
            return "rejected", None
        if st.cancel_requested:
            return "cancelled", None
        if st.deadline_passed:
            return "expired", "deadline"
        return "rejected", None


def _signature_key(view: SignatureRequestView) -> list[str]:
    sigs = [view.signature] if view.signature is not None else []
    sigs.extend(view.signatures)
    return [f"{s.r}:{s.s}:{s.recid}:{s.encoded}" for s in sigs]


def _same_signatures(known: list[str] | None, view: SignatureRequestView) -> bool:
    return known is not None and known == _signature_key(view)
