"""End-to-end fixtures: the session's Temporal dev server, a sandbox per module, a worker.

Everything is real: the dev server binary, the sandbox over HTTP on 127.0.0.1, the engine's
activities with the real Dfns client, and (where a test needs to kill it) the worker as a
separate process running ``worker.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sandbox import EngineSandbox


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
