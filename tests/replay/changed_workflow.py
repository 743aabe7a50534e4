"""An incompatible change to SignatureWorkflow, to prove the replay tests catch one.

Its own module because the workflow sandbox re-imports a workflow's module: the test
module imports HTTP clients that the sandbox refuses.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from signgate import ids
    from signgate.contracts import SignatureOutcome, SignatureWorkflowInput

from workflows.signature import SignatureWorkflow


@workflow.defn(name=ids.SIGNATURE_WORKFLOW)
class SignatureWorkflowWithAnExtraTimer(SignatureWorkflow):
    """A timer before the submit: a command running workflows never issued."""

    @workflow.run
    async def run(self, input: SignatureWorkflowInput) -> SignatureOutcome:
        """Sleep a second, then do what the real workflow does."""
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)
