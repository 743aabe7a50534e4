"""Signing and verification primitives shared by the sandbox and the engine.

Everything takes and returns ``bytes`` (plus ``int`` for ECDSA ``r``/``s``). Inputs of the
wrong type raise ``TypeError``; wrong lengths and out-of-range values raise ``ValueError``
with a message naming the argument. The ``*_verify`` functions raise only for inputs of the
wrong type or length: anything else that is not a valid signature (a point off the curve,
``r`` or ``s`` out of range, a wrong key) makes them return ``False``.

Every secp256k1 operation (key derivation, ECDSA signing with RFC 6979 nonces, verification
and public-key recovery, BIP-340 signing and verification, the BIP-341 tweak) is
libsecp256k1's, through coincurve; strict DER and Ed25519 are ``cryptography``'s, and
Keccak-256 is pycryptodome's. What is left here is input checking, the low-s policy, and
scalar arithmetic mod n where BIP-341 defines it (negating and tweaking a secret).

Low-s policy: ``ecdsa_sign`` always returns ``s <= n/2`` (libsecp256k1 signs that way and
adjusts ``recid``), and ``ecdsa_verify`` / ``ecdsa_recover`` reject ``s > n/2`` unless
called with ``allow_high_s=True``. A high-s signature is the malleated twin of a valid
one and EVM transactions forbid it. Whether Dfns normalises every ECDSA signature is not
documented (API-NOTES section 9, item 5); a caller that must accept a high-s signature from
a non-EVM context passes ``allow_high_s=True`` explicitly.

EIP-191, EIP-712, RLP and the EVM transaction formats stay here rather than coming from
``eth-account`` / ``rlp``, on these measurements (2026-12, eth-account 0.14.0, rlp 5.0.0,
this project's 2-core machine):

* ``eth-account`` cannot be installed beside ``pycryptodome>=4.4`` (its ``eth-keyfile``
  requires ``pycryptodome<4``); pip's resolver gives up.
* Both give the published digests on the EIP-712 "Ether Mail" vector (also in Dfns's
  shape, without ``primaryType``) and recover the EIP-155 example's sender.
* ``eth-account`` does not parse an *unsigned* serialized typed transaction
  (``TypedTransaction.from_bytes`` wants the signed field count), which is what a Dfns
  ``Transaction`` request carries, so the parsing here would stay anyway.
* This code is faster: EIP-712 "Ether Mail" 119 us against 191 us, RLP encoding 7 us
  against 18 us, a transaction's sender 78 us against 5.4 ms (eth-keys without coincurve).

It is hashing and byte parsing only, checked against the EIP's, web3.js's and reth's
published vectors in ``tests/unit/crypto``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict, Union

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly
from Crypto.Hash import keccak as _keccak
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "SECP256K1_N",
    "SECP256K1_P",
    "EcdsaSignature",
    "EvmTransactionSummary",
    "RlpItem",
    "ecdsa_der_decode",
    "ecdsa_der_encode",
    "ecdsa_recover",
    "ecdsa_sign",
    "ecdsa_verify",
    "ed25519_public_key",
    "ed25519_sign",
    "ed25519_verify",
    "eip191_hash",
    "eip712_hash",
    "encoded_evm_signature",
    "evm_address",
    "evm_checksum_address",
    "evm_signed_transaction",
    "evm_transaction_sender",
    "evm_transaction_signing_hash",
    "evm_transaction_summary",
    "keccak256",
    "rlp_decode",
    "rlp_encode",
    "schnorr_sign",
    "schnorr_verify",
    "secp256k1_normalize_public_key",
    "secp256k1_public_key",
    "tagged_hash",
    "taproot_tweak_public_key",
    "taproot_tweak_secret",
    "xonly_public_key",
]

# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the Ethereum hash, not NIST SHA3-256)."""
    return bytes(_keccak.new(digest_bits=256, data=_as_bytes("data", data)).digest())


_TAG_PREFIXES: dict[str, bytes] = {}


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340 tagged hash: ``sha256(sha256(tag) || sha256(tag) || data)``."""
    prefix = _TAG_PREFIXES.get(tag)
    if prefix is None:
        digest = hashlib.sha256(tag.encode()).digest()
        prefix = _TAG_PREFIXES.setdefault(tag, digest + digest)
    return hashlib.sha256(prefix + _as_bytes("data", data)).digest()


# --------------------------------------------------------------------------------------
# secp256k1 keys
# --------------------------------------------------------------------------------------

SECP256K1_P: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P: Final = SECP256K1_P
_N: Final = SECP256K1_N
_HALF_N: Final = _N // 2
# SEC1 prefixes accepted: libsecp256k1 would also parse the "hybrid" 0x06/0x07 forms,
# which nothing signgate talks to produces and which would make two encodings of one key.
_SEC1_PREFIXES: Final = {33: (2, 3), 65: (4,)}


def _parse_public_key(name: str, public_key: bytes) -> PublicKey | None:
    """The key, or None when it is not a point of the curve in SEC1 form."""
    data = _as_bytes(name, public_key)
    prefixes = _SEC1_PREFIXES.get(len(data))
    if prefixes is None:
        raise ValueError(f"{name} must be 33 (compressed) or 65 (uncompressed) bytes")
    if data[0] not in prefixes:
        return None
    try:
        return PublicKey(data)
    except ValueError:
        return None


def _public_key(name: str, public_key: bytes) -> PublicKey:
    key = _parse_public_key(name, public_key)
    if key is None:
        raise ValueError(f"{name} is not a valid secp256k1 public key")
    return key


def _secret(secret32: bytes) -> bytes:
    secret = _fixed("secret32", secret32, 32)
    if not 0 < int.from_bytes(secret, "big") < _N:
        raise ValueError("secret32 must encode an integer in [1, n-1]")
    return secret


def secp256k1_public_key(secret32: bytes, *, compressed: bool = True) -> bytes:
    """The SEC1 public key (33 bytes compressed, 65 uncompressed) of a secret."""
    key: bytes = PublicKey.from_valid_secret(_secret(secret32)).format(compressed=compressed)
    return key


def secp256k1_normalize_public_key(public_key: bytes, *, compressed: bool = True) -> bytes:
    """Re-encode a SEC1 public key (either form) as compressed or uncompressed."""
    key: bytes = _public_key("public_key", public_key).format(compressed=compressed)
    return key


# --------------------------------------------------------------------------------------
# ECDSA
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EcdsaSignature:
    """A secp256k1 ECDSA signature with its recovery id (0..3; 0 or 1 in practice)."""

    r: int
    s: int
    recid: int

    def __post_init__(self) -> None:
        for name in ("r", "s"):
            value = _as_int(name, getattr(self, name))
            if not 0 < value < _N:
                raise ValueError(f"{name} must be in [1, n-1]")
        if _as_int("recid", self.recid) not in (0, 1, 2, 3):
            raise ValueError("recid must be 0, 1, 2 or 3")

    @property
    def compact(self) -> bytes:
        """``r || s``, 64 bytes."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big")

    @property
    def der(self) -> bytes:
        """The DER encoding of ``(r, s)``."""
        return ecdsa_der_encode(self.r, self.s)


def ecdsa_sign(secret32: bytes, digest32: bytes) -> EcdsaSignature:
    """Sign a 32-byte digest: RFC 6979 deterministic nonce, low-s, with recovery id."""
    secret = _secret(secret32)
    digest = _fixed("digest32", digest32, 32)
    # libsecp256k1's default nonce function is RFC 6979 with HMAC-SHA256, and it
    # normalises s to the lower half (flipping the recovery id).
    raw: bytes = PrivateKey(secret).sign_recoverable(digest, hasher=None)
    return EcdsaSignature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    )


def ecdsa_verify(
    public_key: bytes, digest32: bytes, r: int, s: int, *, allow_high_s: bool = False
) -> bool:
    """Check an ECDSA signature over a 32-byte digest; high-s fails unless allowed."""
    key = _parse_public_key("public_key", public_key)
    digest = _fixed("digest32", digest32, 32)
    r = _as_int("r", r)
    s = _as_int("s", s)
    if key is None or not 0 < r < _N or not 0 < s < _N:
        return False
    if s > _HALF_N:
        if not allow_high_s:
            return False
        # libsecp256k1 verifies lower-s only; (r, n - s) is valid exactly when (r, s) is.
        s = _N - s
    verified: bool = key.verify(encode_dss_signature(r, s), digest, hasher=None)
    return verified


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
    digest = _fixed("digest32", digest32, 32)
    r = _as_int("r", r)
    s = _as_int("s", s)
    recid = _as_int("recid", recid)
    if not 0 < r < _N or not 0 < s < _N:
        raise ValueError("r and s must be in [1, n-1]")
    if s > _HALF_N and not allow_high_s:
        raise ValueError("s is above n/2 (high-s signatures are rejected)")
    if recid not in (0, 1, 2, 3):
        raise ValueError("recid must be 0, 1, 2 or 3")
    x = r + _N if recid & 2 else r
    no_point = "no curve point has the x coordinate given by r and recid"
    if x >= _P:
        raise ValueError(no_point)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid])
    try:
        key = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError:
        # Recovery fails when R is not on the curve, or when the result is infinity.
        if _parse_public_key("R", bytes([2 | (recid & 1)]) + x.to_bytes(32, "big")) is None:
            raise ValueError(no_point) from None
        raise ValueError("signature recovers to the point at infinity") from None
    recovered: bytes = key.format(compressed=compressed)
    return recovered


def ecdsa_der_encode(r: int, s: int) -> bytes:
    """DER ``SEQUENCE { INTEGER r, INTEGER s }`` (as in Bitcoin and PSBT signatures)."""
    r = _as_int("r", r)
    s = _as_int("s", s)
    if not 0 < r < _N or not 0 < s < _N:
        raise ValueError("r and s must be in [1, n-1]")
    return encode_dss_signature(r, s)


def ecdsa_der_decode(der: bytes) -> tuple[int, int]:
    """Parse a strict DER ECDSA signature into ``(r, s)``."""
    data = _as_bytes("der", der)
    try:
        r, s = decode_dss_signature(data)
    except ValueError as exc:
        raise ValueError(f"not a strict DER ECDSA signature ({exc})") from None
    if not 0 < r < _N or not 0 < s < _N:
        raise ValueError("DER signature: r and s must be in [1, n-1]")
    return r, s


# --------------------------------------------------------------------------------------
# BIP-340 Schnorr and BIP-341 taproot tweaks
# --------------------------------------------------------------------------------------


def xonly_public_key(secret32: bytes) -> bytes:
    """The BIP-340 x-only public key (32 bytes) of a secret."""
    key: bytes = PublicKeyXOnly.from_valid_secret(_secret(secret32)).format()
    return key


def schnorr_sign(secret32: bytes, msg32: bytes, aux_rand32: bytes | None = None) -> bytes:
    """BIP-340 signature (64 bytes); ``aux_rand32=None`` draws fresh auxiliary randomness."""
    secret = _secret(secret32)
    msg = _fixed("msg32", msg32, 32)
    aux = secrets.token_bytes(32) if aux_rand32 is None else _fixed("aux_rand32", aux_rand32, 32)
    # coincurve verifies the signature before returning it (a fault-attack guard).
    signature: bytes = PrivateKey(secret).sign_schnorr(msg, aux)
    return signature


def schnorr_verify(xonly_pubkey32: bytes, msg32: bytes, sig64: bytes) -> bool:
    """BIP-340 verification against an x-only public key."""
    pk = _fixed("xonly_pubkey32", xonly_pubkey32, 32)
    msg = _fixed("msg32", msg32, 32)
    sig = _fixed("sig64", sig64, 64)
    try:
        key = PublicKeyXOnly(pk)
    except ValueError:
        return False
    verified: bool = key.verify(sig, msg)
    return verified


def _tap_tweak(xonly: bytes, merkle_root: bytes | None) -> bytes:
    root = b"" if merkle_root is None else _as_bytes("merkle_root", merkle_root)
    if len(root) not in (0, 32):
        raise ValueError("merkle_root must be None, empty, or 32 bytes")
    tweak = tagged_hash("TapTweak", xonly + root)
    if int.from_bytes(tweak, "big") >= _N:  # pragma: no cover - probability 2**-128
        raise ValueError("taproot tweak is not a valid scalar")
    return tweak


def taproot_tweak_public_key(xonly32: bytes, merkle_root: bytes | None) -> tuple[bytes, int]:
    """BIP-341 output key ``P + H_TapTweak(P || root) * G``: (x-only key, y parity).

    ``merkle_root`` of ``None`` or ``b""`` is the key-path-only tweak (BIP-86).
    """
    pk = _fixed("xonly32", xonly32, 32)
    try:
        key = PublicKeyXOnly(pk)
    except ValueError:
        raise ValueError("xonly32 is not the x coordinate of a secp256k1 point") from None
    tweak = _tap_tweak(pk, merkle_root)
    try:
        key.tweak_add(tweak)
    except ValueError:  # pragma: no cover - needs a discrete log of the tweak
        raise ValueError("tweaked key is the point at infinity") from None
    output: bytes = key.format()
    return output, int(key.parity)


def taproot_tweak_secret(secret32: bytes, merkle_root: bytes | None) -> bytes:
    """The BIP-341 tweaked secret that signs for ``taproot_tweak_public_key``'s key."""
    secret = _secret(secret32)
    internal = PublicKeyXOnly.from_valid_secret(secret)
    d0 = int.from_bytes(secret, "big")
    # BIP-341 tweaks the secret of the even-y point P, so an odd-y secret is negated first.
    d = _N - d0 if internal.parity else d0
    tweak = int.from_bytes(_tap_tweak(internal.format(), merkle_root), "big")
    tweaked = (d + tweak) % _N
    if tweaked == 0:  # pragma: no cover - probability 2**-256
        raise ValueError("tweaked secret is zero")
    return tweaked.to_bytes(32, "big")


# --------------------------------------------------------------------------------------
# Ed25519
# --------------------------------------------------------------------------------------


def ed25519_public_key(secret32: bytes) -> bytes:
    """The 32-byte Ed25519 public key of an RFC 8032 secret (seed)."""
    key = Ed25519PrivateKey.from_private_bytes(_fixed("secret32", secret32, 32))
    return key.public_key().public_bytes_raw()


def ed25519_sign(secret32: bytes, message: bytes) -> bytes:
    """RFC 8032 Ed25519 signature (64 bytes, ``R || S``) over an arbitrary message."""
    key = Ed25519PrivateKey.from_private_bytes(_fixed("secret32", secret32, 32))
    return key.sign(_as_bytes("message", message))


def ed25519_verify(public32: bytes, message: bytes, sig64: bytes) -> bool:
    """Check an Ed25519 signature."""
    pub = _fixed("public32", public32, 32)
    sig = _fixed("sig64", sig64, 64)
    msg = _as_bytes("message", message)
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------
# EVM: addresses and message hashes
# --------------------------------------------------------------------------------------

_ADDRESS_RE = re.compile(r"0[xX][0-9a-fA-F]{40}")


def evm_checksum_address(address: str | bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address (bytes or ``0x`` hex of any case)."""
    if isinstance(address, str):
        if not _ADDRESS_RE.fullmatch(address):
            raise ValueError("address must be 0x followed by 40 hex digits")
        lower = address[2:].lower()
    else:
        lower = _fixed("address", address, 20).hex()
    nibbles = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(nibbles[i], 16) >= 8 else c for i, c in enumerate(lower)
    )


def evm_address(public_key: bytes) -> str:
    """EIP-55 address of a secp256k1 key (33- or 65-byte SEC1, or 64-byte ``x || y``)."""
    data = _as_bytes("public_key", public_key)
    if len(data) == 64:
        data = b"\x04" + data
    raw = _public_key("public_key", data).format(compressed=False)[1:]
    return evm_checksum_address(keccak256(raw)[12:])


def eip191_hash(message: bytes) -> bytes:
    """EIP-191 ``personal_sign`` digest of raw message bytes."""
    msg = _as_bytes("message", message)
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(msg)).encode() + msg)


def encoded_evm_signature(sig: EcdsaSignature) -> bytes:
    """``r || s || v`` with ``v = 27 + recid`` (65 bytes), Dfns's EVM ``encoded`` form."""
    if sig.recid not in (0, 1):
        raise ValueError("an EVM signature needs recid 0 or 1")
    return sig.compact + bytes([27 + sig.recid])


# --------------------------------------------------------------------------------------
# EIP-712
# --------------------------------------------------------------------------------------

_DOMAIN_FIELDS: Final = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
_INT_TYPE_RE = re.compile(r"(u?)int([0-9]+)")
_BYTES_TYPE_RE = re.compile(r"bytes([0-9]+)")
_ARRAY_SUFFIX_RE = re.compile(r"(.+)\[([0-9]*)\]")
_DECIMAL_RE = re.compile(r"[0-9]+")
_HEX_RE = re.compile(r"0[xX]([0-9a-fA-F]*)")
_IDENT_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

_Types = dict[str, list[tuple[str, str]]]


def _parse_int_value(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer, got a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value
        negative = text.startswith("-")
        if negative:
            text = text[1:]
        hex_match = _HEX_RE.fullmatch(text)
        if hex_match and hex_match.group(1):
            number = int(hex_match.group(1), 16)
        elif _DECIMAL_RE.fullmatch(text):
            number = int(text, 10)
        else:
            raise ValueError(f"{name}: {value!r} is not a decimal or 0x-hex integer")
        return -number if negative else number
    raise ValueError(f"{name}: expected an integer, got {type(value).__name__}")


def _parse_bytes_value(name: str, value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        match = _HEX_RE.fullmatch(value)
        if match and len(match.group(1)) % 2 == 0:
            return bytes.fromhex(match.group(1))
    raise ValueError(f"{name}: expected 0x-prefixed hex bytes, got {value!r}")


def _split_array(type_name: str) -> tuple[str, int | None] | None:
    """``("T", length or None)`` for ``T[]`` / ``T[k]``, or None for a non-array type."""
    match = _ARRAY_SUFFIX_RE.fullmatch(type_name)
    if match is None:
        return None
    size = match.group(2)
    if size and (size.startswith("0") or int(size) == 0):
        raise ValueError(f"invalid array length in type {type_name!r}")
    return match.group(1), int(size) if size else None


def _base_type(type_name: str) -> str:
    while (split := _split_array(type_name)) is not None:
        type_name = split[0]
    return type_name


def _is_atomic(type_name: str) -> bool:
    if type_name in ("address", "bool", "bytes", "string"):
        return True
    int_match = _INT_TYPE_RE.fullmatch(type_name)
    if int_match:
        bits = int(int_match.group(2))
        return 8 <= bits <= 256 and bits % 8 == 0 and not int_match.group(2).startswith("0")
    bytes_match = _BYTES_TYPE_RE.fullmatch(type_name)
    if bytes_match:
        return 1 <= int(bytes_match.group(1)) <= 32 and not bytes_match.group(1).startswith("0")
    return False


def _parse_types(raw: object) -> _Types:
    if not isinstance(raw, Mapping):
        raise ValueError("EIP-712 'types' must be an object")
    types: _Types = {}
    for type_name, fields in raw.items():
        if not isinstance(type_name, str) or not _IDENT_RE.fullmatch(type_name):
            raise ValueError(f"EIP-712 type name {type_name!r} is not an identifier")
        if _is_atomic(type_name):
            raise ValueError(f"EIP-712 struct {type_name!r} shadows an atomic type")
        if not isinstance(fields, Sequence) or isinstance(fields, str | bytes):
            raise ValueError(f"EIP-712 type {type_name!r} must be a list of fields")
        parsed: list[tuple[str, str]] = []
        for field in fields:
            if not isinstance(field, Mapping):
                raise ValueError(f"EIP-712 type {type_name!r}: each field needs name and type")
            name = field.get("name")
            field_type = field.get("type")
            if not isinstance(name, str) or not isinstance(field_type, str):
                raise ValueError(f"EIP-712 type {type_name!r}: each field needs name and type")
            parsed.append((name, field_type))
        if len({name for name, _ in parsed}) != len(parsed):
            raise ValueError(f"EIP-712 type {type_name!r} repeats a field name")
        types[type_name] = parsed
    for type_name, fields in types.items():
        for name, field_type in fields:
            base = _base_type(field_type)
            if base not in types and not _is_atomic(base):
                raise ValueError(
                    f"EIP-712 type {type_name!r} field {name!r} has unknown type {field_type!r}"
                )
    return types


def _infer_primary_type(types: _Types) -> str:
    referenced: set[str] = set()
    for type_name, fields in types.items():
        for _, field_type in fields:
            base = _base_type(field_type)
            if base != type_name:
                referenced.add(base)
    candidates = sorted(t for t in types if t != "EIP712Domain" and t not in referenced)
    if len(candidates) != 1:
        raise ValueError(
            "cannot infer the EIP-712 primary type: expected exactly one struct type that no "
            f"other type references, found {candidates}; pass 'primaryType'"
        )
    return candidates[0]


def _encode_type(primary: str, types: _Types) -> str:
    deps: set[str] = set()
    pending = [primary]
    while pending:
        current = pending.pop()
        if current in deps:
            continue
        deps.add(current)
        pending.extend(
            base for _, t in types[current] if (base := _base_type(t)) in types and base not in deps
        )
    ordered = [primary, *sorted(deps - {primary})]
    return "".join(f"{t}({','.join(f'{ft} {fn}' for fn, ft in types[t])})" for t in ordered)


class _Eip712Encoder:
    def __init__(self, types: _Types) -> None:
        self.types = types
        self._type_hashes: dict[str, bytes] = {}

    def type_hash(self, type_name: str) -> bytes:
        cached = self._type_hashes.get(type_name)
        if cached is None:
            cached = keccak256(_encode_type(type_name, self.types).encode())
            self._type_hashes[type_name] = cached
        return cached

    def hash_struct(self, type_name: str, data: object, path: str) -> bytes:
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected an object for struct {type_name!r}")
        parts = [self.type_hash(type_name)]
        for name, field_type in self.types[type_name]:
            if name not in data:
                raise ValueError(f"{path}: missing field {name!r} of {type_name!r}")
            parts.append(self.encode_value(field_type, data[name], f"{path}.{name}"))
        return keccak256(b"".join(parts))

    def encode_value(self, type_name: str, value: object, path: str) -> bytes:
        array = _split_array(type_name)
        if array is not None:
            element_type, length = array
            if not isinstance(value, Sequence) or isinstance(value, str | bytes | bytearray):
                raise ValueError(f"{path}: expected an array for {type_name!r}")
            if length is not None and len(value) != length:
                raise ValueError(f"{path}: {type_name!r} needs {length} items, got {len(value)}")
            return keccak256(
                b"".join(
                    self.encode_value(element_type, item, f"{path}[{i}]")
                    for i, item in enumerate(value)
                )
            )
        if type_name in self.types:
            return self.hash_struct(type_name, value, path)
        return _encode_atomic(type_name, value, path)


def _encode_atomic(type_name: str, value: object, path: str) -> bytes:
    if type_name == "string":
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string")
        return keccak256(value.encode("utf-8"))
    if type_name == "bytes":
        return keccak256(_parse_bytes_value(path, value))
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected a boolean")
        return int(value).to_bytes(32, "big")
    if type_name == "address":
        if isinstance(value, str):
            if not _ADDRESS_RE.fullmatch(value):
                raise ValueError(f"{path}: expected a 0x-prefixed 20-byte address")
            raw = bytes.fromhex(value[2:])
        else:
            raw = _parse_bytes_value(path, value)
            if len(raw) != 20:
                raise ValueError(f"{path}: an address is 20 bytes")
        return raw.rjust(32, b"\x00")
    int_match = _INT_TYPE_RE.fullmatch(type_name)
    if int_match:
        bits = int(int_match.group(2))
        number = _parse_int_value(path, value)
        if int_match.group(1):
            if not 0 <= number < 1 << bits:
                raise ValueError(f"{path}: {number} does not fit {type_name}")
        elif not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
            raise ValueError(f"{path}: {number} does not fit {type_name}")
        return (number % (1 << 256)).to_bytes(32, "big")
    bytes_match = _BYTES_TYPE_RE.fullmatch(type_name)
    if bytes_match:
        size = int(bytes_match.group(1))
        raw = _parse_bytes_value(path, value)
        if len(raw) != size:
            raise ValueError(f"{path}: {type_name} needs exactly {size} bytes, got {len(raw)}")
        return raw.ljust(32, b"\x00")
    raise ValueError(f"{path}: unsupported EIP-712 type {type_name!r}")


def eip712_hash(typed_data: Mapping[str, Any]) -> bytes:
    """EIP-712 digest ``keccak(0x1901 || domainSeparator || hashStruct(message))``.

    Accepts Dfns's ``Eip712`` body: without ``primaryType`` the primary type is the one
    struct no other struct references; without an ``EIP712Domain`` entry in ``types`` the
    domain type is built from the domain fields present, in the standard order.
    """
    if not isinstance(typed_data, Mapping):
        raise TypeError("typed_data must be a mapping")
    types = _parse_types(typed_data.get("types"))
    domain = typed_data.get("domain")
    if not isinstance(domain, Mapping):
        raise ValueError("EIP-712 'domain' must be an object")
    if "EIP712Domain" not in types:
        known = {name for name, _ in _DOMAIN_FIELDS}
        unknown = sorted(str(k) for k in domain if k not in known)
        if unknown:
            raise ValueError(
                f"EIP-712 domain has non-standard fields {unknown}; declare EIP712Domain in types"
            )
        types["EIP712Domain"] = [(n, t) for n, t in _DOMAIN_FIELDS if domain.get(n) is not None]
        domain = {k: v for k, v in domain.items() if v is not None}
    primary = typed_data.get("primaryType")
    if primary is None:
        primary = _infer_primary_type(types)
    elif not isinstance(primary, str) or primary not in types:
        raise ValueError(f"EIP-712 primaryType {primary!r} is not a declared struct type")
    encoder = _Eip712Encoder(types)
    parts = [b"\x19\x01", encoder.hash_struct("EIP712Domain", domain, "domain")]
    if primary != "EIP712Domain":
        parts.append(encoder.hash_struct(primary, typed_data.get("message"), "message"))
    return keccak256(b"".join(parts))


# --------------------------------------------------------------------------------------
# RLP
# --------------------------------------------------------------------------------------

RlpItem = Union[bytes, list["RlpItem"]]  # noqa: UP007 - a recursive alias needs the string form
_RlpInput = Union[bytes, bytearray, int, Sequence["_RlpInput"]]  # noqa: UP007


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(encoded)]) + encoded


def rlp_encode(item: _RlpInput) -> bytes:
    """RLP-encode bytes, non-negative ints (minimal big-endian) and nested sequences."""
    if isinstance(item, bytes | bytearray):
        data = bytes(item)
        if len(data) == 1 and data[0] < 0x80:
            return data
        return _rlp_length(len(data), 0x80) + data
    if isinstance(item, bool):
        raise TypeError("RLP cannot encode a bool")
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP cannot encode a negative integer")
        return rlp_encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    if isinstance(item, Sequence) and not isinstance(item, str):
        body = b"".join(rlp_encode(element) for element in item)
        return _rlp_length(len(body), 0xC0) + body
    raise TypeError(f"RLP cannot encode {type(item).__name__}")


def _rlp_decode_at(data: bytes, pos: int, depth: int) -> tuple[RlpItem, int]:
    if depth > 64:
        raise ValueError("RLP nesting too deep")
    if pos >= len(data):
        raise ValueError("RLP: unexpected end of input")
    prefix = data[pos]
    if prefix < 0x80:
        return data[pos : pos + 1], pos + 1
    is_list = prefix >= 0xC0
    short_base, long_base = (0xC0, 0xF7) if is_list else (0x80, 0xB7)
    if prefix <= long_base:
        length = prefix - short_base
        start = pos + 1
    else:
        size_len = prefix - long_base
        size_bytes = data[pos + 1 : pos + 1 + size_len]
        if len(size_bytes) != size_len:
            raise ValueError("RLP: truncated length")
        if size_bytes[0] == 0:
            raise ValueError("RLP: length has leading zeros")
        length = int.from_bytes(size_bytes, "big")
        if length < 56:
            raise ValueError("RLP: long form used for a short length")
        start = pos + 1 + size_len
    end = start + length
    if end > len(data):
        raise ValueError("RLP: item runs past the end of input")
    if not is_list:
        payload = data[start:end]
        if length == 1 and payload[0] < 0x80:
            raise ValueError("RLP: single byte below 0x80 must encode itself")
        return payload, end
    items: list[RlpItem] = []
    cursor = start
    while cursor < end:
        item, cursor = _rlp_decode_at(data, cursor, depth + 1)
        items.append(item)
    if cursor != end:  # pragma: no cover - each child ends within the bounds checked above
        raise ValueError("RLP: list payload length mismatch")
    return items, end


def rlp_decode(data: bytes) -> RlpItem:
    """Decode exactly one canonical RLP item (bytes or nested lists of bytes)."""
    raw = _as_bytes("data", data)
    item, end = _rlp_decode_at(raw, 0, 0)
    if end != len(raw):
        raise ValueError("RLP: trailing bytes after the item")
    return item


# --------------------------------------------------------------------------------------
# EVM transactions
# --------------------------------------------------------------------------------------

_LEGACY_FIELDS: Final = ("nonce", "gasPrice", "gasLimit", "to", "value", "data")
_TYPED_FIELDS: Final[dict[int, tuple[str, ...]]] = {
    0x01: ("chainId", "nonce", "gasPrice", "gasLimit", "to", "value", "data", "accessList"),
    0x02: (
        "chainId",
        "nonce",
        "maxPriorityFeePerGas",
        "maxFeePerGas",
        "gasLimit",
        "to",
        "value",
        "data",
        "accessList",
    ),
    0x04: (
        "chainId",
        "nonce",
        "maxPriorityFeePerGas",
        "maxFeePerGas",
        "gasLimit",
        "to",
        "value",
        "data",
        "accessList",
        "authorizationList",
    ),
}


class EvmTransactionSummary(TypedDict):
    """What a policy engine wants to know about an unsigned EVM transaction."""

    type: int
    chain_id: int | None
    nonce: int
    to: str | None
    value: int
    gas_limit: int
    data: str


def _rlp_int(name: str, item: RlpItem) -> int:
    if not isinstance(item, bytes):
        raise ValueError(f"transaction field {name} must be an integer, got a list")
    if len(item) > 32:
        raise ValueError(f"transaction field {name} is longer than 32 bytes")
    if item[:1] == b"\x00":
        raise ValueError(f"transaction field {name} has leading zero bytes")
    return int.from_bytes(item, "big")


def _rlp_bytes(name: str, item: RlpItem, length: int | None = None) -> bytes:
    if not isinstance(item, bytes):
        raise ValueError(f"transaction field {name} must be a byte string, got a list")
    if length is not None and len(item) != length:
        raise ValueError(f"transaction field {name} must be {length} bytes, got {len(item)}")
    return item


def _rlp_list(name: str, item: RlpItem) -> list[RlpItem]:
    if not isinstance(item, list):
        raise ValueError(f"transaction field {name} must be a list")
    return item


def _check_tx_fields(tx_type: int, names: Sequence[str], fields: Sequence[RlpItem]) -> None:
    for name, item in zip(names, fields, strict=True):
        if name == "to":
            to = _rlp_bytes(name, item)
            if len(to) != 20 and (len(to) != 0 or tx_type == 0x04):
                raise ValueError(
                    "transaction 'to' must be a 20-byte address"
                    + ("" if tx_type == 0x04 else " or empty (contract creation)")
                )
        elif name == "data":
            _rlp_bytes(name, item)
        elif name == "accessList":
            for entry in _rlp_list(name, item):
                pair = _rlp_list("accessList entry", entry)
                if len(pair) != 2:
                    raise ValueError("accessList entries are [address, storageKeys]")
                _rlp_bytes("accessList address", pair[0], 20)
                for key in _rlp_list("accessList storageKeys", pair[1]):
                    _rlp_bytes("accessList storage key", key, 32)
        elif name == "authorizationList":
            for entry in _rlp_list(name, item):
                auth = _rlp_list("authorization", entry)
                if len(auth) != 6:
                    raise ValueError("authorizations are [chainId, address, nonce, yParity, r, s]")
                _rlp_int("authorization chainId", auth[0])
                _rlp_bytes("authorization address", auth[1], 20)
                for label, value in zip(("nonce", "yParity", "r", "s"), auth[2:], strict=True):
                    _rlp_int(f"authorization {label}", value)
        else:
            _rlp_int(name, item)


@dataclass(frozen=True, slots=True)
class _ParsedTx:
    tx_type: int
    fields: list[RlpItem]  # the unsigned payload fields, without any chain-id/signature tail
    chain_id: int | None
    signature: tuple[int, int, int] | None  # (recid, r, s) of a signed transaction


def _parse_transaction(raw: bytes, *, signed: bool) -> _ParsedTx:
    data = _as_bytes("transaction", raw)
    if not data:
        raise ValueError("transaction is empty")
    if data[0] >= 0xC0:
        return _parse_legacy(data, signed=signed)
    if data[0] >= 0x80:
        raise ValueError("not a transaction: neither an RLP list (legacy) nor an EIP-2718 type")
    tx_type = data[0]
    names = _TYPED_FIELDS.get(tx_type)
    if names is None:
        raise ValueError(f"unsupported EVM transaction type 0x{tx_type:02x}")
    payload = rlp_decode(data[1:])
    if not isinstance(payload, list):
        raise ValueError("typed transaction payload must be an RLP list")
    expected = len(names) + (3 if signed else 0)
    if len(payload) != expected:
        state = "signed" if signed else "unsigned"
        raise ValueError(
            f"{state} type-0x{tx_type:02x} transaction needs {expected} fields, got {len(payload)}"
        )
    fields = payload[: len(names)]
    _check_tx_fields(tx_type, names, fields)
    signature = None
    if signed:
        y_parity = _rlp_int("yParity", payload[-3])
        if y_parity > 1:
            raise ValueError("yParity must be 0 or 1")
        signature = (y_parity, _rlp_int("r", payload[-2]), _rlp_int("s", payload[-1]))
    return _ParsedTx(tx_type, fields, _rlp_int("chainId", fields[0]), signature)


def _parse_legacy(data: bytes, *, signed: bool) -> _ParsedTx:
    items = rlp_decode(data)
    if not isinstance(items, list):  # pragma: no cover - a 0xc0+ prefix always decodes a list
        raise ValueError("legacy transaction must be an RLP list")
    if len(items) not in (6, 9) or (signed and len(items) != 9):
        raise ValueError(f"legacy transaction has {len(items)} fields")
    fields = items[:6]
    _check_tx_fields(0, _LEGACY_FIELDS, fields)
    if len(items) == 6:
        return _ParsedTx(0, fields, None, None)
    v = _rlp_int("v", items[6])
    r = _rlp_int("r", items[7])
    s = _rlp_int("s", items[8])
    if not signed:
        if r or s:
            raise ValueError("legacy transaction is already signed (r and s are set)")
        if v == 0:
            raise ValueError("EIP-155 unsigned legacy transaction needs a non-zero chainId")
        return _ParsedTx(0, fields, v, None)
    if v in (27, 28):
        return _ParsedTx(0, fields, None, (v - 27, r, s))
    if v >= 35:
        return _ParsedTx(0, fields, (v - 35) // 2, ((v - 35) % 2, r, s))
    raise ValueError(f"legacy transaction has an invalid v value {v}")


def _signing_preimage(tx: _ParsedTx) -> bytes:
    if tx.tx_type != 0:
        return bytes([tx.tx_type]) + rlp_encode(tx.fields)
    if tx.chain_id is None:
        return rlp_encode(tx.fields)
    return rlp_encode([*tx.fields, tx.chain_id, b"", b""])


def evm_transaction_signing_hash(unsigned: bytes) -> bytes:
    """Keccak-256 digest a key signs for an unsigned serialized EVM transaction.

    Legacy (pre-EIP-155 with six fields, EIP-155 with ``chainId, 0, 0`` appended) and
    typed transactions 0x01 (EIP-2930), 0x02 (EIP-1559) and 0x04 (EIP-7702).
    """
    return keccak256(_signing_preimage(_parse_transaction(unsigned, signed=False)))


def evm_signed_transaction(unsigned: bytes, sig: EcdsaSignature) -> bytes:
    """Serialize the signed transaction from its unsigned form and a signature over it."""
    tx = _parse_transaction(unsigned, signed=False)
    if sig.recid not in (0, 1):
        raise ValueError("an EVM signature needs recid 0 or 1")
    if tx.tx_type != 0:
        return bytes([tx.tx_type]) + rlp_encode([*tx.fields, sig.recid, sig.r, sig.s])
    v = 27 + sig.recid if tx.chain_id is None else tx.chain_id * 2 + 35 + sig.recid
    return rlp_encode([*tx.fields, v, sig.r, sig.s])


def evm_transaction_sender(signed: bytes) -> str:
    """EIP-55 address that signed a serialized signed EVM transaction."""
    tx = _parse_transaction(signed, signed=True)
    if tx.signature is None:  # pragma: no cover - signed parsing always sets it
        raise ValueError("transaction carries no signature")
    recid, r, s = tx.signature
    digest = keccak256(_signing_preimage(tx))
    return evm_address(ecdsa_recover(digest, r, s, recid, compressed=False))


def evm_transaction_summary(unsigned: bytes) -> EvmTransactionSummary:
    """Type, chain id, nonce, recipient, value, gas limit and calldata of an unsigned tx."""
    tx = _parse_transaction(unsigned, signed=False)
    names = _LEGACY_FIELDS if tx.tx_type == 0 else _TYPED_FIELDS[tx.tx_type]
    by_name = dict(zip(names, tx.fields, strict=True))
    to = _rlp_bytes("to", by_name["to"])
    return EvmTransactionSummary(
        type=tx.tx_type,
        chain_id=tx.chain_id,
        nonce=_rlp_int("nonce", by_name["nonce"]),
        to=evm_checksum_address(to) if to else None,
        value=_rlp_int("value", by_name["value"]),
        gas_limit=_rlp_int("gasLimit", by_name["gasLimit"]),
        data="0x" + _rlp_bytes("data", by_name["data"]).hex(),
    )
