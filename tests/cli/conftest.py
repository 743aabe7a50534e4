"""One ``signgate dev`` stack (a real subprocess on free ports) for the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from tests.cli.support import STARTED, DevProcess, assert_gone


@pytest.fixture(autouse=True)
def stop_started_stacks() -> Iterator[None]:
    """Stop every stack a test started itself, even when the test failed before doing so."""
    before = len(STARTED)
    yield
    for started in STARTED[before:]:
        started.stop()
    del STARTED[before:]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """The dev stack every CLI test module shares; stopped (and checked gone) at the end."""
    running = DevProcess(tmp_path_factory.mktemp("cli") / "state").start()
    pids = list(running.info().processes.values())
    try:
        yield running
    finally:
        running.stop()
        assert_gone(pids)


@pytest.fixture
def state_dir(stack: DevProcess) -> Path:
    """The shared stack's state directory (pass it as --state-dir)."""
    return stack.state_dir


@pytest.fixture
async def temporal(stack: DevProcess) -> Client:
    """A client of the stack's Temporal server."""
    info = stack.info()
    return await Client.connect(
        info.temporal_address, namespace=info.namespace, data_converter=pydantic_data_converter
    )


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    """Whether any execution with this id exists."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
