"""Every scheme signgate verifies refuses a tampered signature, its malleated twin, and
a signature by another key.

The signatures are made by an implementation that is not the code under test: secp256k1
ones by ``reference.py`` (pure Python), Ed25519 ones by ``cryptography`` directly. Each case
first shows the genuine signature verifies, so a refusal is the check's doing and not a
broken fixture. The checks go through ``activities.verification.verify_signature``, the
function the engine runs on every signed request. P-256 keys are not verified by signgate
(they come back ``unverifiable``), so they have no case here.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activities.verification import PublicKeyInfo, verify_signature
from signgate import crypto
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus
from signgate.dfns.requests import (
    Eip712Request,
    HashRequest,
    MessageRequest,
    SignatureRequestBody,
    TransactionRequest,
    to_wire,
)
from tests.unit.crypto import reference as ref

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"
N = ref.SECP256K1_N
ED25519_L = 2**252 + 27742317777372353535851937790883648493
SECRET = hashlib.sha256(b"refusal test key").digest()
OTHER = hashlib.sha256(b"somebody else").digest()
DIGEST = hashlib.sha256(b"pay 10 to carol").digest()
# One bit in each half of the signature, at both ends of each scalar.
BITS = (0, 7, 255, 256, 263, 511)


def _h(data: bytes) -> str:
    return "0x" + data.hex()


def _view(signature: Signature) -> SignatureRequestView:
    return SignatureRequestView(
        generation="keys",
        id="sig-1",
        key_id="key-1",
        status=SignatureStatus.SIGNED,
        raw_status="Signed",
        signature=signature,
    )


def _flip(sig64: bytes, bit: int) -> bytes:
    data = bytearray(sig64)
    data[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(data)


@dataclass(frozen=True)
class Scheme:
    """A key, a request, and how to sign and present a signature for it."""

    key: PublicKeyInfo
    request: SignatureRequestBody
    # (secret) -> the 64-byte signature and, for ECDSA, the recovery id
    sign: Callable[[bytes], tuple[bytes, int | None]]
    digest: bytes | None = None  # what an ECDSA signature signs
    evm: bool = False
    with_recid: bool = True

    def signature(self, sig64: bytes, recid: int | None) -> Signature:
        encoded = None
        if self.evm and recid in (0, 1):
            assert recid is not None
            encoded = _h(sig64 + bytes([27 + recid]))
        return Signature(
            r=_h(sig64[:32]),
            s=_h(sig64[32:]),
            recid=recid if self.with_recid else None,
            encoded=encoded,
        )

    def verdict(self, sig64: bytes, recid: int | None) -> str:
        result = verify_signature(self.key, self.request, _view(self.signature(sig64, recid)))
        return result.status


def _ecdsa(
    key: PublicKeyInfo, request: SignatureRequestBody, digest: bytes, **options: bool
) -> Scheme:
    def sign(secret: bytes) -> tuple[bytes, int | None]:
        r, s, recid = ref.ecdsa_sign(secret, digest)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big"), recid

    return Scheme(key, request, sign, digest, **options)


def _schnorr_signer(
    merkle_root: bytes | None, tweak: bool
) -> Callable[[bytes], tuple[bytes, int | None]]:
    def sign(secret: bytes) -> tuple[bytes, int | None]:
        signing = ref.taproot_tweak_secret(secret, merkle_root) if tweak else secret
        return ref.schnorr_sign(signing, DIGEST, b"\x00" * 32), None

    return sign


def _ed25519_signer(message: bytes) -> Callable[[bytes], tuple[bytes, int | None]]:
    def sign(secret: bytes) -> tuple[bytes, int | None]:
        return Ed25519PrivateKey.from_private_bytes(secret).sign(message), None

    return sign


def _ecdsa_key(network: str | None = None) -> PublicKeyInfo:
    return PublicKeyInfo("key-1", "ECDSA", "secp256k1", ref.secp256k1_public_key(SECRET), network)


def _eip712_request() -> Eip712Request:
    typed = json.loads((VECTORS / "eip712-ether-mail.json").read_text())["typedData"]
    body = copy.deepcopy(typed)  # Dfns's shape: no primaryType, no EIP712Domain entry
    del body["primaryType"]
    del body["types"]["EIP712Domain"]
    return Eip712Request.model_validate(body)


# The unsigned EIP-1559 transaction of Dfns's "Transaction" request example.
UNSIGNED_TX = bytes.fromhex(
    "02e783aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c0"
)


def _schemes() -> dict[str, Scheme]:
    message = b"I approve payout 42"
    eip712 = _eip712_request()
    eip712_digest = crypto.eip712_hash(to_wire(eip712))
    schnorr_key = PublicKeyInfo("key-1", "Schnorr", "secp256k1", ref.secp256k1_public_key(SECRET))
    ed_public = Ed25519PrivateKey.from_private_bytes(SECRET).public_key().public_bytes_raw()
    ed_key = PublicKeyInfo("key-1", "EdDSA", "ed25519", ed_public)
    hash_request = HashRequest(hash=_h(DIGEST))
    return {
        "ecdsa-hash (recovery)": _ecdsa(_ecdsa_key(), hash_request, DIGEST),
        "ecdsa-hash (no recid)": _ecdsa(_ecdsa_key(), hash_request, DIGEST, with_recid=False),
        "eip191": _ecdsa(
            _ecdsa_key("Ethereum"),
            MessageRequest(message=_h(message)),
            crypto.eip191_hash(message),
            evm=True,
        ),
        "eip712": _ecdsa(_ecdsa_key("Ethereum"), eip712, eip712_digest, evm=True),
        "evm-transaction": _ecdsa(
            _ecdsa_key("EthereumSepolia"),
            TransactionRequest(transaction=_h(UNSIGNED_TX)),
            crypto.evm_transaction_signing_hash(UNSIGNED_TX),
            evm=True,
        ),
        "bip340 (untweaked)": Scheme(schnorr_key, hash_request, _schnorr_signer(None, False)),
        "bip341 key-path tweak": Scheme(
            schnorr_key,
            HashRequest(hash=_h(DIGEST), taproot_merkle_root=""),
            _schnorr_signer(None, True),
        ),
        "bip341 script-tree tweak": Scheme(
            schnorr_key,
            HashRequest(hash=_h(DIGEST), taproot_merkle_root="0x" + "5a" * 32),
            _schnorr_signer(b"\x5a" * 32, True),
        ),
        "ed25519-hash": Scheme(ed_key, hash_request, _ed25519_signer(DIGEST)),
        "ed25519-message": Scheme(
            ed_key, MessageRequest(message=_h(message)), _ed25519_signer(message)
        ),
    }


SCHEMES = _schemes()


def _twin(name: str, sig64: bytes, recid: int | None) -> tuple[bytes, int | None]:
    """The signature's malleated twin: valid mathematically, refused by policy."""
    r, s = sig64[:32], int.from_bytes(sig64[32:], "big")
    if recid is not None:
        return r + (N - s).to_bytes(32, "big"), recid ^ 1  # the high-s twin
    if name.startswith("ed25519"):
        s_le = int.from_bytes(sig64[32:], "little")
        return sig64[:32] + (s_le + ED25519_L).to_bytes(32, "little"), None  # S + L
    # BIP-340 has no twin that verifies (s is fixed by R's even y); -s is the nearest thing.
    return r + (N - s).to_bytes(32, "big"), None


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_the_genuine_signature_verifies(name: str) -> None:
    scheme = SCHEMES[name]
    assert scheme.verdict(*scheme.sign(SECRET)) == "verified"


@pytest.mark.parametrize("bit", BITS)
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_one_flipped_bit_is_refused(name: str, bit: int) -> None:
    scheme = SCHEMES[name]
    sig64, recid = scheme.sign(SECRET)
    assert scheme.verdict(_flip(sig64, bit), recid) == "invalid"


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_the_malleated_twin_is_refused(name: str) -> None:
    scheme = SCHEMES[name]
    sig64, recid = scheme.sign(SECRET)
    twin, twin_recid = _twin(name, sig64, recid)
    if scheme.digest is not None:
        # The ECDSA twin is a real signature over the same digest by the same key...
        r, s = int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:], "big")
        assert ref.ecdsa_verify(scheme.key.public_key, scheme.digest, r, s, allow_high_s=True)
        # ...which signgate refuses for being high-s.
        view = _view(scheme.signature(twin, twin_recid))
        result = verify_signature(scheme.key, scheme.request, view)
        assert result.status == "invalid" and "high-s" in result.detail
    else:
        assert scheme.verdict(twin, twin_recid) == "invalid"


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_a_signature_by_another_key_is_refused(name: str) -> None:
    scheme = SCHEMES[name]
    assert scheme.verdict(*scheme.sign(OTHER)) == "invalid"


def test_recovery_ids_are_checked_too() -> None:
    scheme = SCHEMES["ecdsa-hash (recovery)"]
    sig64, recid = scheme.sign(SECRET)
    assert recid is not None
    assert scheme.verdict(sig64, recid ^ 1) == "invalid"
    assert scheme.verdict(sig64, recid | 2) == "invalid"
