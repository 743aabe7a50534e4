"""The engine's Dfns budget, kept by the Temporal server for every worker process together.

Three worker processes share one task queue; twelve gated requests wait for approval and
each would poll every second (twelve reads a second, 720 a minute). The budget (half of
Dfns's default 1,000-a-minute org limit, half of that for reads: 250 reads a minute) is
enforced on the Dfns task queues by the server, so the reads the sandbox counts, over a
stretch of some 25 s once every request is submitted, come at the budget's rate and no
faster however many workers or requests there are; its sliding minute of the engine's
calls stays within the engine's share throughout.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from signgate.contracts import PollingPolicy, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from signgate.settings import Settings
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

ORG_LIMIT = 1000
WORKERS = 3
REQUESTS = 12
READ = "GET /keys/{keyId}/signatures/{signatureId}"
SUBMIT = "POST /keys/{keyId}/signatures"
READS_AFTER_SUBMITS = 100
"""Reads to watch after the last submit: about 24 s of the reads budget, long enough that
the server's one-second burst is small beside it."""


def _budgets() -> tuple[float, float]:
    """(engine calls a minute, reads a minute) the default shares give ``ORG_LIMIT``."""
    settings = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": str(ORG_LIMIT)})
    reads = settings.dfns_budget_per_minute("reads")
    writes = settings.dfns_budget_per_minute("writes")
    assert reads is not None and writes is not None
    return reads + writes, reads


async def test_several_workers_together_keep_the_engine_within_its_budget(
    dev_server: DevServer, client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    engine_budget, reads_budget = _budgets()
    await sandbox.local("POST", "reset")
    await sandbox.local("PUT", "rate-limit", {"limitPerMinute": ORG_LIMIT})
    workers = []
    for n in range(WORKERS):
        directory = tmp_path / f"worker-{n}"
        directory.mkdir()
        env = engine_env(dev_server, sandbox, task_queue, directory, org_rate_limit=ORG_LIMIT)
        workers.append(WorkerProcess(env))
    prefix = f"budget-{uuid.uuid4().hex[:8]}"
    polling = PollingPolicy(
        initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=1)
    )
    samples: list[tuple[float, dict[str, Any]]] = []
    handles = []
    try:
        await asyncio.gather(*(asyncio.to_thread(w.start) for w in workers))
        handles += [
            await client.start_workflow(
                SignatureWorkflow.run,
                SignatureWorkflowInput(
                    target=sandbox.target("key", "evm-gated"),
                    request=HashRequest(hash=os.urandom(32).hex()),
                    polling=polling,
                ),
                id=f"{prefix}-{n}",
                task_queue=task_queue,
            )
            for n in range(REQUESTS)
        ]

        async def sample() -> dict[str, Any]:
            at = time.monotonic()
            report: dict[str, Any] = await sandbox.local("GET", "rate-limit")
            samples.append((at, report))
            return report

        async def all_submitted() -> bool:
            report = await sample()
            return bool(report["sinceReset"]["byRoute"].get(SUBMIT, 0) == REQUESTS)

        await eventually(all_submitted, what=f"{REQUESTS} requests submitted", within=240)
        submitted_at = len(samples) - 1
        reads_then = samples[-1][1]["sinceReset"]["byRoute"].get(READ, 0)

        async def read_on() -> bool:
            report = await sample()
            reads = report["sinceReset"]["byRoute"].get(READ, 0)
            return bool(reads >= reads_then + READS_AFTER_SUBMITS)

        await eventually(read_on, what=f"{READS_AFTER_SUBMITS} more reads", within=240)
    finally:
        for worker in workers:
            worker.kill()
        await sandbox.local("PUT", "rate-limit", {"limitPerMinute": 0})
    for handle in handles:
        await handle.terminate("budget test over")

    engine = [s["lastMinute"]["byCaller"].get("engine", 0) for _, s in samples]
    # The server's token bucket admits a second's worth at once on top of the rate.
    assert max(engine) <= engine_budget * 1.05 + 9, (max(engine), engine_budget)
    (start, first), (end, last) = samples[submitted_at], samples[-1]
    seconds = end - start
    reads = last["sinceReset"]["byRoute"][READ] - first["sinceReset"]["byRoute"].get(READ, 0)
    allowed = reads_budget / 60 * seconds
    assert reads <= allowed * 1.05 + 5, (reads, seconds, reads_budget)
    # The budget bound: twelve requests polling every second would read 720 times a minute.
    assert reads >= allowed * 0.6, (reads, seconds, reads_budget)
    assert all(s["lastMinute"]["limited"] == 0 for _, s in samples), "no call was refused"
    final = samples[-1][1]["sinceReset"]["byRoute"]
    assert final[SUBMIT] == REQUESTS, "one Dfns request per workflow"
    served = [
        w for w in workers if any(e.get("event") == "signature.submitted" for e in w.events())
    ]
    assert len(served) >= 2, "the submits were shared by several worker processes"
