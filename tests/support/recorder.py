"""An HTTP endpoint on 127.0.0.1 that records every request: the one test-side receiver.

Webhook deliveries from the sandbox and the engine's downstream callbacks both land here.
It runs in a background thread, so sync and async tests use it alike (``with`` or
``async with``), and so a request the test holds does not block the test's event loop.

Each path answers 200 unless scripted: ``respond(path, 500, 500)`` answers the next two
requests to ``path`` with 500 (to prove a sender retries until it gets a 2xx), and
``hold(path)`` makes requests to ``path`` wait, after being recorded, until the returned
event is set (to prove a slow receiver does not hold others back, or to time a sender out).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from tests.support.eventually import eventually


class _Server(ThreadingHTTPServer):
    # A sender may open dozens of connections at once; the default backlog of 5 would
    # drop the rest, and a dropped delivery is retried only a schedule step later.
    request_queue_size = 256


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the status it was answered with."""

    method: str
    path: str
    headers: httpx.Headers
    """Case-insensitive, as HTTP header names are."""
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class HttpRecorder:
    """Records requests to any path; ``url(path)`` is where to send them."""

    def __init__(self) -> None:
        self._received: list[Received] = []
        self._scripts: dict[str, list[int]] = {}
        self._holds: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                with recorder._lock:
                    script = recorder._scripts.get(path)
                    status = script.pop(0) if script else 200
                    recorder._received.append(
                        Received(
                            self.command, path, httpx.Headers(self.headers.items()), body, status
                        )
                    )
                    hold = recorder._holds.get(path)
                if hold is not None:
                    hold.wait()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_GET = _record

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/callback") -> str:
        """The URL of ``path`` on this recorder."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def respond(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses, then 200."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(statuses)

    def hold(self, path: str) -> threading.Event:
        """Requests to ``path`` wait (after being recorded) until the returned event is set."""
        with self._lock:
            return self._holds.setdefault(path, threading.Event())

    @property
    def received(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def at(self, path: str) -> list[Received]:
        """The requests to ``path``."""
        return [request for request in self.received if request.path == path]

    def accepted(self) -> list[Received]:
        """The requests answered with 2xx."""
        return [request for request in self.received if request.status < 300]

    async def wait_for(self, count: int, path: str | None = None) -> list[Received]:
        """Wait until ``count`` requests (to ``path``, if given) have arrived; those requests."""

        def arrived() -> list[Received] | None:
            requests = self.at(path) if path else self.received
            return requests if len(requests) >= count else None

        where = f" to {path}" if path else ""
        return await eventually(arrived, what=f"{count} requests{where}")

    def start(self) -> HttpRecorder:
        self._thread.start()
        return self

    def close(self) -> None:
        """Release held requests and stop serving."""
        with self._lock:
            holds = list(self._holds.values())
        for hold in holds:
            hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> HttpRecorder:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
