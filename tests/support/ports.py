"""Free loopback ports for servers a test starts itself."""

from __future__ import annotations

from signgate import ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range
    (:func:`signgate.ports.free_port`, the one ``signgate dev`` uses).

    Also the way to get a port nothing listens on, for "connection refused" cases.
    """
    return ports.free_port("127.0.0.1")
