"""Ed25519 in signgate.crypto: RFC 8032 vectors and interoperability with cryptography."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signgate.crypto import ed25519_public_key, ed25519_sign, ed25519_verify

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"


def _rfc8032() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTORS / "rfc8032-ed25519.json").read_text())
    return data


@pytest.mark.parametrize("vector", _rfc8032(), ids=lambda v: str(v["name"]))
def test_rfc8032_vectors(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(vector["secretKey"])
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    public = ed25519_public_key(secret)
    assert public.hex() == vector["publicKey"]
    assert ed25519_sign(secret, message) == signature
    assert ed25519_verify(public, message, signature)


def test_interoperates_with_cryptography_keys() -> None:
    key = Ed25519PrivateKey.generate()
    secret = key.private_bytes_raw()
    message = b"\x00" * 32  # a Dfns Hash request signs the 32 bytes as the message
    ours = ed25519_sign(secret, message)
    key.public_key().verify(ours, message)
    theirs = key.sign(b"arbitrary length message" * 10)
    assert ed25519_verify(ed25519_public_key(secret), b"arbitrary length message" * 10, theirs)
    public = Ed25519PublicKey.from_public_bytes(ed25519_public_key(secret))
    with pytest.raises(InvalidSignature):
        public.verify(ours, b"\x01" * 32)


def test_tampering_fails() -> None:
    vector = _rfc8032()[1]
    public = bytes.fromhex(vector["publicKey"])
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    assert not ed25519_verify(public, message + b"\x00", signature)
    assert not ed25519_verify(public, message, signature[:32] + bytes(32))
    assert not ed25519_verify(public, message, bytes([signature[0] ^ 1]) + signature[1:])
    other = ed25519_public_key(bytes.fromhex(_rfc8032()[0]["secretKey"]))
    assert not ed25519_verify(other, message, signature)
    # S >= L (the group order) must be refused, not reduced.
    s = int.from_bytes(signature[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    assert not ed25519_verify(public, message, signature[:32] + s.to_bytes(32, "little"))


def test_bad_lengths_raise() -> None:
    with pytest.raises(ValueError, match="secret32 must be 32 bytes"):
        ed25519_sign(b"\x00" * 64, b"")
    with pytest.raises(ValueError, match="secret32 must be 32 bytes"):
        ed25519_public_key(b"\x00" * 31)
    with pytest.raises(ValueError, match="public32 must be 32 bytes"):
        ed25519_verify(b"\x00" * 33, b"", b"\x00" * 64)
    with pytest.raises(ValueError, match="sig64 must be 64 bytes"):
        ed25519_verify(b"\x00" * 32, b"", b"\x00" * 63)
    with pytest.raises(TypeError, match="message must be bytes"):
        ed25519_sign(b"\x00" * 32, "text")  # type: ignore[arg-type]
