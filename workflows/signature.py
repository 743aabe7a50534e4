"""SignatureWorkflow: one Dfns signature request, from submit to a verified, delivered outcome.

The workflow id is the caller's business key. ``run`` reads as the request's life:

1. **submit** once: the ``externalId`` is derived from the idempotency key, so a retried
   submit (lost response, worker death) converges on the same Dfns request;
2. **wait until settled**, in one loop: ``wait_condition(hint, timeout=interval)``. A status
   hint (signal or update from the webhook receiver) that moves the status forward wakes it
   at once and the workflow reads the request on the Dfns reads queue; a resolved
   approval alone brings the next poll forward (the request's own status event follows it);
   a timeout runs one poll; the interval backs off to a cap and resets on progress. Past the
   caller's deadline, or on cancel, the engine denies its own pending approval at Dfns;
3. **verify** a returned signature against the key's public key: a signature that does not
   verify fails the workflow and is never delivered;
4. **finish**: decide the outcome, show it in visibility, run the deliveries, return it.

The rules that decide each step (status order, hints, approvals, verdict, outcome) live in
:mod:`workflows.state`, free of Temporal; this module only orders the steps. Every activity
is declared, typed, in :mod:`signgate.activity_api`, which also holds the retry rule: a
retryable error never decides an outcome.

Dfns's terminal statuses are outcomes, not errors: ``Rejected`` and ``Failed`` complete the
workflow with that outcome. The workflow fails only for an input Dfns refuses, a request
that is not ours, or a signature that does not verify. It continues as new when the server
suggests it (or after ``continue_as_new_after_polls`` polls), once handlers have finished.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from signgate import activity_api as api
    from signgate import ids
    from signgate.contracts import (
        RECONCILED_STATUSES,
        ApprovalEvent,
        BatchItemResult,
        CallbackDelivery,
        CallbackInput,
        DeliveryReceipt,
        DenialResult,
        DenyApprovalInput,
        DescribeApprovalInput,
        EventAck,
        LedgerInput,
        ReadAndVerifyInput,
        ReconcilerSweptInput,
        SignatureOutcome,
        SignatureProgress,
        SignatureWorkflowInput,
        SignatureWorkflowState,
        StatusEvent,
        SubmitInput,
        SubmitResolution,
        VerificationResult,
        VerifyCarriedInput,
        VerifyInput,
    )
    from signgate.dfns.models import SignatureRequestView, SignatureStatus
    from signgate.metrics import EngineMeter
    from workflows.state import RequestMismatch, RequestTracker, jittered, next_interval

_In = TypeVar("_In", bound=BaseModel)
_Out = TypeVar("_Out", bound=BaseModel)


@workflow.defn(name=ids.SIGNATURE_WORKFLOW, failure_exception_types=[ValidationError])
class SignatureWorkflow:
    """One signature request per execution; see the module docstring."""

    @workflow.init
    def __init__(self, input: SignatureWorkflowInput) -> None:
        state = input.state
        if state is None:
            key = input.idempotency_key or workflow.info().workflow_id
            state = SignatureWorkflowState(
                idempotency_key=key, external_id=ids.external_id_for(key), started_at=workflow.now()
            )
        self._input = input
        self._tracker = RequestTracker(input, state)
        self._request = input.request.model_copy(update={"external_id": state.external_id})
        self._next_poll_at: datetime | None = None
        # Dfns's Retry-After from a poll it refused with 429: the next poll waits as long.
        self._retry_after: timedelta | None = None
        self._notes: list[str] = []
        self._submit_unknown: str | None = None  # why, while waiting for resolve_submit
        self._resolution: SubmitResolution | None = None
        self._resolution_answer: str | None = None
        # Search-attribute changes of one workflow task go out as one upsert (_flush).
        self._attributes: dict[str, SearchAttributeUpdate[Any]] = {}
        # Metrics only: Temporal's workflow meter records nothing while replaying.
        self._metrics = EngineMeter(workflow.metric_meter())

    # --- messages -------------------------------------------------------------------------

    @workflow.signal(name=ids.SIGNAL_STATUS_EVENT)
    def status_event(self, event: StatusEvent) -> None:
        """A status hint that needs no answer (e.g. forwarded by a webhook receiver)."""
        self._tracker.hint(event)

    @workflow.update(name=ids.UPDATE_STATUS_EVENT)
    def report_status_event(self, event: StatusEvent) -> EventAck:
        """A status hint, acknowledged: ``applied`` when it woke the workflow."""
        return self._tracker.hint(event)

    @report_status_event.validator
    def _validate_status_event(self, event: StatusEvent) -> None:
        reason = self._tracker.foreign(event)
        if reason is not None:
            raise ValueError(reason)

    @workflow.signal(name=ids.SIGNAL_APPROVAL_EVENT)
    def approval_event(self, event: ApprovalEvent) -> None:
        """Approval progress: decisions so far; a resolved approval brings the next poll
        forward."""
        self._tracker.approval_event(event)

    @workflow.update(name=ids.UPDATE_RESOLVE_SUBMIT)
    async def resolve_submit(self, resolution: SubmitResolution) -> str:
        """The caller's word on a legacy submit whose outcome is unknown: which request at
        Dfns is this one, or submit again. Answers what the workflow did with it."""
        self._resolution, self._resolution_answer = resolution, None
        await workflow.wait_condition(lambda: self._resolution_answer is not None)
        assert self._resolution_answer is not None
        return self._resolution_answer

    @resolve_submit.validator
    def _validate_resolution(self, resolution: SubmitResolution) -> None:
        del resolution
        if self._submit_unknown is None:
            raise ValueError("this workflow is not waiting for its submit to be resolved")

    @workflow.query(name=ids.QUERY_STATE)
    def state(self) -> SignatureProgress:
        """Where the request stands: status, approval, time in status, polls made."""
        st = self._tracker.state
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
            polls_skipped=st.polls_skipped,
            views_taken=st.views_taken,
            events_applied=st.events_applied,
            events_ignored=st.events_ignored,
            run=st.run,
            next_poll_in=(
                max(self._next_poll_at - now, timedelta(0)) if self._next_poll_at else None
            ),
            deadline_passed=st.deadline_passed,
            cancel_requested=st.cancel_requested,
            submit_unknown=self._submit_unknown,
        )

    # --- run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: SignatureWorkflowInput) -> SignatureOutcome:
        """Submit, wait until settled, verify, finish; a batch parent hears how it ended."""
        if not input.notify_parent:
            return await self._settle()
        try:
            outcome = await self._settle()
        except (ActivityError, ApplicationError) as exc:  # the workflow fails with it
            await self._tell_parent(
                BatchItemResult(
                    payout_id=workflow.info().workflow_id,
                    error=str(exc.cause if isinstance(exc, ActivityError) and exc.cause else exc),
                    error_type=_error_type(exc),
                )
            )
            raise
        await self._tell_parent(
            BatchItemResult(
                payout_id=outcome.workflow_id,
                kind=outcome.kind,
                signature_id=outcome.signature_id,
                tx_hash=outcome.tx_hash,
            )
        )
        return outcome

    async def _settle(self) -> SignatureOutcome:
        tracker = self._tracker
        if tracker.state.signature_id is None and not await self._submit():
            return await self._finish()  # the deadline passed before anything was sent
        await self._wait_until_settled()
        if tracker.state.status in (SignatureStatus.SIGNED, SignatureStatus.CONFIRMED):
            await self._verify()
        await self._describe_approval()
        return await self._finish()

    async def _tell_parent(self, result: BatchItemResult) -> None:
        """Signal the parent (whichever run of it is current); a closed parent is no error."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                ids.SIGNAL_BATCH_ITEM, result
            )
        except Exception as exc:  # the parent closed (cancelled, finished): nothing to tell
            workflow.logger.warning(
                "signature.parent_not_told", extra={"parent": parent.workflow_id, "error": str(exc)}
            )

    # --- steps ----------------------------------------------------------------------------

    async def _submit(self) -> bool:
        """Create the request at Dfns; False when the deadline passed before anything was sent."""
        st = self._tracker.state
        if st.run == 1:
            self._upsert(
                ids.SA_STATUS.value_set("Submitting"),
                ids.SA_TARGET_ID.value_set(self._input.target.id),
                ids.SA_IDEMPOTENCY_KEY.value_set(st.idempotency_key),
                ids.SA_EXTERNAL_ID.value_set(st.external_id),
            )
        if self._tracker.deadline_reached(workflow.now()):
            st.deadline_passed = True
            self._notes.append("the deadline had passed before submission: nothing was sent")
            return False
        while True:
            try:
                submitted = await self._call(
                    api.SUBMIT, SubmitInput(target=self._input.target, request=self._request)
                )
                break
            except ActivityError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type == ids.ERR_SUBMIT_UNKNOWN:
                    adopted = await self._resolve_unknown_submit(cause.message)
                    if adopted is False:
                        return False
                    if adopted is True:
                        return True
                    continue
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    self._upsert(ids.SA_STATUS.value_set("Refused"))
                    self._flush()
                    self._outcome_metric("refused")
                    raise ApplicationError(
                        f"Dfns refused the signature request: {cause.message}",
                        type=cause.type or ids.ERR_INVALID_REQUEST,
                        non_retryable=True,
                    ) from err
                raise
        view = submitted.view
        self._record(view)
        if submitted.verification is not None:
            self._tracker.record_verification(submitted.verification, view)
            self._verification_metric(submitted.verification)
        self._metrics.submitted(self._input.target.kind)
        workflow.logger.info(
            "workflow.signature_submitted",
            extra={"signature_id": view.id, "status": str(view.status)},
        )
        return True

    async def _resolve_unknown_submit(self, why: str) -> bool | None:
        """Wait for the caller to resolve a submit whose outcome is unknown.

        Returns True when a request at Dfns was adopted, None to submit again, False when
        the deadline passed or the workflow was cancelled first (nothing more is sent).
        """
        tracker = self._tracker
        self._submit_unknown = why
        self._resolution = None
        self._upsert(ids.SA_STATUS.value_set("SubmitUnknown"))
        workflow.logger.warning("signature.submit_unknown", extra={"error": why})
        while True:
            self._flush()
            deadline = self._input.deadline
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(lambda: self._resolution is not None, timeout=timeout)
            except TimeoutError:
                tracker.state.deadline_passed = True
            except asyncio.CancelledError:
                tracker.state.cancel_requested = True
            if self._resolution is None:
                self._notes.append(
                    f"the submit's outcome is unknown ({why}); a request for this hash may "
                    "exist at Dfns"
                )
                return False
            resolution, self._resolution = self._resolution, None
            if resolution.signature_id is None:
                self._submit_unknown = None
                self._resolution_answer = "resubmitting"
                self._upsert(ids.SA_STATUS.value_set("Submitting"))
                return None
            problem = await self._adopt(resolution.signature_id)
            if problem is None:
                self._submit_unknown = None
                self._resolution_answer = f"adopted {resolution.signature_id}"
                return True
            self._resolution_answer = (
                f"{resolution.signature_id} could not be read ({problem}); still waiting"
            )

    async def _adopt(self, signature_id: str) -> str | None:
        """Take the request the caller named as this workflow's; why not, if it cannot be read."""
        try:
            read = await self._call(
                api.READ_AND_VERIFY,
                ReadAndVerifyInput(
                    target=self._input.target, signature_id=signature_id, request=self._request
                ),
            )
        except ActivityError as err:
            problem = str(err.cause or err)
            workflow.logger.warning(
                "signature.adopt_failed", extra={"signature_id": signature_id, "error": problem}
            )
            return problem
        self._record(read.view)
        if read.verification is not None:
            self._tracker.record_verification(read.verification, read.view)
            self._verification_metric(read.verification)
        self._notes.append(f"request {signature_id} adopted on the caller's word")
        return None

    async def _wait_until_settled(self) -> None:
        """Wait for hints and poll, until the request settles or the engine stops it."""
        tracker, policy = self._tracker, self._input.polling
        st = tracker.state
        interval = st.next_interval or policy.initial_interval
        polls_this_run = 0
        while not tracker.finished():
            if st.status is SignatureStatus.SIGNED:
                # Waiting for Confirmed: check the signature now, not days later.
                await self._verify()
            if tracker.stop_due(workflow.now()):
                st.deadline_passed = st.deadline_passed or tracker.deadline_reached(workflow.now())
                self._metrics.wakeup("cancel" if st.cancel_requested else "deadline")
                if await self._stop():
                    return
                interval = policy.initial_interval
                continue
            if self._should_continue_as_new(polls_this_run):
                await self._continue_as_new(interval)
            armed_at = workflow.now()
            wait_for = jittered(interval, policy.jitter, workflow.random().random())
            woke = await self._wait(tracker.wait_limit(wait_for, armed_at))
            if not woke and tracker.stop_due(workflow.now()):
                continue
            if (
                not woke
                and policy.reconciled
                and st.status in RECONCILED_STATUSES
                and await self._reconciler_swept(armed_at)
            ):
                # A full sweep since the wait began saw this request and left it alone:
                # nothing moved, and the safety net need not ask Dfns. (A signed request
                # waiting to be confirmed is no sweep's business: it polls.)
                st.polls_skipped += 1
                interval = st.next_interval = next_interval(policy, interval, changed=False)
                continue
            self._metrics.wakeup("webhook" if woke else "poll")
            if woke and not tracker.status_hinted():
                # Only the approval resolved: the request's own status event follows and is
                # the wake-up; reading now would race it (two wake-ups for one approval).
                # Look again within the initial interval in case that event is lost.
                tracker.approval_changed = False
                interval = st.next_interval = policy.initial_interval
                continue
            changed = await self._poll()
            polls_this_run += 1
            interval = next_interval(policy, interval, changed=changed)
            if self._retry_after is not None:
                interval, self._retry_after = max(interval, self._retry_after), None
            st.next_interval = interval

    async def _poll(self) -> bool:
        """Look at the request: a signed copy a hint carried if it verifies, else Dfns.

        True when the status moved, or when a hint that ran ahead of what Dfns shows was
        dropped (news too: the interval starts over). Only a read, even a failed one, drops
        such a hint; a taken copy says nothing of hints that came while it was checked.
        """
        carried = self._tracker.take_carried()
        if carried is not None and await self._take_carried(carried):
            return True
        moved = await self._read()
        return self._tracker.drop_stale_hint() or moved

    async def _read(self) -> bool:
        """Read the request from Dfns (verifying new signatures); True when it moved.

        A read Dfns refused with 429 is not a failed poll: the request is unchanged as far
        as anyone knows, and the next look waits at least for ``Retry-After``.
        """
        tracker = self._tracker
        st = tracker.state
        assert st.signature_id is not None
        try:
            read = await self._call(
                api.READ_AND_VERIFY,
                ReadAndVerifyInput(
                    target=self._input.target,
                    signature_id=st.signature_id,
                    external_id=st.external_id,
                    request=self._request,
                    verify=st.verification is None,
                ),
                local=self._local_reads(),
            )
        except ActivityError as err:
            if _error_type(err) == ids.ERR_RATE_LIMITED:
                self._retry_after = _retry_after(err)
                workflow.logger.info("signature.poll_rate_limited", extra={"polls": st.polls})
                return False
            error = str(err.cause or err)
            tracker.record_poll(error)
            workflow.logger.warning(
                "signature.poll_failed", extra={"error": error, "polls": st.polls}
            )
            return False
        tracker.record_poll(None)
        moved = self._record(read.view)
        if read.verification is not None:
            tracker.record_verification(read.verification, read.view)
            self._verification_metric(read.verification)
        return moved

    async def _take_carried(self, view: SignatureRequestView) -> bool:
        """Apply the signed request a webhook carried, if its signature verifies here.

        The webhook's HMAC says Dfns sent it; the signature, checked over this workflow's
        own request under the target's public key, says the key signed this very request
        (not that Dfns approved it: ARCHITECTURE.md says what that leaves). A copy that does
        not verify (or cannot be checked) is only a hint: the caller reads Dfns instead, and
        that read decides. True when the status moved.
        """
        tracker = self._tracker
        try:
            result = await self._call(
                api.VERIFY_CARRIED,
                VerifyCarriedInput(
                    target=self._input.target,
                    request=self._request,
                    snapshot=view,
                    read_key=self._local_reads(),
                ),
                local=True,
            )
        except ActivityError as err:
            result = VerificationResult(status="unverifiable", method="none", detail=str(err))
        if result.status != "verified":
            log = workflow.logger.warning if result.status == "invalid" else workflow.logger.info
            log(
                "signature.carried_not_taken",
                extra={"signature_id": view.id, "verdict": result.status, "detail": result.detail},
            )
            return False
        moved = self._record(view)
        tracker.took_carried(result, view)
        self._verification_metric(result)
        return moved

    async def _reconciler_swept(self, since: datetime) -> bool:
        """Whether the queue's reconciler finished a sweep that began after ``since``.

        Any failure to find out is "no": the safety net then polls Dfns as it would without
        a reconciler.
        """
        asked = ReconcilerSweptInput(task_queue=workflow.info().task_queue, since=since)
        try:
            answer = await self._call(api.RECONCILER_SWEPT, asked, local=True)
        except ActivityError as err:
            workflow.logger.info("signature.reconciler_unknown", extra={"error": str(err)})
            return False
        return answer.swept

    async def _stop(self) -> bool:
        """Deadline passed or cancelled: deny our own pending approval. True when done."""
        tracker = self._tracker
        st = tracker.state
        tracker.stop_handled = True
        why = tracker.stop_reason()
        await self._poll()
        if st.status is not SignatureStatus.PENDING:
            # Executing or signed already: it will be reported as what it is.
            return tracker.finished()
        approval_id = st.approval_id
        if approval_id is None:
            st.denial = tracker.nothing_to_deny()
            return True
        try:
            st.denial = await self._call(
                api.DENY_APPROVAL,
                DenyApprovalInput(
                    approval_id=approval_id,
                    reason=f"signgate: {why} for {workflow.info().workflow_id}",
                ),
            )
        except ActivityError as err:
            # Only a non-retryable refusal gets here: say so in the outcome.
            st.denial = DenialResult(
                approval_id=approval_id, denied=False, detail=f"denial failed: {err.cause or err}"
            )
        workflow.logger.info(
            "signature.denied_own_approval",
            extra={"approval_id": approval_id, "denied": st.denial.denied, "why": why},
        )
        await self._poll()
        return tracker.done_after_denial()

    async def _verify(self) -> None:
        """Make sure the snapshot's signatures verified; fail the workflow when they do not."""
        tracker = self._tracker
        snap = tracker.state.snapshot
        assert snap is not None
        result = tracker.verification_for_snapshot()
        if result is None:
            result = await self._call(
                api.VERIFY,
                VerifyInput(target=self._input.target, request=self._request, snapshot=snap),
            )
            tracker.record_verification(result, snap)
            self._verification_metric(result)
        if result.status == "invalid":
            self._upsert(ids.SA_OUTCOME.value_set("verification-failed"))
            self._flush()
            self._outcome_metric("verification_failed")
            raise ApplicationError(
                f"signature {snap.id} does not verify and was not delivered: {result.detail}",
                result.model_dump(mode="json"),
                type=ids.ERR_VERIFICATION_FAILED,
                non_retryable=True,
            )

    async def _describe_approval(self) -> None:
        """Read the approval's decisions for the outcome, unless a webhook carried them."""
        tracker = self._tracker
        st = tracker.state
        approval_id = st.approval_id
        if approval_id is None or tracker.approval_known_resolved():
            return
        try:
            st.approval = await self._call(
                api.DESCRIBE_APPROVAL, DescribeApprovalInput(approval_id=approval_id)
            )
        except ActivityError as err:
            # The outcome stands without the decisions; say why they are missing.
            self._notes.append(f"approval {approval_id} could not be read: {err.cause or err}")

    async def _finish(self) -> SignatureOutcome:
        """Decide the outcome, show it in visibility, run the deliveries for it."""
        outcome = self._tracker.outcome(
            workflow_id=workflow.info().workflow_id,
            request_kind=self._request.kind,
            now=workflow.now(),
            notes=self._notes,
        )
        self._upsert(ids.SA_OUTCOME.value_set(outcome.kind))
        self._flush()
        self._outcome_metric(outcome.kind)
        await workflow.wait_condition(workflow.all_handlers_finished)
        receipts = await self._deliver(outcome)
        return outcome.model_copy(update={"deliveries": receipts})

    async def _deliver(self, outcome: SignatureOutcome) -> list[DeliveryReceipt]:
        receipts: list[DeliveryReceipt] = []
        if not self._tracker.deliverable():
            return receipts
        payload = outcome.model_dump(mode="json", exclude={"deliveries"})
        key = self._tracker.state.idempotency_key
        for index, spec in enumerate(self._input.deliveries):
            if spec.on is not None and outcome.kind not in spec.on:
                continue
            delivery_key = f"{key}/{index}-{spec.kind}"
            if isinstance(spec, CallbackDelivery):
                receipt = await self._call(
                    api.DELIVER_CALLBACK,
                    CallbackInput(
                        spec=spec,
                        idempotency_key=delivery_key,
                        event="signature.outcome",
                        payload=payload,
                    ),
                )
            else:
                receipt = await self._call(
                    api.RECORD_LEDGER,
                    LedgerInput(
                        spec=spec,
                        idempotency_key=delivery_key,
                        workflow_id=outcome.workflow_id,
                        record_kind="signature",
                        outcome=outcome.kind,
                        signature_id=outcome.signature_id,
                        payload=payload,
                    ),
                )
            receipts.append(receipt)
        return receipts

    # --- plumbing -------------------------------------------------------------------------

    def _record(self, view: SignatureRequestView) -> bool:
        """Apply a read to the tracker and show a status change in visibility."""
        before, since = self._tracker.state.status, self._tracker.state.status_since
        try:
            read = self._tracker.apply_read(view, workflow.now())
        except RequestMismatch as exc:
            raise ApplicationError(
                str(exc), type=ids.ERR_REQUEST_MISMATCH, non_retryable=True
            ) from None
        st = self._tracker.state
        if read.unknown_status is not None:
            workflow.logger.warning(
                "signature.unknown_status", extra={"raw_status": read.unknown_status}
            )
        if read.moved:
            if before is SignatureStatus.PENDING and since is not None and st.approval_id:
                self._metrics.approval_waited(workflow.now() - since, str(st.status))
            updates: list[SearchAttributeUpdate[Any]] = [ids.SA_STATUS.value_set(str(st.status))]
            if read.first:
                updates.append(ids.SA_SIGNATURE_ID.value_set(view.id))
            self._upsert(*updates)
            workflow.logger.info(
                "signature.status_changed",
                extra={"signature_id": view.id, "status": str(st.status)},
            )
        return read.moved

    def _outcome_metric(self, outcome: str) -> None:
        self._metrics.outcome(outcome, self._tracker.state.started_at, workflow.now())

    def _verification_metric(self, result: VerificationResult) -> None:
        self._metrics.verification(result.scheme, result.status)

    def _upsert(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Gather search-attribute changes until the workflow next waits, later ones winning."""
        for update in updates:
            self._attributes[update.key.name] = update

    def _flush(self) -> None:
        """Send the gathered search-attribute changes as one upsert, if there are any."""
        if self._attributes:
            workflow.upsert_search_attributes(list(self._attributes.values()))
            self._attributes.clear()

    def _should_continue_as_new(self, polls_this_run: int) -> bool:
        limit = self._input.polling.continue_as_new_after_polls
        if limit is not None and polls_this_run >= limit:
            return True
        return workflow.info().is_continue_as_new_suggested()

    async def _continue_as_new(self, interval: timedelta) -> None:
        st = self._tracker.state
        self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        st.run += 1
        st.next_interval = interval
        workflow.logger.info("signature.continue_as_new", extra={"run": st.run, "polls": st.polls})
        workflow.continue_as_new(self._input.model_copy(update={"state": st}))

    async def _wait(self, wait_for: timedelta) -> bool:
        """Wait for a hint or the timeout; True when a hint woke us."""
        tracker = self._tracker
        if tracker.wake_pending():
            return True
        if wait_for <= timedelta(0):
            return False
        self._flush()
        self._next_poll_at = workflow.now() + wait_for
        try:
            await workflow.wait_condition(tracker.wake_pending, timeout=wait_for)
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            tracker.state.cancel_requested = True
            return False
        finally:
            self._next_poll_at = None
        return True

    def _local_reads(self) -> bool:
        """Whether this run reads Dfns as local activities: the starter asks, the workers decide.

        The input's ``local_reads`` comes from the starter's settings. Workers that keep a
        Dfns budget activate :data:`signgate.ids.BUDGET_QUEUES_READS_PATCH` and so keep every
        read on the rate-limited reads queue; the SDK memoises the answer for the run and
        records it in history, so replay on a worker with other settings reads the same way.
        """
        return self._input.polling.local_reads and not workflow.patched(
            ids.BUDGET_QUEUES_READS_PATCH
        )

    async def _call(
        self, ref: api.ActivityRef[_In, _Out], arg: _In, *, local: bool = False
    ) -> _Out:
        """Run an activity to completion even if the workflow is cancelled meanwhile.

        Cancelling a submit half-way would leave it unknown whether Dfns holds a request;
        cancelling a read or a delivery gains nothing. The cancel is remembered instead and
        handled by the loop (deny the approval), so it is never lost.
        """
        # The workflow task ends here: what it changed must be visible meanwhile.
        self._flush()
        handle = ref.start(arg, local=local)
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError:
            self._tracker.state.cancel_requested = True
            return await handle


def _error_type(exc: ActivityError | ApplicationError) -> str | None:
    """The ``ApplicationError`` type a workflow failure carries (``ids.ERR_*``)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.cause if isinstance(cause, ActivityError) else cause.__cause__
    return cause.type if isinstance(cause, ApplicationError) else None


def _retry_after(exc: ActivityError) -> timedelta | None:
    """The ``Retry-After`` a ``DfnsRateLimited`` failure carries, if Dfns sent one."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        details = cause.details[0]
        if isinstance(details, dict) and isinstance(details.get("retry_after"), int | float):
            return timedelta(seconds=details["retry_after"])
    return None
