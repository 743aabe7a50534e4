"""Run the webhook receiver on uvicorn: in the foreground (``signgate webhook``) or inside an
existing event loop (:class:`ReceiverServer`, for tests and benchmarks).

The Temporal client is connected on the first event, not at start-up: a receiver started
before Temporal answers 503 until it can connect, and Dfns delivers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any

import uvicorn

from signgate.logs import get_logger
from signgate.serving import uvicorn_config
from signgate.settings import Settings
from signgate.temporal_client import connect_temporal
from signgate.webhook.app import DEFAULT_PATH, WebhookReceiver, create_app
from signgate.webhook.routing import ClientSource, TemporalRouter
from signgate.webhook.secrets import SecretStore

__all__ = [
    "ReceiverServer",
    "build_receiver",
    "run_receiver",
    "secret_store",
]

_log = get_logger("signgate.webhook.server")


def secret_store(settings: Settings) -> SecretStore:
    """The secrets the receiver accepts: the secret file's and the ones set directly."""
    return SecretStore(
        settings.webhook_secret_file,
        extra=(settings.webhook_secret, settings.webhook_secondary_secret),
    )


def build_receiver(
    settings: Settings, client: ClientSource, *, store: SecretStore | None = None
) -> WebhookReceiver:
    """A :class:`WebhookReceiver` configured from ``settings`` routing through ``client``."""
    router = TemporalRouter(
        client,
        cache_size=settings.webhook_route_cache_size,
        lookup_timeout=settings.webhook_lookup_timeout_seconds,
        hold_approvals=settings.webhook_approval_hold_seconds,
    )
    return WebhookReceiver(
        store if store is not None else secret_store(settings),
        router,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        max_body_bytes=settings.webhook_max_body_bytes,
    )


def _config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    # log_config=None keeps signgate.logs in charge; every event is logged by the receiver,
    # so uvicorn's access log would only repeat it.
    return uvicorn_config(app, host, port, log_level.lower(), lifespan="off", access_log=False)


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[str], None],
        *,
        on_stopped: Callable[[], Awaitable[None]] | None = None,
        handle_signals: bool = True,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._handle_signals = handle_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Inside someone else's event loop (tests, benchmarks) SIGINT/SIGTERM are theirs.
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in str(host) else str(host)
            self._on_started(f"http://{shown}:{port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # Requests in flight have finished: send what the receiver still holds back.
        if self._on_stopped is not None:
            await self._on_stopped()


def run_receiver(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    store: SecretStore | None = None,
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM; ``on_started`` gets the webhook URL."""
    store = store if store is not None else secret_store(settings)
    receiver = build_receiver(settings, connect_temporal, store=store)
    app = create_app(receiver)

    def started(base_url: str) -> None:
        url = base_url + DEFAULT_PATH
        _log.info("webhook.receiver_started", url=url, accepted=len(store.secrets()))
        if on_started is not None:
            on_started(url)

    bind_host = host if host is not None else settings.webhook_host
    bind_port = port if port is not None else settings.webhook_port
    server = _Server(
        _config(app, bind_host, bind_port, settings.log_level), started, on_stopped=receiver.aclose
    )
    server.run()


class ReceiverServer:
    """The receiver on uvicorn inside the running event loop (``port=0``: any free port).

    ``async with ReceiverServer(receiver) as server``: ``server.url`` is the webhook URL.
    :meth:`stop` and :meth:`start` again on the same port simulate a receiver restart.
    """

    def __init__(
        self,
        receiver: WebhookReceiver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.receiver = receiver
        self.app = create_app(receiver)
        self._host = host
        self._port = port
        self._log_level = log_level
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    @property
    def url(self) -> str:
        """The webhook endpoint."""
        return self.base_url + DEFAULT_PATH

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> str:
        """Start serving (on the port used before, after a :meth:`stop`); return the URL."""
        started = asyncio.Event()

        def on_started(base_url: str) -> None:
            self.base_url = base_url
            self._port = int(base_url.rsplit(":", 1)[1])
            started.set()

        config = _config(self.app, self._host, self._port, self._log_level)
        server = _Server(config, on_started, on_stopped=self.receiver.aclose, handle_signals=False)
        self._server = server
        self._task = asyncio.create_task(server.serve())
        waiter = asyncio.create_task(started.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            await self._task
            raise RuntimeError(f"the webhook receiver did not start on {self._host}:{self._port}")
        return self.url

    async def stop(self) -> None:
        """Stop serving; requests in flight finish first, then what the router holds back is
        sent (within two seconds)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> ReceiverServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
