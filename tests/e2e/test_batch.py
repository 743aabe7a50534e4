"""PayoutBatchWorkflow on a real stack: counts, one Dfns request per payout, continue-as-new,
cancel, and a batch that survives kill -9 of its worker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from signgate import ids
from signgate.contracts import (
    BatchPayout,
    BatchProgress,
    PayoutBatchInput,
    PayoutBatchOutcome,
    PollingPolicy,
)
from tests.support.engine_worker import RunningWorker
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.batch import PayoutBatchWorkflow
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

FAST = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=3))
Plan = dict[str, str]
"""payout id -> what the test does with it: auto, approve, deny, expire."""


def _payouts(
    sandbox: EngineSandbox,
    batch: str,
    counts: dict[str, int],
    expire_after: timedelta = timedelta(seconds=20),
) -> tuple[list[BatchPayout], Plan]:
    """The batch's rows and their plan; "expire" rows have a deadline ``expire_after`` on."""
    deadline = datetime.now(UTC) + expire_after
    rows: list[BatchPayout] = []
    plan: Plan = {}
    # Expiring rows first, so they reach Dfns before their deadline.
    for fate in ("expire", "approve", "deny", "auto"):
        for n in range(counts.get(fate, 0)):
            payout_id = f"{batch}-{fate}-{n}"
            key = "evm-auto" if fate == "auto" else "evm-gated"
            rows.append(
                BatchPayout(
                    id=payout_id,
                    to="0x" + "42" * 20,
                    value_wei=1000 + n,
                    nonce=n,
                    source=sandbox.target("key", key),
                    deadline=deadline if fate == "expire" else None,
                )
            )
            plan[payout_id] = fate
    return rows, plan


async def _decide_gated(client: Client, sandbox: EngineSandbox, plan: Plan) -> None:
    """Approve or deny each gated payout once its child knows its approval."""

    async def decide(payout_id: str, fate: str) -> None:
        handle = client.get_workflow_handle_for(SignatureWorkflow.run, payout_id)

        async def approval_id() -> str | None:
            return (await handle.query(SignatureWorkflow.state)).approval_id

        approval = await eventually(approval_id, what=f"{payout_id}'s approval", within=600)
        if fate == "approve":
            await sandbox.decide(approval, "alice", "bob")
        else:
            await sandbox.decide(approval, "alice", value="Denied")

    gated = [(pid, fate) for pid, fate in plan.items() if fate in ("approve", "deny")]
    await asyncio.gather(*(decide(pid, fate) for pid, fate in gated))


def _expected(plan: Plan) -> dict[str, int]:
    kinds = {"auto": "signed", "approve": "signed", "deny": "rejected", "expire": "expired"}
    counts: dict[str, int] = {}
    for fate in plan.values():
        counts[kinds[fate]] = counts.get(kinds[fate], 0) + 1
    return counts


def _counts(outcome: PayoutBatchOutcome) -> dict[str, int]:
    """The outcome's counts with ``confirmed`` as ``signed``: a request read after the sandbox
    confirmed it is reported as confirmed, which is a signed request one step on."""
    counts = dict(outcome.by_outcome)
    if "confirmed" in counts:
        counts["signed"] = counts.get("signed", 0) + counts.pop("confirmed")
    return counts


async def _check_dfns(sandbox: EngineSandbox, plan: Plan, outcome: PayoutBatchOutcome) -> None:
    """Every signed or rejected payout made exactly one Dfns request; none made two."""
    by_key: dict[str, list[str]] = {}
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=30) as http:
        dfns = sandbox.dfns_client("engine", http)
        for key in ("evm-auto", "evm-gated"):
            by_key[key] = [
                item.external_id or ""
                async for item in dfns.iter_signatures(sandbox.credentials.key_id(key))
            ]
    for result in outcome.results:
        key = "evm-auto" if plan[result.payout_id] == "auto" else "evm-gated"
        made = by_key[key].count(ids.external_id_for(result.payout_id))
        assert made <= 1, result
        if result.kind in ("signed", "rejected"):
            assert made == 1, result


async def test_a_batch_continues_as_new_and_ends_with_the_right_counts(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    batch_id = f"batch-{uuid.uuid4().hex[:8]}"
    payouts, plan = _payouts(sandbox, batch_id, {"auto": 8, "approve": 3, "deny": 3, "expire": 2})
    handle = await worker.client.start_workflow(
        PayoutBatchWorkflow.run,
        PayoutBatchInput(payouts=payouts, polling=FAST, concurrency=5, payouts_per_run=4),
        id=batch_id,
        task_queue=worker.task_queue,
    )
    first_run = handle.result_run_id
    progress = await handle.query(PayoutBatchWorkflow.progress)
    assert progress.total == 16
    await _decide_gated(worker.client, sandbox, plan)
    outcome = await handle.result()
    assert _counts(outcome) == _expected(plan)
    assert [r.payout_id for r in outcome.results] == [p.id for p in payouts]
    assert (await handle.describe()).run_id != first_run, "the batch continued as new"
    await _check_dfns(sandbox, plan, outcome)

    # The same batch id again starts nothing; a payout id already paid is not paid twice.
    again, _ = _payouts(sandbox, f"other-{batch_id}", {"auto": 1})
    repeat = await worker.client.execute_workflow(
        PayoutBatchWorkflow.run,
        PayoutBatchInput(payouts=[payouts[-1], *again], polling=FAST),
        id=f"other-{batch_id}",
        task_queue=worker.task_queue,
    )
    assert repeat.results[0].error_type == "DuplicatePayout"
    assert repeat.results[1].kind == "signed"


async def test_cancelling_a_batch_cancels_the_rest(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    batch_id = f"batch-{uuid.uuid4().hex[:8]}"
    payouts, _plan = _payouts(sandbox, batch_id, {"approve": 6})
    handle = await worker.client.start_workflow(
        PayoutBatchWorkflow.run,
        PayoutBatchInput(payouts=payouts, polling=FAST, concurrency=2),
        id=batch_id,
        task_queue=worker.task_queue,
    )

    async def two_waiting() -> BatchProgress | None:
        progress = await handle.query(PayoutBatchWorkflow.progress)
        return progress if progress.in_flight == 2 else None

    await eventually(two_waiting, what="two payouts in flight")
    await handle.cancel()
    outcome = await handle.result()
    assert outcome.cancelled
    assert outcome.by_outcome == {"cancelled": 2, "not_started": 4}


async def test_a_batch_of_500_survives_kill_9_of_its_worker(
    dev_server: DevServer, client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    batch_id = f"batch-{uuid.uuid4().hex[:8]}"
    counts = {"auto": 410, "approve": 40, "deny": 40, "expire": 10}
    # The worker process starts after the rows are made: their deadline leaves it time.
    payouts, plan = _payouts(sandbox, batch_id, counts, expire_after=timedelta(seconds=40))
    env = engine_env(dev_server, sandbox, task_queue, tmp_path)
    worker = WorkerProcess(env).start()
    try:
        handle: WorkflowHandle[Any, PayoutBatchOutcome] = await client.start_workflow(
            PayoutBatchWorkflow.run,
            PayoutBatchInput(payouts=payouts, polling=FAST, concurrency=100),
            id=batch_id,
            task_queue=task_queue,
        )

        async def some_ended() -> BatchProgress | None:
            progress = await handle.query(PayoutBatchWorkflow.progress)
            return progress if progress.ended >= 50 else None

        await eventually(some_ended, what="50 payouts ended", within=300)
        worker.kill()
        worker = WorkerProcess(env).start()
        await _decide_gated(client, sandbox, plan)
        outcome = await handle.result()
    finally:
        worker.kill()
    assert _counts(outcome) == _expected(plan)
    assert len(outcome.results) == 500
    await _check_dfns(sandbox, plan, outcome)
