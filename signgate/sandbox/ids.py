"""Dfns-shaped identifiers: ``<prefix>-<5>-<5>-<16>`` over ``[a-z0-9]``."""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_LENGTH = 26  # 5 + 5 + 16 characters
# Random bytes map to characters in C (bytes.translate): byte b -> _ALPHABET[b % 36]. Bytes
# from 252 up are dropped, so every character stays uniform (252 = 7 * 36).
_ACCEPTED = 252
_TABLE = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))
_REJECTED = bytes(range(_ACCEPTED, 256))


def new_id(prefix: str) -> str:
    """A fresh id such as ``sig-1a2b3-c4d5e-f6g7h8i9j0k1l2m3``."""
    text = b""
    while len(text) < _LENGTH:
        text += secrets.token_bytes(32).translate(_TABLE, _REJECTED)
    chars = text[:_LENGTH].decode("ascii")
    return f"{prefix}-{chars[:5]}-{chars[5:10]}-{chars[10:]}"
