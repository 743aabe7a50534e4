"""End-to-end fixtures: the session's Temporal dev server, a sandbox per module, a worker.

Everything is real: the dev server binary, the sandbox over HTTP on 127.0.0.1, the engine's
activities with the real Dfns client, and (where a test needs to kill it) the worker as a
separate process running ``worker.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.worker import Worker

from activities.downstream import SqliteLedger
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from worker import ENGINE_WORKFLOWS, LogContextInterceptor, engine_activities

CALLBACK_SECRET = "e2e-callback-secret-0123456789"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSandbox]:
    """A sandbox for the module; transitions are quick (1 s Executing, 1 s Confirmed)."""
    running = EngineSandbox(
        tmp_path_factory.mktemp("e2e-sandbox"),
        executing_delay_seconds=0.5,
        confirm_delay_seconds=1.0,
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(dev_server: DevServer) -> Client:
    """A client of the session's dev server."""
    return await dev_server.client()


@dataclass
class RunningWorker:
    client: Client
    task_queue: str
    ledger: SqliteLedger


@pytest.fixture
async def worker(
    client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    """The engine's workflows and real activities, in this process, on a fresh task queue."""
    await sandbox.set_faults(
        rate429=0.0, errorRate=0.0, dropAfterCommit=0, corruptSignatures=0, failSignatures=0
    )
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    async with (
        httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http,
        httpx.AsyncClient(timeout=5) as callbacks,
    ):
        activities = engine_activities(
            sandbox.dfns_client("engine", http),
            callbacks,
            callback_secrets={"default": SecretStr(CALLBACK_SECRET)},
            ledgers={"default": ledger},
        )
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=list(ENGINE_WORKFLOWS),
            activities=activities,
            interceptors=[LogContextInterceptor()],
        ):
            yield RunningWorker(client, task_queue, ledger)
