"""secp256k1 ECDSA, Keccak-256 and DER in signgate.crypto.

The judge is twofold: published vectors, and ``tests/unit/crypto/reference.py``, a
pure-Python secp256k1 that shares no code with libsecp256k1 (which signgate.crypto uses).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from signgate.crypto import (
    SECP256K1_N,
    EcdsaSignature,
    ecdsa_der_decode,
    ecdsa_der_encode,
    ecdsa_recover,
    ecdsa_sign,
    ecdsa_verify,
    keccak256,
    secp256k1_normalize_public_key,
    secp256k1_public_key,
)
from tests.unit.crypto import reference as ref

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "vectors"
N = SECP256K1_N
G_COMPRESSED = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
G_UNCOMPRESSED = bytes.fromhex(
    "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
)


def _rfc6979_vectors() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTORS / "rfc6979-secp256k1.json").read_text())
    return data


def _random_cases(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        secret = rng.randrange(1, N).to_bytes(32, "big")
        cases.append((secret, rng.randbytes(32)))
    return cases


def _scalar(value: int) -> bytes:
    return value.to_bytes(32, "big")


# --------------------------------------------------------------------------- keccak


def test_keccak256_is_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )
    assert keccak256(b"") != hashlib.sha3_256(b"").digest()


def test_keccak256_rejects_text() -> None:
    with pytest.raises(TypeError):
        keccak256("abc")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- keys


def test_public_key_of_one_is_the_generator() -> None:
    assert secp256k1_public_key(_scalar(1)) == G_COMPRESSED
    assert secp256k1_public_key(_scalar(1), compressed=False) == G_UNCOMPRESSED
    # (n - 1) * G = -G: same x, odd y.
    assert secp256k1_public_key(_scalar(N - 1)) == b"\x03" + G_COMPRESSED[1:]


@pytest.mark.parametrize(("secret", "_digest"), _random_cases(24, seed=1))
def test_public_key_matches_the_reference(secret: bytes, _digest: bytes) -> None:
    assert secp256k1_public_key(secret) == ref.secp256k1_public_key(secret)
    uncompressed = ref.secp256k1_public_key(secret, compressed=False)
    assert secp256k1_public_key(secret, compressed=False) == uncompressed


def test_normalize_public_key_round_trips() -> None:
    secret = _scalar(0xC0FFEE)
    compressed = secp256k1_public_key(secret)
    uncompressed = secp256k1_public_key(secret, compressed=False)
    assert secp256k1_normalize_public_key(uncompressed) == compressed
    assert secp256k1_normalize_public_key(compressed, compressed=False) == uncompressed
    with pytest.raises(ValueError, match="not a valid secp256k1 public key"):
        secp256k1_normalize_public_key(b"\x02" + b"\x00" * 31 + b"\x05")  # x=5 is off-curve
    with pytest.raises(ValueError, match=r"33 .* or 65"):
        secp256k1_normalize_public_key(compressed[1:])


@pytest.mark.parametrize("bad", [_scalar(0), _scalar(N), b"\xff" * 32])
def test_secret_out_of_range_is_rejected(bad: bytes) -> None:
    with pytest.raises(ValueError, match=r"\[1, n-1\]"):
        secp256k1_public_key(bad)
    with pytest.raises(ValueError, match=r"\[1, n-1\]"):
        ecdsa_sign(bad, b"\x00" * 32)


def test_bad_lengths_and_types_are_rejected() -> None:
    with pytest.raises(ValueError, match="secret32 must be 32 bytes, got 31"):
        ecdsa_sign(b"\x01" * 31, b"\x00" * 32)
    with pytest.raises(ValueError, match="digest32 must be 32 bytes, got 33"):
        ecdsa_sign(_scalar(1), b"\x00" * 33)
    with pytest.raises(TypeError, match="secret32 must be bytes"):
        ecdsa_sign("01" * 32, b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="digest32"):
        ecdsa_verify(G_COMPRESSED, b"\x00" * 31, 1, 1)
    with pytest.raises(ValueError, match="public_key"):
        ecdsa_verify(G_COMPRESSED[:32], b"\x00" * 32, 1, 1)
    with pytest.raises(TypeError, match="r must be an int"):
        ecdsa_verify(G_COMPRESSED, b"\x00" * 32, b"\x01", 1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- signing


@pytest.mark.parametrize("vector", _rfc6979_vectors(), ids=lambda v: str(v["message"])[:20])
def test_rfc6979_published_vectors(vector: dict[str, Any]) -> None:
    secret = bytes.fromhex(vector["secretKey"])
    digest = hashlib.sha256(vector["message"].encode()).digest()
    # The nonce is internal to libsecp256k1: the reference shows the vector's nonce is the
    # RFC 6979 one, and the library's signature is the one that nonce gives.
    nonce = next(ref.rfc6979_nonces(int.from_bytes(secret, "big"), digest))
    assert nonce == int(vector["nonce"], 16)
    sig = ecdsa_sign(secret, digest)
    assert sig.der.hex() == vector["der"]
    assert (sig.r, sig.s, sig.recid) == ref.ecdsa_sign(secret, digest)
    assert ecdsa_verify(secp256k1_public_key(secret), digest, sig.r, sig.s)


def test_satoshi_vector_recid_and_low_s_normalisation() -> None:
    # The raw s for this vector is above n/2; the published (and returned) s is n - s.
    digest = hashlib.sha256(b"Satoshi Nakamoto").digest()
    sig = ecdsa_sign(_scalar(1), digest)
    k = 0x8F8A276C19F4149656B280621E358CCE24F5F52542772691EE69063B74F15D15
    raw_s = pow(k, -1, N) * (int.from_bytes(digest, "big") + sig.r) % N
    assert raw_s > N // 2
    assert sig.s == N - raw_s
    assert (sig.r, sig.s, sig.recid) == ref.ecdsa_sign(_scalar(1), digest)
    # The recovery id says which R signed: recovering with it gives the key back.
    assert ref.ecdsa_recover(digest, sig.r, sig.s, sig.recid) == G_COMPRESSED


@pytest.mark.parametrize(("secret", "digest"), _random_cases(48, seed=2))
def test_signatures_match_the_reference_and_verify(secret: bytes, digest: bytes) -> None:
    sig = ecdsa_sign(secret, digest)
    # Both use RFC 6979 nonces and low-s, so the values must agree exactly.
    assert (sig.r, sig.s, sig.recid) == ref.ecdsa_sign(secret, digest)
    assert sig.s <= N // 2
    public = secp256k1_public_key(secret)
    assert ref.ecdsa_recover(digest, sig.r, sig.s, sig.recid) == public
    assert ref.ecdsa_verify(public, digest, sig.r, sig.s)
    assert ecdsa_verify(public, digest, sig.r, sig.s)
    assert ecdsa_verify(secp256k1_public_key(secret, compressed=False), digest, sig.r, sig.s)
    assert ecdsa_recover(digest, sig.r, sig.s, sig.recid) == public


@pytest.mark.parametrize(
    "digest",
    [b"\x00" * 32, b"\xff" * 32, _scalar(N), _scalar(N - 1), _scalar(N + 5)],
    ids=["zero", "all-ones", "n", "n-1", "n+5"],
)
def test_edge_digests_match_the_reference(digest: bytes) -> None:
    secret = _scalar(0x1234567890ABCDEF)
    sig = ecdsa_sign(secret, digest)
    assert (sig.r, sig.s, sig.recid) == ref.ecdsa_sign(secret, digest)
    assert ecdsa_verify(secp256k1_public_key(secret), digest, sig.r, sig.s)


def test_signing_is_deterministic() -> None:
    secret, digest = _scalar(77), hashlib.sha256(b"same input").digest()
    assert ecdsa_sign(secret, digest) == ecdsa_sign(secret, digest)
    assert ecdsa_sign(secret, digest) != ecdsa_sign(secret, hashlib.sha256(b"other").digest())


def test_low_s_is_always_returned() -> None:
    secret = _scalar(31337)
    flipped = 0
    for i in range(40):
        digest = hashlib.sha256(i.to_bytes(4, "big")).digest()
        sig = ecdsa_sign(secret, digest)
        assert 0 < sig.s <= N // 2
        # If the raw s were kept, recovering with the other parity must give the same key.
        other = ecdsa_recover(
            digest, sig.r, N - sig.s, sig.recid ^ 1, allow_high_s=True, compressed=True
        )
        assert other == secp256k1_public_key(secret)
        flipped += sig.recid
    assert 0 < flipped < 40  # both parities occur, so the recid flip is exercised


# --------------------------------------------------------------------------- verification


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, bytes, EcdsaSignature]:
    secret = _scalar(0xDEADBEEF)
    digest = hashlib.sha256(b"verification fixture").digest()
    return secp256k1_public_key(secret), digest, ecdsa_sign(secret, digest)


def test_tampered_s_fails(signed: tuple[bytes, bytes, EcdsaSignature]) -> None:
    public, digest, sig = signed
    assert not ecdsa_verify(public, digest, sig.r, sig.s + 1)
    assert not ecdsa_verify(public, digest, sig.r + 1, sig.s)
    assert not ref.ecdsa_verify(public, digest, sig.r, sig.s + 1)


def test_wrong_digest_and_wrong_key_fail(signed: tuple[bytes, bytes, EcdsaSignature]) -> None:
    public, digest, sig = signed
    other_digest = bytes([digest[0] ^ 1]) + digest[1:]
    assert not ecdsa_verify(public, other_digest, sig.r, sig.s)
    assert not ecdsa_verify(secp256k1_public_key(_scalar(2)), digest, sig.r, sig.s)


def test_high_s_policy(signed: tuple[bytes, bytes, EcdsaSignature]) -> None:
    public, digest, sig = signed
    high_s = N - sig.s
    assert not ecdsa_verify(public, digest, sig.r, high_s)
    assert ecdsa_verify(public, digest, sig.r, high_s, allow_high_s=True)
    # The reference takes the same stance.
    assert not ref.ecdsa_verify(public, digest, sig.r, high_s)
    assert ref.ecdsa_verify(public, digest, sig.r, high_s, allow_high_s=True)
    with pytest.raises(ValueError, match="high-s"):
        ecdsa_recover(digest, sig.r, high_s, sig.recid ^ 1)


@pytest.mark.parametrize(("r_offset", "s_value"), [(0, 0), (0, N), (None, 1)])
def test_out_of_range_r_s_fail(
    signed: tuple[bytes, bytes, EcdsaSignature], r_offset: int | None, s_value: int
) -> None:
    public, digest, sig = signed
    r = 0 if r_offset is None else sig.r + r_offset
    assert not ecdsa_verify(public, digest, r, s_value)


def test_invalid_public_key_encodings_fail(signed: tuple[bytes, bytes, EcdsaSignature]) -> None:
    public, digest, sig = signed
    off_curve = b"\x02" + (5).to_bytes(32, "big")
    assert not ecdsa_verify(off_curve, digest, sig.r, sig.s)
    assert not ecdsa_verify(b"\x05" + public[1:], digest, sig.r, sig.s)
    uncompressed = secp256k1_normalize_public_key(public, compressed=False)
    bent = uncompressed[:-1] + bytes([uncompressed[-1] ^ 1])
    assert not ecdsa_verify(bent, digest, sig.r, sig.s)
    hybrid = b"\x06" + uncompressed[1:]
    assert not ecdsa_verify(hybrid, digest, sig.r, sig.s)


def test_verify_takes_the_doubling_path() -> None:
    # With Q = G and digest = r, u1*G and u2*Q are the same point, so the final
    # addition in verification is a doubling.
    k = 0xA5A5A5A5
    r = int.from_bytes(secp256k1_public_key(_scalar(k))[1:], "big") % N
    digest = _scalar(r)
    s = pow(k, -1, N) * (r + r) % N
    if s > N // 2:
        s = N - s
    assert ecdsa_verify(G_COMPRESSED, digest, r, s)
    assert ref.ecdsa_verify(G_COMPRESSED, digest, r, s)


def test_verify_rejects_a_sum_at_infinity() -> None:
    # With Q = G and digest = -r, u1*G + u2*Q is the point at infinity.
    r, s = 0x1234, 0x5678
    digest = _scalar(N - r)
    assert not ecdsa_verify(G_COMPRESSED, digest, r, s)
    assert not ref.ecdsa_verify(G_COMPRESSED, digest, r, s)


# --------------------------------------------------------------------------- recovery


def test_wrong_recid_recovers_another_key(signed: tuple[bytes, bytes, EcdsaSignature]) -> None:
    public, digest, sig = signed
    assert ecdsa_recover(digest, sig.r, sig.s, sig.recid) == public
    assert ecdsa_recover(digest, sig.r, sig.s, sig.recid ^ 1) != public
    # recid 2/3 ask for R.x = r + n, which is not a field element here.
    with pytest.raises(ValueError, match="no curve point"):
        ecdsa_recover(digest, sig.r, sig.s, sig.recid | 2)


def test_recover_uncompressed_matches_the_reference(
    signed: tuple[bytes, bytes, EcdsaSignature],
) -> None:
    public, digest, sig = signed
    expected = ref.secp256k1_normalize_public_key(public, compressed=False)
    assert ecdsa_recover(digest, sig.r, sig.s, sig.recid, compressed=False) == expected


@pytest.mark.parametrize(
    ("r", "s", "recid", "message"),
    [(0, 1, 0, r"\[1, n-1\]"), (1, N, 0, r"\[1, n-1\]"), (1, 1, 4, "recid")],
)
def test_recover_rejects_bad_inputs(r: int, s: int, recid: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ecdsa_recover(b"\x01" * 32, r, s, recid)


# --------------------------------------------------------------------------- signature values


def test_signature_dataclass_validates() -> None:
    with pytest.raises(ValueError, match="r must be"):
        EcdsaSignature(0, 1, 0)
    with pytest.raises(ValueError, match="s must be"):
        EcdsaSignature(1, N, 0)
    with pytest.raises(ValueError, match="recid"):
        EcdsaSignature(1, 1, 7)
    with pytest.raises(TypeError):
        EcdsaSignature(1, True, 0)
    sig = EcdsaSignature(1, 2, 1)
    assert sig.compact == _scalar(1) + _scalar(2)
    with pytest.raises(AttributeError):
        sig.r = 5  # type: ignore[misc]


@pytest.mark.parametrize(("secret", "digest"), _random_cases(8, seed=3))
def test_der_follows_x690(secret: bytes, digest: bytes) -> None:
    sig = ecdsa_sign(secret, digest)

    def integer(value: int) -> bytes:
        # Minimal big-endian two's complement: one leading zero byte when the top bit is set.
        body = value.to_bytes((value.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(body)]) + body

    body = integer(sig.r) + integer(sig.s)
    expected = b"\x30" + bytes([len(body)]) + body
    assert sig.der == expected
    assert ecdsa_der_decode(expected) == (sig.r, sig.s)


def test_der_encodes_high_bit_with_a_zero_pad() -> None:
    der = ecdsa_der_encode(0x80, 0x7F)
    assert der.hex() == "3007020200800201" + "7f"
    assert ecdsa_der_decode(der) == (0x80, 0x7F)


@pytest.mark.parametrize(
    "der_hex",
    [
        "",  # empty
        "314402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd41"
        "0220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d09",  # bad magic
        "304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd41"
        "0220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901",  # trailing
        "30450221004e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd41"
        "0220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d09",  # r padded
        "304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd41"
        "0320181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d09",  # 2nd tag
        "3006020100020101",  # r == 0
        "30440220fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        "0220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d09",  # r == n
        "3006020181020101",  # negative r
    ],
)
def test_der_decode_is_strict(der_hex: str) -> None:
    with pytest.raises(ValueError):
        ecdsa_der_decode(bytes.fromhex(der_hex))


def test_der_decode_accepts_a_blockchain_signature() -> None:
    der = bytes.fromhex(
        "304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd41"
        "0220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d09"
    )
    r, s = ecdsa_der_decode(der)
    assert r == 0x4E45E16932B8AF514961A1D3A1A25FDF3F4F7732E9D624C6C61548AB5FB8CD41
    assert ecdsa_der_encode(r, s) == der
