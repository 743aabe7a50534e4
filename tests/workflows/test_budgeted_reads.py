"""The workers' Dfns budget decides where a request's reads run, not the starter's input.

``PollingPolicy.local_reads`` comes from whoever starts the workflow. A budgeted engine
(lane rates set) must still read on its rate-limited ``-dfns-reads`` queue, and an
unbudgeted one runs the same input's reads as local activities. The choice is recorded in
history (a patch marker, ``worker.activate_patch``), so the history replays on a worker that
knows nothing of the budget. Both run the real activities against the sandbox on the
time-skipping server and read the workflow's history.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from signgate import ids
from signgate.activity_api import Lane
from signgate.contracts import PollingPolicy, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from tests.support.engine_worker import run_engine_worker
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from workflows.signature import SignatureWorkflow


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EngineSandbox]:
    running = EngineSandbox(tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("budgeted", [True, False], ids=["budgeted", "unbudgeted"])
async def test_local_reads_from_the_starter_run_on_the_reads_queue_of_a_budgeted_engine(
    ts_env: WorkflowEnvironment,
    sandbox: EngineSandbox,
    task_queue: str,
    tmp_path: Path,
    budgeted: bool,
) -> None:
    rates: dict[Lane, float] | None = {"reads": 50.0, "writes": 50.0} if budgeted else None
    async with run_engine_worker(
        ts_env.client,
        sandbox,
        task_queue,
        tmp_path,
        rates=rates,
        request_hooks=[sandbox.clock_sync_hook()],
    ):
        inp = SignatureWorkflowInput(
            target=sandbox.target("key", "evm-gated"),
            request=HashRequest(hash="7a" * 32),
            polling=PollingPolicy(initial_interval=timedelta(seconds=30), local_reads=True),
        )
        handle = await ts_env.client.start_workflow(
            SignatureWorkflow.run, inp, id=f"sig-{task_queue}", task_queue=task_queue
        )

        async def approval() -> str | None:
            return (await handle.query(SignatureWorkflow.state)).approval_id

        approval_id = await eventually(approval, what="the request's approval")
        await sandbox.decide(approval_id, "alice", "bob")
        outcome = await handle.result()

    assert outcome.kind == "signed"
    events = [event async for event in handle.fetch_history_events()]
    # A local activity leaves a marker whose details name its activity type.
    local_reads = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and ids.ACTIVITY_READ_AND_VERIFY.encode() in e.SerializeToString()
    ]
    queued_reads = {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == ids.ACTIVITY_READ_AND_VERIFY
    }
    patch_markers = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and ids.BUDGET_QUEUES_READS_PATCH.encode() in e.SerializeToString()
    ]
    if budgeted:
        assert not local_reads, "a budgeted engine ran a read as a local activity"
        assert queued_reads == {ids.dfns_task_queue(task_queue, "reads")}
        assert len(patch_markers) == 1, "the refusal is recorded once, before the first read"
    else:
        assert local_reads, "an unbudgeted engine runs local reads in the workflow task"
        assert not queued_reads
        assert not patch_markers
    # Replayed where no budget setting exists (the Replayer has no patch callback), the
    # recorded choice alone decides: either history replays without a nondeterminism error.
    replayer = Replayer(workflows=[SignatureWorkflow], data_converter=pydantic_data_converter)
    replayed = await replayer.replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, repr(replayed.replay_failure)
