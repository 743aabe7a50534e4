"""signgate.ports: a free port below the ephemeral range, or the kernel's when none is left."""

from __future__ import annotations

import socket

import pytest

from signgate import ports


def test_a_port_is_picked_below_the_ephemeral_range_and_is_bindable() -> None:
    low, _ = ports.ephemeral_range()
    port = ports.free_port("127.0.0.1")
    assert ports.LOWEST <= port < low
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_taken_ports_and_bound_ones_are_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        bound = busy.getsockname()[1]
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (bound + 1, 60999))
        monkeypatch.setattr(ports, "LOWEST", bound - 1_001)
        picked = {ports.free_port("127.0.0.1", taken={bound - 1}) for _ in range(300)}
    assert bound not in picked
    assert bound - 1 not in picked


def test_with_no_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (ports.LOWEST + 10, 65535))
    port = ports.free_port("127.0.0.1")
    assert port > 0
