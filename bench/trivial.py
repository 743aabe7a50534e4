"""The baseline of ``bench/engine.py``: a workflow that runs one no-op activity.

In its own module because the workflow sandbox re-imports a workflow's module, and the
benchmark script imports HTTP clients the sandbox refuses.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(value: int) -> int:
    """Return the value: the cheapest activity there is."""
    return value


@workflow.defn(name="BenchTrivialWorkflow")
class TrivialWorkflow:
    """One activity, then done (11 history events)."""

    @workflow.run
    async def run(self, value: int) -> int:
        """Run :func:`noop` once."""
        return await workflow.execute_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=30)
        )
