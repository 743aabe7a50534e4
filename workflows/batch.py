"""PayoutBatchWorkflow: hundreds to thousands of payouts, each signed by its own child.

The workflow id is the batch's business key; each payout's id is its child
``SignatureWorkflow``'s id, so a payout is paid at most once, by whichever batch first
starts it. ``run`` reads as the batch's life:

1. **launch** payouts in order while fewer than ``concurrency`` are in flight: build the
   EIP-1559 transfer (activity), start the child with ``notify_parent`` (it signals this
   workflow how it ended) and ``ABANDON`` as its parent-close policy, so it outlives the
   continue-as-new below;
2. **continue as new** after ``payouts_per_run`` launches (or when the server suggests it),
   carrying the cursor, the payouts in flight and the results: the history stays bounded,
   and children report to whichever run is current;
3. on **cancel**: launch nothing more, record the rest as not started, ask every payout in
   flight to cancel (each denies its own approval at Dfns) and wait for their reports;
4. **finish** once every payout has ended: run the summary deliveries, return the outcome.

Each payout's own outcome goes to the ``deliveries`` its child runs (ledger by default).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from signgate import activity_api as api
    from signgate import ids
    from signgate.contracts import (
        BatchItemResult,
        BatchPayout,
        BatchProgress,
        BatchState,
        BuildTransferInput,
        CallbackDelivery,
        CallbackInput,
        DeliveryReceipt,
        LedgerInput,
        PayoutBatchInput,
        PayoutBatchOutcome,
        SignatureWorkflowInput,
    )
    from workflows.state import transfer_request


@workflow.defn(name=ids.PAYOUT_BATCH_WORKFLOW, failure_exception_types=[ValidationError])
class PayoutBatchWorkflow:
    """One batch of payouts; the workflow id is the batch's business key."""

    @workflow.init
    def __init__(self, input: PayoutBatchInput) -> None:
        self._input = input
        self._state = input.state or BatchState()
        self._ended = {result.payout_id for result in self._state.results}
        self._ids = {payout.id for payout in input.payouts}
        self._launching: asyncio.Future[list[None]] | None = None

    # --- messages -------------------------------------------------------------------------

    @workflow.signal(name=ids.SIGNAL_BATCH_ITEM)
    def item_settled(self, result: BatchItemResult) -> None:
        """A child's report of how its payout ended (duplicates and strangers are ignored).

        It may be applied before the child's start is (signals come first in an activation),
        so any payout of this batch counts, in flight or not.
        """
        if result.payout_id in self._ids and result.payout_id not in self._ended:
            self._state.in_flight.pop(result.payout_id, None)
            self._record(result)

    @workflow.query(name=ids.QUERY_BATCH)
    def progress(self) -> BatchProgress:
        """Counts by outcome, payouts in flight and the ones waiting longest."""
        st = self._state
        oldest = sorted(st.in_flight.items(), key=lambda item: item[1])[:10]
        return BatchProgress(
            total=len(self._input.payouts),
            not_started=len(self._input.payouts) - st.next_index,
            in_flight=len(st.in_flight),
            ended=len(st.results),
            by_outcome=_tally(st.results),
            waiting_longest=oldest,
            run=st.run,
            cancel_requested=st.cancel_requested,
        )

    # --- run ------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: PayoutBatchInput) -> PayoutBatchOutcome:
        """Launch within the concurrency bound, continue as new, finish."""
        try:
            if not self._state.cancel_requested:
                await self._launch_all()
                await workflow.wait_condition(lambda: not self._state.in_flight)
        except asyncio.CancelledError:
            self._state.cancel_requested = True
        if self._state.cancel_requested:
            await asyncio.shield(asyncio.ensure_future(self._cancel_rest()))
            await workflow.wait_condition(lambda: not self._state.in_flight)
        return await self._finish()

    async def _launch_all(self) -> None:
        launched = 0
        st = self._state
        limit = self._input.concurrency
        while st.next_index < len(self._input.payouts):
            await workflow.wait_condition(lambda: len(st.in_flight) < limit)
            if launched >= self._input.payouts_per_run or (
                workflow.info().is_continue_as_new_suggested()
            ):
                await self._continue_as_new()
            window = self._input.payouts[st.next_index : st.next_index + limit - len(st.in_flight)]
            window = window[: self._input.payouts_per_run - launched]
            st.next_index += len(window)
            launched += len(window)
            for payout in window:
                if payout.id not in self._ended:
                    st.in_flight[payout.id] = workflow.now()
            # A cancel lands here, not inside a start: every payout counted as in flight is
            # started (or recorded as a duplicate) before the batch asks them to cancel.
            self._launching = asyncio.gather(*(self._launch(payout) for payout in window))
            await asyncio.shield(self._launching)

    async def _launch(self, payout: BatchPayout) -> None:
        """Build the payout's transfer and start its signature workflow."""
        batch = self._input
        source = payout.source or batch.source
        assert source is not None  # PayoutBatchInput checks every row has one
        try:
            built = await api.BUILD_TRANSFER.run(
                BuildTransferInput(
                    chain_id=payout.chain_id or batch.chain_id,
                    nonce=payout.nonce,
                    to=payout.to,
                    value_wei=payout.value_wei,
                    max_fee_per_gas=_pick(payout.max_fee_per_gas, batch.max_fee_per_gas),
                    max_priority_fee_per_gas=_pick(
                        payout.max_priority_fee_per_gas, batch.max_priority_fee_per_gas
                    ),
                ),
                local=True,
            )
        except ActivityError as exc:
            self._state.in_flight.pop(payout.id, None)
            self._record(
                BatchItemResult(
                    payout_id=payout.id,
                    error=f"the transfer could not be built: {exc.cause or exc}",
                    error_type="BuildFailed",
                )
            )
            return
        request = transfer_request(source, built.unsigned_transaction, batch.network)
        try:
            await workflow.start_child_workflow(
                ids.SIGNATURE_WORKFLOW,
                SignatureWorkflowInput(
                    target=source,
                    request=request,
                    idempotency_key=payout.id,
                    deadline=payout.deadline or batch.deadline,
                    polling=batch.polling,
                    deliveries=batch.deliveries,
                    notify_parent=True,
                ),
                id=payout.id,
                parent_close_policy=ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except WorkflowAlreadyStartedError:
            self._state.in_flight.pop(payout.id, None)
            self._record(
                BatchItemResult(
                    payout_id=payout.id,
                    error=f"a workflow with id {payout.id!r} already exists: this payout was "
                    "started before (by this batch or another) and is not paid twice",
                    error_type="DuplicatePayout",
                )
            )
            return

    async def _cancel_rest(self) -> None:
        """Start nothing more; ask every payout in flight to cancel."""
        st = self._state
        if self._launching is not None:
            await self._launching
        for payout in self._input.payouts[st.next_index :]:
            self._record(
                BatchItemResult(
                    payout_id=payout.id,
                    error="the batch was cancelled first",
                    error_type="NotStarted",
                )
            )
        st.next_index = len(self._input.payouts)
        for payout_id in list(st.in_flight):
            try:
                await workflow.get_external_workflow_handle(payout_id).cancel()
            except Exception as exc:  # it ended meanwhile; its report is on its way
                workflow.logger.info(
                    "batch.cancel_missed", extra={"payout_id": payout_id, "error": str(exc)}
                )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        st = self._state.model_copy(update={"run": self._state.run + 1})
        workflow.continue_as_new(self._input.model_copy(update={"state": st}))

    async def _finish(self) -> PayoutBatchOutcome:
        batch_id = workflow.info().workflow_id
        order = {payout.id: index for index, payout in enumerate(self._input.payouts)}
        results = sorted(self._state.results, key=lambda r: order.get(r.payout_id, len(order)))
        outcome = PayoutBatchOutcome(
            batch_id=batch_id,
            total=len(self._input.payouts),
            by_outcome=_tally(results),
            results=results,
            cancelled=self._state.cancel_requested,
        )
        receipts: list[DeliveryReceipt] = []
        summary = outcome.model_dump(mode="json", include={"batch_id", "total", "by_outcome"})
        summary["cancelled"] = outcome.cancelled
        for index, spec in enumerate(self._input.summary):
            key = f"{batch_id}/summary-{index}-{spec.kind}"
            if isinstance(spec, CallbackDelivery):
                receipt = await api.DELIVER_CALLBACK.run(
                    CallbackInput(
                        spec=spec, idempotency_key=key, event="batch.summary", payload=summary
                    )
                )
            else:
                receipt = await api.RECORD_LEDGER.run(
                    LedgerInput(
                        spec=spec,
                        idempotency_key=key,
                        workflow_id=batch_id,
                        record_kind="batch",
                        outcome="cancelled" if outcome.cancelled else "completed",
                        signature_id=None,
                        payload=summary,
                    )
                )
            receipts.append(receipt)
        return outcome.model_copy(update={"deliveries": receipts})

    def _record(self, result: BatchItemResult) -> None:
        if result.payout_id not in self._ended:
            self._ended.add(result.payout_id)
            self._state.results.append(result)


def _pick(value: int | None, default: int) -> int:
    return default if value is None else value


def _tally(results: list[BatchItemResult]) -> dict[str, int]:
    """Results by outcome kind; a payout with no outcome counts as ``error`` or
    ``not_started``."""

    def bucket(result: BatchItemResult) -> str:
        if result.kind is not None:
            return result.kind
        return "not_started" if result.error_type == "NotStarted" else "error"

    return dict(Counter(bucket(result) for result in results))
