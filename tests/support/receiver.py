"""A callback receiver on 127.0.0.1 that records what it gets (a background thread).

``fail_first`` answers the first N deliveries with HTTP 500, to prove the engine retries
until it gets a 2xx.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class CallbackReceiver:
    """Records POSTs; ``url(path)`` is where to send them."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.received: list[Received] = []
        self._fail_left = fail_first
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    status = 500 if receiver._fail_left > 0 else 200
                    receiver._fail_left = max(0, receiver._fail_left - 1)
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/callback") -> str:
        """The URL of ``path`` on this receiver."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def accepted(self) -> list[Received]:
        """Requests answered with 2xx."""
        with self._lock:
            return [r for r in self.received if r.status < 300]

    def __enter__(self) -> CallbackReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
