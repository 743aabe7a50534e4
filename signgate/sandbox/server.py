"""Run the sandbox on uvicorn: in the foreground (the CLI) or in a background thread (tests).

The server hands the app a way to abort a client's connection, which the "drop after
commit" fault uses so the client sees the connection close with no response at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import Scope

from signgate.logs import get_logger
from signgate.sandbox.app import Sandbox, build_sandbox, create_app
from signgate.sandbox.config import SandboxSettings
from signgate.serving import uvicorn_config

_log = get_logger("signgate.sandbox.server")


class _Server(uvicorn.Server):
    """uvicorn's server, reporting its bound address once listening."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which would kill the
        # process before the database is closed; a signal is a normal stop here (exit 0).
        with super().capture_signals():
            try:
                yield
            finally:
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_started(f"http://{_url_host(str(host))}:{port}")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _aborter(server: uvicorn.Server) -> Callable[[Scope], bool]:
    def abort(scope: Scope) -> bool:
        client = scope.get("client")
        if client is None:
            return False
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == tuple(client):
                transport: Any = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
                    return True
        return False

    return abort


def _config(app: Any, host: str, port: int, log_level: str | int | None) -> uvicorn.Config:
    # log_config=None keeps the process's logging (signgate.logs) in charge; uvicorn's own
    # loggers follow its level unless told otherwise, so ``--log-level WARNING`` also
    # silences the access log (a line per request, about 0.1 ms of CPU each).
    level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
    return uvicorn_config(app, host, port, level, lifespan="on")


def run_sandbox(
    settings: SandboxSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    log_level: str | None = None,
    on_started: Callable[[Sandbox, str], None] | None = None,
) -> None:
    """Serve the sandbox in the foreground until interrupted (Ctrl-C / SIGTERM).

    ``log_level`` is uvicorn's (``"info"`` logs every request); by default it follows the
    process's logging level.
    """
    sandbox = build_sandbox(settings)
    app = create_app(settings, sandbox=sandbox)

    def started(base_url: str) -> None:
        sandbox.base_url = base_url
        sandbox.write_credentials()
        _log.info("sandbox.started", base_url=base_url, db=str(settings.db_path))
        if on_started is not None:
            on_started(sandbox, base_url)

    server = _Server(_config(app, host, port, log_level), started)
    sandbox.connection_aborter = _aborter(server)
    try:
        server.run()
    finally:
        sandbox.close()


class SandboxServer:
    """The sandbox on uvicorn in a background thread, for tests and demos.

    Use as a context manager; ``base_url`` and ``sandbox`` are available once started.
    ``port=0`` picks a free port.
    """

    def __init__(
        self,
        settings: SandboxSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.settings = settings
        self.sandbox = build_sandbox(settings)
        self._ready = threading.Event()
        self.base_url = ""
        app = create_app(settings, sandbox=self.sandbox)
        self._server = _Server(_config(app, host, port, log_level), self._started)
        self.sandbox.connection_aborter = _aborter(self._server)
        self._thread = threading.Thread(target=self._run, name="signgate-sandbox", daemon=True)
        self._error: BaseException | None = None

    def _started(self, base_url: str) -> None:
        self.base_url = base_url
        self.sandbox.base_url = base_url
        self.sandbox.write_credentials()
        self._ready.set()

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; returns the base URL."""
        self._thread.start()
        if not self._ready.wait(timeout) or not self.base_url:
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {self._error!r}")
        return self.base_url

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving, wait for the background tasks to end, close the database."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sandbox.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
