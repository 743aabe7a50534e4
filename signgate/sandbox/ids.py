"""Dfns-shaped identifiers: ``<prefix>-<5>-<5>-<16>`` over ``[a-z0-9]``."""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _chunk(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """A fresh id such as ``sig-1a2b3-c4d5e-f6g7h8i9j0k1l2m3``."""
    return f"{prefix}-{_chunk(5)}-{_chunk(5)}-{_chunk(16)}"
