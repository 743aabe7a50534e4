"""The floor of ``bench/webhook.py``'s burst: a workflow that completes on one signal.

In its own module because the workflow sandbox re-imports a workflow's module for each
run, and the benchmark script imports HTTP clients the sandbox refuses.
"""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BenchSignalFloorWorkflow")
class SignalFloorWorkflow:
    """Waits for :meth:`go`, then returns: no activity, no timer."""

    def __init__(self) -> None:
        self._signalled = False

    @workflow.signal
    def go(self) -> None:
        """Let the run finish."""
        self._signalled = True

    @workflow.run
    async def run(self) -> None:
        """Return once :meth:`go` has arrived."""
        await workflow.wait_condition(lambda: self._signalled)
