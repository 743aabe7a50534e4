"""The handler of :class:`signgate.nexus_service.SigningService`, run by the engine's worker.

``sign`` starts the request's ``SignatureWorkflow`` in the engine's namespace, on the
worker's task queue, with the request id as workflow id: the operation's result is the
workflow's outcome, delivered to the caller's workflow by the Temporal server. A retried
operation with the same request id attaches to the running workflow instead of starting a
second one (``USE_EXISTING``), so one request id never makes two Dfns requests.
"""

from __future__ import annotations

import nexusrpc
from temporalio import nexus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from signgate import ids
from signgate.contracts import SignatureOutcome
from signgate.nexus_service import NexusSignRequest, SigningService

__all__ = ["SigningServiceHandler"]


@nexusrpc.handler.service_handler(service=SigningService)
class SigningServiceHandler:
    """Starts one ``SignatureWorkflow`` per operation."""

    @nexus.workflow_run_operation
    async def sign(
        self, ctx: nexus.WorkflowRunOperationContext, input: NexusSignRequest
    ) -> nexus.WorkflowHandle[SignatureOutcome]:
        signature = input.signature
        if signature.idempotency_key is None:
            signature = signature.model_copy(update={"idempotency_key": input.request_id})
        return await ctx.start_workflow(
            ids.SIGNATURE_WORKFLOW,
            signature,
            id=input.request_id,
            result_type=SignatureOutcome,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
