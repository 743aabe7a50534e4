"""The uvicorn settings the sandbox and the webhook receiver share."""

from __future__ import annotations

from typing import Any, Literal

import uvicorn

KEEP_ALIVE_SECONDS = 75
"""How long an idle connection stays open: longer than a client's pool keeps one (httpx: 5 s).

With equal timeouts (uvicorn's default is also 5 s) a client can send a request on a connection
the server is closing at that instant and get a ReadError and no response. A server that keeps
connections longer than its clients do never races them.
"""


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    log_level: str | int,
    *,
    lifespan: Literal["on", "off"],
    access_log: bool = True,
) -> uvicorn.Config:
    """A server config that leaves logging to :mod:`signgate.logs` (``log_config=None``)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        access_log=access_log,
        lifespan=lifespan,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
