"""Pick a free TCP port for a server that is started a moment later.

The usual trick, binding port 0 and closing the socket, returns a port from the kernel's
*ephemeral* range: the range every outgoing connection on the machine takes its local port
from. On a busy machine one of those connections can take the port between the pick and the
server's bind, and the server fails with "address already in use". :func:`free_port` picks
below that range instead, where no outgoing connection lands, and checks that nothing is
bound there; only when the range leaves no room below it does it fall back to port 0.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Final

__all__ = ["ephemeral_range", "free_port"]

LOWEST: Final = 10_000
"""The lowest port picked: below it live many well-known and registered services."""
_MIN_ROOM: Final = 1_000
_ATTEMPTS: Final = 200
_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_IANA_EPHEMERAL: Final = (49_152, 65_535)
"""The ephemeral range where the kernel does not say (macOS and the BSDs use it)."""

_random = random.SystemRandom()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, lowest and highest (Linux's setting, or IANA's)."""
    try:
        low, high = (int(part) for part in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return _IANA_EPHEMERAL
    return low, high


def free_port(host: str = "127.0.0.1", taken: Collection[int] = ()) -> int:
    """A TCP port on ``host`` that nothing was bound to a moment ago and is not in ``taken``.

    Chosen at random between :data:`LOWEST` and the start of :func:`ephemeral_range`, so an
    outgoing connection cannot take it before the server binds it.
    """
    low, _ = ephemeral_range()
    if low - LOWEST >= _MIN_ROOM:
        for _ in range(_ATTEMPTS):
            port = _random.randrange(LOWEST, low)
            if port not in taken and _bindable(host, port):
                return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            chosen: int = sock.getsockname()[1]
        if chosen not in taken:
            return chosen


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
