"""The sandbox tests' two common fixtures: one sandbox per module, one client per test.

Scoped to ``tests/sandbox`` only. A module that needs a differently configured sandbox
declares its own ``server`` fixture, which takes precedence over this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signgate.sandbox.server import SandboxServer
from tests.sandbox.helpers import Dfns, client_for, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox on 127.0.0.1 with a fresh SQLite file, shared by the module's tests."""
    yield from serve(tmp_path_factory)


@pytest.fixture
def dfns(server: SandboxServer) -> Iterator[Dfns]:
    """A client for ``server``; the sandbox is reset (``/_local/reset``) after the test."""
    yield from client_for(server)
