"""PayoutWorkflow: an approval-driven payout built on SignatureWorkflow, as a worked example.

Build an EIP-1559 transfer (activity), sign it through a child ``SignatureWorkflow``
(which submits once, waits through policy approval, verifies, and may wait for
``Confirmed``), record the payout in the ledger and notify by callback. The child's id
is derived from the payout's, so a retried or restarted parent attaches to the same
signature request instead of making a second one.

Compose your own pipelines the same way: call ``SignatureWorkflow`` as a child with the
deliveries you need, then do your own steps with its outcome.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from signgate import activity_api as api
    from signgate import ids
    from signgate.contracts import (
        CallbackInput,
        LedgerInput,
        PayoutInput,
        PayoutOutcome,
        SignatureOutcome,
        SignatureWorkflowInput,
    )
    from workflows.state import transfer_request


@workflow.defn(name=ids.PAYOUT_WORKFLOW, failure_exception_types=[ValidationError])
class PayoutWorkflow:
    """One payout; the workflow id is the payout's business key."""

    @workflow.run
    async def run(self, input: PayoutInput) -> PayoutOutcome:
        """Build, sign (child workflow), record, notify."""
        payout_id = workflow.info().workflow_id
        built = await api.BUILD_TRANSFER.run(input.transfer)
        request = transfer_request(input.source, built.unsigned_transaction, input.network)
        child = await workflow.start_child_workflow(
            ids.SIGNATURE_WORKFLOW,
            SignatureWorkflowInput(
                target=input.source,
                request=request,
                idempotency_key=payout_id,
                deadline=input.deadline,
                wait_for_confirmed=input.wait_for_confirmed,
                polling=input.polling,
            ),
            id=ids.child_signature_workflow_id(payout_id),
            result_type=SignatureOutcome,
            # A cancelled payout cancels the signature, which denies its approval at Dfns.
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        try:
            signature = await asyncio.shield(child)
        except asyncio.CancelledError:
            child.cancel()
            signature = await child

        recorded = await api.RECORD_LEDGER.run(
            LedgerInput(
                spec=input.ledger,
                idempotency_key=f"{payout_id}/ledger",
                workflow_id=payout_id,
                record_kind="payout",
                outcome=signature.kind,
                signature_id=signature.signature_id,
                payload={
                    "payout_id": payout_id,
                    "to": built.to,
                    "value_wei": str(built.value_wei),
                    "chain_id": built.chain_id,
                    "nonce": built.nonce,
                    "unsigned_transaction": built.unsigned_transaction,
                    "signed_transaction": signature.signed_data,
                    "tx_hash": signature.tx_hash,
                    "outcome": signature.kind,
                    "verification": (
                        signature.verification.status if signature.verification else None
                    ),
                },
            )
        )
        outcome = PayoutOutcome(
            payout_id=payout_id,
            kind=signature.kind,
            transfer=built,
            signature=signature,
            signed_transaction=signature.signed_data,
            tx_hash=signature.tx_hash,
            recorded=recorded,
        )
        if input.callback is not None and (
            input.callback.on is None or signature.kind in input.callback.on
        ):
            notified = await api.DELIVER_CALLBACK.run(
                CallbackInput(
                    spec=input.callback,
                    idempotency_key=f"{payout_id}/callback",
                    event="payout.outcome",
                    payload=outcome.model_dump(mode="json"),
                )
            )
            outcome = outcome.model_copy(update={"notified": notified})
        return outcome
