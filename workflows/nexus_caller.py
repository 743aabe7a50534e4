"""A sample caller: a workflow in *another* namespace that signs through signgate's Nexus
endpoint and awaits the verified outcome. Copy it into your own worker; it needs only
:mod:`signgate.nexus_service` and :mod:`signgate.contracts`, no signgate worker of its own.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from signgate.contracts import InputModel, SignatureOutcome, SignatureWorkflowInput
    from signgate.nexus_service import DEFAULT_ENDPOINT, NexusSignRequest, SigningService


class NexusCallerInput(InputModel):
    """What to sign, under which request id, through which endpoint."""

    request_id: str
    signature: SignatureWorkflowInput
    endpoint: str = DEFAULT_ENDPOINT


@workflow.defn(name="signgate.SignViaNexus")
class SignViaNexusWorkflow:
    """Start ``signgate.Signing/sign`` and return its outcome (a request waiting for approval
    waits here too: the operation completes when the signature workflow does)."""

    @workflow.run
    async def run(self, input: NexusCallerInput) -> SignatureOutcome:
        client = workflow.create_nexus_client(service=SigningService, endpoint=input.endpoint)
        return await client.execute_operation(
            SigningService.sign,
            NexusSignRequest(request_id=input.request_id, signature=input.signature),
            schedule_to_close_timeout=timedelta(days=30),
        )
