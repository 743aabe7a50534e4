"""A fault run: many requests through 5xx, 429 and dropped answers while the worker is killed.

The sandbox answers a share of every Dfns call with 504 or 429 and drops the answers to
some writes after committing them; the worker (a real ``worker.py`` process) is killed
with SIGKILL twice while requests are submitted and waiting, and restarted. When the faults
stop, every request must end with what Dfns holds for it (or what its caller decided), and
Dfns must hold exactly one request per business key.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from signgate.contracts import PollingPolicy, SignatureOutcome, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.signature import SignatureWorkflow

# Eight requests through faults and two worker kills: minutes on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]
POLLING = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=3))
# What Dfns's record must say for each outcome the engine reports.
DFNS_STATUS = {"signed": "Signed", "rejected": "Rejected", "expired": "Rejected"}


async def _approval_id(handle: Handle) -> str:
    async def approval_id() -> str | None:
        return (await handle.query(SignatureWorkflow.state)).approval_id

    return await eventually(approval_id, what=f"{handle.id} knows its approval", within=300)


async def test_faults_and_worker_kills_never_decide_an_outcome(
    client: Client, dev_server: DevServer, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    env = engine_env(dev_server, sandbox, task_queue, tmp_path)
    faults = {"errorRate": 0.2, "errorStatus": 504, "rate429": 0.05, "retryAfterSeconds": 1}
    plans = ["auto"] * 2 + ["approve"] * 3 + ["deny"] + ["deadline"] * 2
    await sandbox.set_faults(**faults, dropAfterCommit=2)
    process = WorkerProcess(env).start()
    handles: dict[str, Handle] = {}
    try:
        for index, plan in enumerate(plans):
            key = "evm-auto" if plan == "auto" else "evm-gated"
            deadline = datetime.now(UTC) + timedelta(seconds=45) if plan == "deadline" else None
            handles[f"{plan}-{index}"] = await client.start_workflow(
                SignatureWorkflow.run,
                SignatureWorkflowInput(
                    target=sandbox.target("key", key),
                    request=HashRequest(hash=uuid.uuid4().hex * 2),
                    polling=POLLING,
                    deadline=deadline,
                ),
                id=f"faults-{task_queue}-{plan}-{index}",
                task_queue=task_queue,
            )
        # Killed while submits are in flight...
        await eventually(
            lambda: any('"signature.submitted"' in line for line in process.lines),
            what="a submit went through",
            within=300,
        )
        process.kill()
        process = WorkerProcess(env).start()
        approvals = {
            name: await _approval_id(handle)
            for name, handle in handles.items()
            if name.startswith(("approve", "deny"))
        }
        # Decisions are people's, not the engine's: they go in while the faults pause.
        await sandbox.set_faults(errorRate=0.0, rate429=0.0)
        for name, approval_id in approvals.items():
            if name.startswith("approve"):
                await sandbox.decide(approval_id, "alice", "bob")
            else:
                await sandbox.decide(approval_id, "bob", value="Denied")
        await sandbox.set_faults(**faults)
        # ...and again while the engine reads what the approvers decided.
        await eventually(
            lambda: any('"status": "Signed"' in line for line in process.lines),
            what="an approved request was read as Signed",
            within=300,
        )
        process.kill()
        process = WorkerProcess(env).start()
        await sandbox.set_faults(errorRate=0.0, rate429=0.0, dropAfterCommit=0)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles.values())), timeout=600
        )
    finally:
        process.kill()

    expected = {"auto": "signed", "approve": "signed", "deny": "rejected", "deadline": "expired"}
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        dfns = sandbox.dfns_client("engine", http)
        for name, outcome in zip(handles, outcomes, strict=True):
            plan = name.split("-")[0]
            assert outcome.kind == expected[plan], (name, outcome.kind, outcome.notes)
            key = "evm-auto" if plan == "auto" else "evm-gated"
            found = await sandbox.signatures_with_external_id(key, outcome.external_id)
            assert found == [outcome.signature_id], f"{name}: one Dfns request, not {found}"
            assert outcome.signature_id is not None
            record = await dfns.fetch(sandbox.target("key", key), outcome.signature_id)
            assert record.raw_status == DFNS_STATUS[outcome.kind], name
            if outcome.kind == "signed":
                assert outcome.verification is not None
                assert outcome.verification.status == "verified"
            if plan == "deadline":
                assert outcome.denial is not None and outcome.denial.denied, outcome.notes
