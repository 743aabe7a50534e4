"""An independent secp256k1 to judge ``signgate.crypto`` by: pure Python, no libsecp256k1.

This is the curve code signgate ran before it moved to libsecp256k1 (through coincurve):
Jacobian coordinates, a table of multiples of G built on first use, width-5 wNAF, RFC 6979
nonces, BIP-340 and the BIP-341 tweak. It shares no code with the library under test, so
a test that signs here and verifies there (or the other way round) compares two
implementations, not one with itself. ``bench/crypto.py`` also times it against the
library, through the same ``activities.verification.verify_signature``.

It is slow (milliseconds per operation) and not constant-time: test and benchmark use only.
Signatures are returned as ``(r, s, recid)`` tuples.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator, Sequence
from typing import Final


def _as_bytes(name: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


def _fixed(name: str, value: object, length: int) -> bytes:
    data = _as_bytes(name, value)
    if len(data) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(data)}")
    return data


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


_TAG_PREFIXES: dict[str, bytes] = {}


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340 tagged hash: ``sha256(sha256(tag) || sha256(tag) || data)``."""
    prefix = _TAG_PREFIXES.get(tag)
    if prefix is None:
        digest = hashlib.sha256(tag.encode()).digest()
        prefix = _TAG_PREFIXES.setdefault(tag, digest + digest)
    return hashlib.sha256(prefix + _as_bytes("data", data)).digest()


# --------------------------------------------------------------------------------------
# secp256k1 group arithmetic
# --------------------------------------------------------------------------------------

SECP256K1_P: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P: Final = SECP256K1_P
_N: Final = SECP256K1_N
_HALF_N: Final = _N // 2
_GX: Final = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
_GY: Final = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
_SQRT_EXP: Final = (_P + 1) // 4

_Affine = tuple[int, int]
_Jacobian = tuple[int, int, int]
_INF: Final[_Jacobian] = (1, 1, 0)  # Z == 0 marks the point at infinity


def _jac_double(pt: _Jacobian) -> _Jacobian:
    x, y, z = pt
    if z == 0 or y == 0:
        return _INF
    yy = y * y % _P
    s = 4 * x * yy % _P
    m = 3 * x * x % _P
    x3 = (m * m - 2 * s) % _P
    y3 = (m * (s - x3) - 8 * yy * yy) % _P
    return x3, y3, 2 * y * z % _P


def _jac_add_affine(pt: _Jacobian, q: _Affine) -> _Jacobian:
    x1, y1, z1 = pt
    x2, y2 = q
    if z1 == 0:
        return x2, y2, 1
    z1z1 = z1 * z1 % _P
    h = (x2 * z1z1 - x1) % _P
    r = (y2 * z1 * z1z1 - y1) % _P
    if h == 0:
        return _jac_double(pt) if r == 0 else _INF
    hh = h * h % _P
    hhh = h * hh % _P
    v = x1 * hh % _P
    x3 = (r * r - hhh - 2 * v) % _P
    y3 = (r * (v - x3) - y1 * hhh) % _P
    return x3, y3, z1 * h % _P


def _jac_add(p1: _Jacobian, p2: _Jacobian) -> _Jacobian:
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % _P
    z2z2 = z2 * z2 % _P
    u1 = x1 * z2z2 % _P
    s1 = y1 * z2 * z2z2 % _P
    h = (x2 * z1z1 - u1) % _P
    r = (y2 * z1 * z1z1 - s1) % _P
    if h == 0:
        return _jac_double(p1) if r == 0 else _INF
    hh = h * h % _P
    hhh = h * hh % _P
    v = u1 * hh % _P
    x3 = (r * r - hhh - 2 * v) % _P
    y3 = (r * (v - x3) - s1 * hhh) % _P
    return x3, y3, z1 * z2 * h % _P


def _to_affine(pt: _Jacobian) -> _Affine | None:
    x, y, z = pt
    if z == 0:
        return None
    zi = pow(z, -1, _P)
    zi2 = zi * zi % _P
    return x * zi2 % _P, y * zi2 * zi % _P


def _batch_to_affine(points: Sequence[_Jacobian]) -> list[_Affine]:
    """Normalise many finite points with one inversion (Montgomery's trick)."""
    prefix: list[int] = []
    acc = 1
    for _, _, z in points:
        prefix.append(acc)
        acc = acc * z % _P
    inv = pow(acc, -1, _P)
    out: list[_Affine] = [(0, 0)] * len(points)
    for i in range(len(points) - 1, -1, -1):
        x, y, z = points[i]
        zi = inv * prefix[i] % _P
        inv = inv * z % _P
        zi2 = zi * zi % _P
        out[i] = (x * zi2 % _P, y * zi2 * zi % _P)
    return out


# Fixed-base table: _G_TABLE[i][j - 1] == j * 256**i * G, so k*G is at most 32 mixed
# additions and no doublings. Built on first use (about 0.25 s, about 1 MB).
_G_TABLE: list[list[_Affine]] | None = None
_G_TABLE_LOCK = threading.Lock()


def _build_g_table() -> list[list[_Affine]]:
    rows: list[list[_Affine]] = []
    base: _Affine = (_GX, _GY)
    for _ in range(32):
        row: list[_Jacobian] = []
        acc: _Jacobian = _INF
        for _ in range(255):
            acc = _jac_add_affine(acc, base)
            row.append(acc)
        affine_row = _batch_to_affine(row)
        rows.append(affine_row)
        # 256 * base = 255 * base + base
        next_base = _to_affine(_jac_add_affine(row[-1], base))
        if next_base is None:  # pragma: no cover - 256**i is never a multiple of n here
            raise ArithmeticError("generator table hit infinity")
        base = next_base
    return rows


def _g_table() -> list[list[_Affine]]:
    global _G_TABLE
    table = _G_TABLE
    if table is None:
        with _G_TABLE_LOCK:
            table = _G_TABLE
            if table is None:
                table = _G_TABLE = _build_g_table()
    return table


def _mul_g(k: int) -> _Jacobian:
    """``k * G`` for ``0 <= k < 2**256``."""
    table = _g_table()
    acc = _INF
    i = 0
    while k:
        byte = k & 0xFF
        if byte:
            acc = _jac_add_affine(acc, table[i][byte - 1])
        k >>= 8
        i += 1
    return acc


def _wnaf(k: int, width: int) -> list[int]:
    digits: list[int] = []
    full = 1 << width
    half = full >> 1
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def _mul_point(k: int, point: _Affine) -> _Jacobian:
    """``k * point`` for a finite affine point, by width-5 wNAF."""
    k %= _N
    if k == 0:
        return _INF
    doubled = _jac_double((point[0], point[1], 1))
    odd: list[_Jacobian] = [(point[0], point[1], 1)]
    for _ in range(7):
        odd.append(_jac_add(odd[-1], doubled))
    # No odd multiple up to 15 of a point of prime order n vanishes, so all are finite.
    table = _batch_to_affine(odd)
    acc = _INF
    for d in reversed(_wnaf(k, 5)):
        acc = _jac_double(acc)
        if d > 0:
            acc = _jac_add_affine(acc, table[d >> 1])
        elif d < 0:
            x, y = table[(-d) >> 1]
            acc = _jac_add_affine(acc, (x, _P - y))
    return acc


def _lift_x(x: int) -> _Affine | None:
    """The point with this x and an even y, or None."""
    if not 0 <= x < _P:
        return None
    c = (pow(x, 3, _P) + 7) % _P
    y = pow(c, _SQRT_EXP, _P)
    if y * y % _P != c:
        return None
    return x, y if y & 1 == 0 else _P - y


def _decode_point(data: bytes) -> _Affine | None:
    if len(data) == 33 and data[0] in (2, 3):
        pt = _lift_x(int.from_bytes(data[1:], "big"))
        if pt is None:
            return None
        return pt if data[0] == 2 else (pt[0], _P - pt[1])
    if len(data) == 65 and data[0] == 4:
        x = int.from_bytes(data[1:33], "big")
        y = int.from_bytes(data[33:], "big")
        if x >= _P or y >= _P or (y * y - pow(x, 3, _P) - 7) % _P != 0:
            return None
        return x, y
    return None


def _encode_point(pt: _Affine, compressed: bool) -> bytes:
    x, y = pt
    if compressed:
        return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _public_point(name: str, public_key: bytes) -> _Affine:
    data = _as_bytes(name, public_key)
    if len(data) not in (33, 65):
        raise ValueError(f"{name} must be 33 (compressed) or 65 (uncompressed) bytes")
    pt = _decode_point(data)
    if pt is None:
        raise ValueError(f"{name} is not a valid secp256k1 public key")
    return pt


def _secret_scalar(secret32: bytes) -> int:
    d = int.from_bytes(_fixed("secret32", secret32, 32), "big")
    if not 0 < d < _N:
        raise ValueError("secret32 must encode an integer in [1, n-1]")
    return d


def _base_point(d: int) -> _Affine:
    pt = _to_affine(_mul_g(d))
    if pt is None:  # pragma: no cover - d is in [1, n-1]
        raise ArithmeticError("k*G is infinity")
    return pt


def secp256k1_public_key(secret32: bytes, *, compressed: bool = True) -> bytes:
    """The SEC1 public key (33 bytes compressed, 65 uncompressed) of a secret."""
    return _encode_point(_base_point(_secret_scalar(secret32)), compressed)


def secp256k1_normalize_public_key(public_key: bytes, *, compressed: bool = True) -> bytes:
    """Re-encode a SEC1 public key (either form) as compressed or uncompressed."""
    return _encode_point(_public_point("public_key", public_key), compressed)


# --------------------------------------------------------------------------------------
# ECDSA
# --------------------------------------------------------------------------------------


def rfc6979_nonces(d: int, digest: bytes) -> Iterator[int]:
    """RFC 6979 section 3.2 candidate nonces (HMAC-SHA256, qlen = 256)."""
    x = d.to_bytes(32, "big")
    h1 = (int.from_bytes(digest, "big") % _N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = hmac.digest(k, v + b"\x00" + x + h1, "sha256")
    v = hmac.digest(k, v, "sha256")
    k = hmac.digest(k, v + b"\x01" + x + h1, "sha256")
    v = hmac.digest(k, v, "sha256")
    while True:
        v = hmac.digest(k, v, "sha256")
        candidate = int.from_bytes(v, "big")
        if 0 < candidate < _N:
            yield candidate
        k = hmac.digest(k, v + b"\x00", "sha256")
        v = hmac.digest(k, v, "sha256")


def ecdsa_sign(secret32: bytes, digest32: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte digest: RFC 6979 deterministic nonce, low-s; ``(r, s, recid)``."""
    d = _secret_scalar(secret32)
    digest = _fixed("digest32", digest32, 32)
    z = int.from_bytes(digest, "big")
    for k in rfc6979_nonces(d, digest):
        rx, ry = _base_point(k)
        r = rx % _N
        if r == 0:
            continue
        s = pow(k, -1, _N) * (z + r * d) % _N
        if s == 0:
            continue
        recid = (ry & 1) | (2 if rx >= _N else 0)
        if s > _HALF_N:
            s = _N - s
            recid ^= 1
        return r, s, recid
    raise AssertionError("unreachable")  # pragma: no cover - the nonce stream is infinite


def ecdsa_verify(
    public_key: bytes, digest32: bytes, r: int, s: int, *, allow_high_s: bool = False
) -> bool:
    """Check an ECDSA signature over a 32-byte digest; high-s fails unless allowed."""
    data = _as_bytes("public_key", public_key)
    if len(data) not in (33, 65):
        raise ValueError("public_key must be 33 (compressed) or 65 (uncompressed) bytes")
    z = int.from_bytes(_fixed("digest32", digest32, 32), "big")
    r = _as_int("r", r)
    s = _as_int("s", s)
    q = _decode_point(data)
    if q is None or not 0 < r < _N or not 0 < s < _N:
        return False
    if s > _HALF_N and not allow_high_s:
        return False
    w = pow(s, -1, _N)
    x, _, zz = _jac_add(_mul_g(z * w % _N), _mul_point(r * w % _N, q))
    if zz == 0:
        return False
    # Compare in Jacobian form (x == X / Z^2) to save an inversion; R.x may exceed n.
    z2 = zz * zz % _P
    if x == r * z2 % _P:
        return True
    return r + _N < _P and x == (r + _N) * z2 % _P


def ecdsa_recover(
    digest32: bytes,
    r: int,
    s: int,
    recid: int,
    *,
    compressed: bool = True,
    allow_high_s: bool = False,
) -> bytes:
    """The public key that produced ``(r, s, recid)`` over ``digest32``."""
    z = int.from_bytes(_fixed("digest32", digest32, 32), "big")
    r = _as_int("r", r)
    s = _as_int("s", s)
    recid = _as_int("recid", recid)
    if not 0 < r < _N or not 0 < s < _N:
        raise ValueError("r and s must be in [1, n-1]")
    if s > _HALF_N and not allow_high_s:
        raise ValueError("s is above n/2 (high-s signatures are rejected)")
    if recid not in (0, 1, 2, 3):
        raise ValueError("recid must be 0, 1, 2 or 3")
    big_r = _lift_x(r + _N if recid & 2 else r)
    if big_r is None:
        raise ValueError("no curve point has the x coordinate given by r and recid")
    if recid & 1:
        big_r = (big_r[0], _P - big_r[1])
    r_inv = pow(r, -1, _N)
    q = _to_affine(_jac_add(_mul_g(-z * r_inv % _N), _mul_point(s * r_inv % _N, big_r)))
    if q is None:
        raise ValueError("signature recovers to the point at infinity")
    return _encode_point(q, compressed)


# --------------------------------------------------------------------------------------
# BIP-340 Schnorr and BIP-341 taproot tweaks
# --------------------------------------------------------------------------------------


def xonly_public_key(secret32: bytes) -> bytes:
    """The BIP-340 x-only public key (32 bytes) of a secret."""
    return _base_point(_secret_scalar(secret32))[0].to_bytes(32, "big")


def schnorr_sign(secret32: bytes, msg32: bytes, aux_rand32: bytes | None = None) -> bytes:
    """BIP-340 signature (64 bytes); ``aux_rand32=None`` draws fresh auxiliary randomness."""
    d0 = _secret_scalar(secret32)
    msg = _fixed("msg32", msg32, 32)
    aux = secrets.token_bytes(32) if aux_rand32 is None else _fixed("aux_rand32", aux_rand32, 32)
    px, py = _base_point(d0)
    d = d0 if py & 1 == 0 else _N - d0
    pk = px.to_bytes(32, "big")
    t = (d ^ int.from_bytes(tagged_hash("BIP0340/aux", aux), "big")).to_bytes(32, "big")
    k0 = int.from_bytes(tagged_hash("BIP0340/nonce", t + pk + msg), "big") % _N
    if k0 == 0:  # pragma: no cover - probability 2**-256
        raise ArithmeticError("BIP-340 nonce is zero")
    rx, ry = _base_point(k0)
    k = k0 if ry & 1 == 0 else _N - k0
    r = rx.to_bytes(32, "big")
    e = int.from_bytes(tagged_hash("BIP0340/challenge", r + pk + msg), "big") % _N
    return r + ((k + e * d) % _N).to_bytes(32, "big")


def schnorr_verify(xonly_pubkey32: bytes, msg32: bytes, sig64: bytes) -> bool:
    """BIP-340 verification against an x-only public key."""
    pk = _fixed("xonly_pubkey32", xonly_pubkey32, 32)
    msg = _fixed("msg32", msg32, 32)
    sig = _fixed("sig64", sig64, 64)
    point = _lift_x(int.from_bytes(pk, "big"))
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if point is None or r >= _P or s >= _N:
        return False
    e = int.from_bytes(tagged_hash("BIP0340/challenge", sig[:32] + pk + msg), "big") % _N
    big_r = _to_affine(_jac_add(_mul_g(s), _mul_point(_N - e, point)))
    return big_r is not None and big_r[1] & 1 == 0 and big_r[0] == r


def _tap_tweak(xonly: bytes, merkle_root: bytes | None) -> int:
    root = b"" if merkle_root is None else _as_bytes("merkle_root", merkle_root)
    if len(root) not in (0, 32):
        raise ValueError("merkle_root must be None, empty, or 32 bytes")
    t = int.from_bytes(tagged_hash("TapTweak", xonly + root), "big")
    if t >= _N:  # pragma: no cover - probability 2**-128
        raise ValueError("taproot tweak is not a valid scalar")
    return t


def taproot_tweak_public_key(xonly32: bytes, merkle_root: bytes | None) -> tuple[bytes, int]:
    """BIP-341 output key ``P + H_TapTweak(P || root) * G``: (x-only key, y parity).

    ``merkle_root`` of ``None`` or ``b""`` is the key-path-only tweak (BIP-86).
    """
    pk = _fixed("xonly32", xonly32, 32)
    point = _lift_x(int.from_bytes(pk, "big"))
    if point is None:
        raise ValueError("xonly32 is not the x coordinate of a secp256k1 point")
    q = _to_affine(_jac_add(_mul_g(_tap_tweak(pk, merkle_root)), (point[0], point[1], 1)))
    if q is None:  # pragma: no cover - needs a discrete log of the tweak
        raise ValueError("tweaked key is the point at infinity")
    return q[0].to_bytes(32, "big"), q[1] & 1


def taproot_tweak_secret(secret32: bytes, merkle_root: bytes | None) -> bytes:
    """The BIP-341 tweaked secret that signs for ``taproot_tweak_public_key``'s key."""
    d0 = _secret_scalar(secret32)
    px, py = _base_point(d0)
    d = d0 if py & 1 == 0 else _N - d0
    tweaked = (d + _tap_tweak(px.to_bytes(32, "big"), merkle_root)) % _N
    if tweaked == 0:  # pragma: no cover - probability 2**-256
        raise ValueError("tweaked secret is zero")
    return tweaked.to_bytes(32, "big")
