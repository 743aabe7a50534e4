"""The engine's worker in the test's own process: the one body of every ``worker`` fixture.

``tests/conftest.py`` wraps :func:`run_engine_worker` as the ``worker`` fixture; a test that
needs the worker as a process it can kill uses :mod:`tests.support.worker_process` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from activities.downstream import SqliteLedger
from signgate.activity_api import Lane
from tests.support.sandbox import EngineSandbox
from worker import (
    LogContextInterceptor,
    engine_activities,
    engine_nexus_handlers,
    engine_workers,
)

CALLBACK_SECRET = "test-callback-secret-0123456789"
"""The ``default`` callback secret of the in-process worker (a test value, not a secret)."""


@dataclass
class RunningWorker:
    """The in-process engine worker: its client, task queue and ``default`` ledger."""

    client: Client
    task_queue: str
    ledger: SqliteLedger


@asynccontextmanager
async def run_engine_worker(
    client: Client,
    sandbox: EngineSandbox,
    task_queue: str,
    directory: Path,
    *,
    rates: Mapping[Lane, float] | None = None,
    request_hooks: Sequence[Callable[[httpx.Request], Any]] = (),
) -> AsyncIterator[RunningWorker]:
    """The engine's workflows and real activities on ``task_queue``, faults cleared first.

    Callbacks are signed with :data:`CALLBACK_SECRET`; the ``default`` ledger is a SQLite
    file in ``directory``. ``rates`` are the Dfns lanes' budgets (none: unbudgeted);
    ``request_hooks`` see every Dfns request the activities make (e.g. the sandbox's clock
    sync on the time-skipping server).
    """
    await sandbox.set_faults(
        rate429=0.0, errorRate=0.0, dropAfterCommit=0, corruptSignatures=0, failSignatures=0
    )
    ledger = SqliteLedger(directory / "ledger.sqlite")
    async with (
        httpx.AsyncClient(
            base_url=sandbox.base_url, timeout=10, event_hooks={"request": list(request_hooks)}
        ) as http,
        httpx.AsyncClient(timeout=5) as callbacks,
    ):
        activities = engine_activities(
            sandbox.dfns_client("engine", http),
            callbacks,
            callback_secrets={"default": SecretStr(CALLBACK_SECRET)},
            ledgers={"default": ledger},
        )
        async with engine_workers(
            client,
            task_queue=task_queue,
            nexus_service_handlers=engine_nexus_handlers(),
            activities=activities,
            rates=rates,
            interceptors=[LogContextInterceptor()],
        ):
            yield RunningWorker(client, task_queue, ledger)
