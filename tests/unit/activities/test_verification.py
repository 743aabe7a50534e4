"""activities.verification: real signatures, made here with signgate.crypto, checked."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.payout import serialize_eip1559
from activities.verification import PublicKeyInfo, VerificationActivities, verify_signature
from signgate import crypto
from signgate.contracts import (
    BuildTransferInput,
    ReadAndVerifyInput,
    SigningTarget,
    VerifyCarriedInput,
)
from signgate.dfns.client import DfnsClient
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus
from signgate.dfns.requests import (
    Eip712Request,
    HashRequest,
    MessageRequest,
    PsbtRequest,
    SignatureRequestBody,
    TransactionRequest,
    to_wire,
)

SECRET = hashlib.sha256(b"signgate test key").digest()
OTHER = hashlib.sha256(b"another key").digest()
DIGEST = hashlib.sha256(b"pay 10").digest()


def _h(data: bytes) -> str:
    return "0x" + data.hex()


def _view(signature: Signature | None, **extra: Any) -> SignatureRequestView:
    return SignatureRequestView(
        generation="keys",
        id="sig-1",
        key_id=extra.pop("key_id", "key-1"),
        status=SignatureStatus.SIGNED,
        raw_status="Signed",
        signature=signature,
        **extra,
    )


def _ecdsa_key(secret: bytes = SECRET, network: str | None = None) -> PublicKeyInfo:
    return PublicKeyInfo(
        "key-1", "ECDSA", "secp256k1", crypto.secp256k1_public_key(secret), network
    )


def _ecdsa(digest: bytes, secret: bytes = SECRET, *, evm: bool = False) -> Signature:
    sig = crypto.ecdsa_sign(secret, digest)
    encoded = _h(crypto.encoded_evm_signature(sig)) if evm else None
    return Signature(
        r=_h(sig.r.to_bytes(32, "big")),
        s=_h(sig.s.to_bytes(32, "big")),
        recid=sig.recid,
        encoded=encoded,
    )


def _check(key: PublicKeyInfo, request: SignatureRequestBody, view: SignatureRequestView) -> Any:
    return verify_signature(key, request, view)


def test_ecdsa_hash_recovers_to_the_key() -> None:
    result = _check(_ecdsa_key(), HashRequest(hash=_h(DIGEST)), _view(_ecdsa(DIGEST)))
    assert result.status == "verified" and result.method == "ecdsa-secp256k1/hash"
    assert result.digest == DIGEST.hex()
    assert result.public_key == crypto.secp256k1_public_key(SECRET).hex()


def test_ecdsa_by_another_key_or_over_another_hash_is_invalid() -> None:
    request = HashRequest(hash=_h(DIGEST))
    other_key = _check(_ecdsa_key(), request, _view(_ecdsa(DIGEST, OTHER)))
    assert other_key.status == "invalid" and "another public key" in other_key.detail
    other_hash = _check(_ecdsa_key(), request, _view(_ecdsa(hashlib.sha256(b"x").digest())))
    assert other_hash.status == "invalid"


def test_ecdsa_high_s_is_refused() -> None:
    sig = crypto.ecdsa_sign(SECRET, DIGEST)
    high = Signature(
        r=_h(sig.r.to_bytes(32, "big")),
        s=_h((crypto.SECP256K1_N - sig.s).to_bytes(32, "big")),
        recid=sig.recid ^ 1,
    )
    result = _check(_ecdsa_key(), HashRequest(hash=_h(DIGEST)), _view(high))
    assert result.status == "invalid" and "high-s" in result.detail


def test_ecdsa_without_recid_is_checked_by_verification() -> None:
    good = _ecdsa(DIGEST).model_copy(update={"recid": None})
    assert _check(_ecdsa_key(), HashRequest(hash=_h(DIGEST)), _view(good)).status == "verified"
    bad = _ecdsa(DIGEST, OTHER).model_copy(update={"recid": None})
    assert _check(_ecdsa_key(), HashRequest(hash=_h(DIGEST)), _view(bad)).status == "invalid"


def test_evm_message_is_eip191_and_encoded_must_match() -> None:
    message = b"I agree"
    key = _ecdsa_key(network="EthereumSepolia")
    request = MessageRequest(message=_h(message))
    signature = _ecdsa(crypto.eip191_hash(message), evm=True)
    result = _check(key, request, _view(signature))
    assert result.status == "verified" and result.method == "ecdsa-secp256k1/eip191"
    wrong_v = signature.model_copy(update={"encoded": signature.encoded[:-2] + "1f"})  # type: ignore[index]
    assert _check(key, request, _view(wrong_v)).status == "invalid"


def test_a_message_on_a_non_evm_ecdsa_key_is_unverifiable() -> None:
    result = _check(_ecdsa_key(), MessageRequest(message="0x00"), _view(_ecdsa(DIGEST)))
    assert result.status == "unverifiable" and "non-EVM" in result.detail


def test_eip712_digest_is_recomputed_from_the_request() -> None:
    request = Eip712Request.model_validate(
        {
            "types": {"Mail": [{"name": "contents", "type": "string"}]},
            "domain": {"name": "signgate", "chainId": 1},
            "message": {"contents": "hello"},
        }
    )
    digest = crypto.eip712_hash(to_wire(request))
    result = _check(_ecdsa_key(), request, _view(_ecdsa(digest, evm=True)))
    assert result.status == "verified" and result.method == "ecdsa-secp256k1/eip712"
    other = request.model_copy(update={"message": {"contents": "HELLO"}})
    assert _check(_ecdsa_key(), other, _view(_ecdsa(digest, evm=True))).status == "invalid"


def _transaction(nonce: int = 1) -> bytes:
    return serialize_eip1559(
        BuildTransferInput(
            chain_id=11155111,
            nonce=nonce,
            to="0x" + "ab" * 20,
            value_wei=1,
            max_fee_per_gas=2,
            max_priority_fee_per_gas=1,
        )
    )


def test_an_evm_transaction_and_its_signed_data() -> None:
    unsigned = _transaction()
    digest = crypto.evm_transaction_signing_hash(unsigned)
    sig = crypto.ecdsa_sign(SECRET, digest)
    signature = _ecdsa(digest, evm=True)
    signed = crypto.evm_signed_transaction(unsigned, sig)
    key = _ecdsa_key(network="EthereumSepolia")
    request = TransactionRequest(transaction=_h(unsigned))
    result = _check(key, request, _view(signature, signed_data=_h(signed)))
    assert result.status == "verified" and result.method == "ecdsa-secp256k1/evm-tx"
    other_tx = crypto.evm_signed_transaction(_transaction(nonce=2), sig)
    mismatch = _check(key, request, _view(signature, signed_data=_h(other_tx)))
    assert mismatch.status == "invalid" and "signedData" in mismatch.detail
    non_evm = _check(_ecdsa_key(), request, _view(signature))
    assert non_evm.status == "unverifiable"


def test_ed25519_hash_and_message() -> None:
    key = PublicKeyInfo("key-1", "EdDSA", "ed25519", crypto.ed25519_public_key(SECRET))
    message = b"any length message " * 9
    sig = crypto.ed25519_sign(SECRET, message)
    signature = Signature(r=_h(sig[:32]), s=_h(sig[32:]))
    result = _check(key, MessageRequest(message=_h(message)), _view(signature))
    assert result.status == "verified" and result.method == "ed25519/message"
    sig_hash = crypto.ed25519_sign(SECRET, DIGEST)
    hash_signature = Signature(r=_h(sig_hash[:32]), s=_h(sig_hash[32:]))
    assert _check(key, HashRequest(hash=_h(DIGEST)), _view(hash_signature)).status == "verified"
    tampered = Signature(r=_h(sig[:32]), s=_h(bytes([sig[32] ^ 1]) + sig[33:]))
    assert _check(key, MessageRequest(message=_h(message)), _view(tampered)).status == "invalid"


@pytest.mark.parametrize("root", ["", "0x" + "77" * 32])
def test_schnorr_against_the_taproot_tweaked_key(root: str) -> None:
    merkle = bytes.fromhex(root[2:]) if root else None
    tweaked = crypto.taproot_tweak_secret(SECRET, merkle)
    sig = crypto.schnorr_sign(tweaked, DIGEST)
    signature = Signature(r=_h(sig[:32]), s=_h(sig[32:]))
    key = PublicKeyInfo("key-1", "Schnorr", "secp256k1", crypto.secp256k1_public_key(SECRET))
    request = HashRequest(hash=_h(DIGEST), taproot_merkle_root=root)
    result = _check(key, request, _view(signature))
    assert result.status == "verified" and result.method == "bip340/taproot-tweaked"
    other_root = HashRequest(hash=_h(DIGEST), taproot_merkle_root="0x" + "01" * 32)
    assert _check(key, other_root, _view(signature)).status == "invalid"


def test_schnorr_without_a_root_is_plain_bip340() -> None:
    sig = crypto.schnorr_sign(SECRET, DIGEST)
    key = PublicKeyInfo("key-1", "Schnorr", "secp256k1", crypto.secp256k1_public_key(SECRET))
    signature = Signature(r=_h(sig[:32]), s=_h(sig[32:]))
    result = _check(key, HashRequest(hash=_h(DIGEST)), _view(signature))
    assert result.status == "verified" and result.method == "bip340/untweaked"


def test_what_cannot_be_checked_is_said_so() -> None:
    psbt = _check(_ecdsa_key(), PsbtRequest(psbt="0x70736274ff"), _view(_ecdsa(DIGEST)))
    assert psbt.status == "unverifiable" and "Psbt" in psbt.detail
    many = _check(
        _ecdsa_key(), PsbtRequest(psbt="0x70736274ff"), _view(None, signatures=[_ecdsa(DIGEST)] * 2)
    )
    assert many.status == "unverifiable"


def test_missing_signature_malformed_hex_or_another_key_id_are_invalid() -> None:
    request = HashRequest(hash=_h(DIGEST))
    assert _check(_ecdsa_key(), request, _view(None)).status == "invalid"
    malformed = Signature(r="0xzz", s="0x01", recid=0)
    assert _check(_ecdsa_key(), request, _view(malformed)).status == "invalid"
    other_key = _check(_ecdsa_key(), request, _view(_ecdsa(DIGEST), key_id="key-2"))
    assert other_key.status == "invalid" and "key-2" in other_key.detail


def _dfns(routes: dict[str, dict[str, Any]]) -> DfnsClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(200, content=json.dumps(body))

    http = httpx.AsyncClient(base_url="https://dfns.test", transport=httpx.MockTransport(handler))
    return DfnsClient(http, auth_token="token-for-tests")


async def test_the_public_key_comes_from_dfns_for_every_target() -> None:
    ecdsa = crypto.secp256k1_public_key(SECRET).hex()
    ed = crypto.ed25519_public_key(SECRET).hex()
    activities = VerificationActivities(
        _dfns(
            {
                "/keys/key-1": {
                    "id": "key-1",
                    "scheme": "ECDSA",
                    "curve": "secp256k1",
                    "publicKey": ecdsa,
                    "status": "Active",
                },
                "/wallets/wa-1": {
                    "id": "wa-1",
                    "network": "Solana",
                    "status": "Active",
                    "signingKey": {
                        "id": "key-2",
                        "scheme": "EdDSA",
                        "curve": "ed25519",
                        "publicKey": ed,
                    },
                },
                "/public-keys/pk-1": {"id": "pk-1", "publicKey": ed, "isEddsa": True},
            }
        )
    )
    key = await activities.public_key(SigningTarget(kind="key", id="key-1"))
    assert (key.key_id, key.scheme, key.public_key.hex()) == ("key-1", "ECDSA", ecdsa)
    wallet = await activities.public_key(SigningTarget(kind="wallet", id="wa-1"))
    assert (wallet.key_id, wallet.scheme, wallet.network) == ("key-2", "EdDSA", "Solana")
    legacy = await activities.public_key(SigningTarget(kind="public-key", id="pk-1"))
    assert (legacy.scheme, legacy.curve) == ("EdDSA", "ed25519")


def _signature_request(status: str, signature: Signature | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "sig-1",
        "keyId": "key-1",
        "requester": {"userId": "us-1"},
        "requestBody": {"kind": "Hash", "hash": _h(DIGEST)},
        "status": status,
        "dateRequested": "2026-11-21T10:00:00Z",
    }
    if signature is not None:
        body["signature"] = {"r": signature.r, "s": signature.s, "recid": signature.recid}
    return body


_KEY_ROUTE = {
    "id": "key-1",
    "scheme": "ECDSA",
    "curve": "secp256k1",
    "publicKey": crypto.secp256k1_public_key(SECRET).hex(),
    "status": "Active",
}


def _read_input(verify: bool = True) -> ReadAndVerifyInput:
    return ReadAndVerifyInput(
        target=SigningTarget(kind="key", id="key-1"),
        signature_id="sig-1",
        request=HashRequest(hash=_h(DIGEST)),
        verify=verify,
    )


async def test_read_and_verify_checks_a_signed_read_in_the_same_activity() -> None:
    signed = _signature_request("Signed", _ecdsa(DIGEST))
    activities = VerificationActivities(
        _dfns({"/keys/key-1/signatures/sig-1": signed, "/keys/key-1": _KEY_ROUTE})
    )
    read = await activities.read_and_verify(_read_input())
    assert read.view.status is SignatureStatus.SIGNED
    assert read.view.request_body == {}, "the echoed body stays out of history"
    assert read.verification is not None and read.verification.status == "verified"

    # Once the workflow holds a verification, later reads only read.
    again = await activities.read_and_verify(_read_input(verify=False))
    assert again.view.status is SignatureStatus.SIGNED and again.verification is None


async def test_read_and_verify_refuses_a_signature_by_another_key() -> None:
    forged = _signature_request("Signed", _ecdsa(DIGEST, OTHER))
    activities = VerificationActivities(
        _dfns({"/keys/key-1/signatures/sig-1": forged, "/keys/key-1": _KEY_ROUTE})
    )
    read = await activities.read_and_verify(_read_input())
    assert read.verification is not None and read.verification.status == "invalid"


async def test_read_and_verify_leaves_a_pending_read_or_an_unreadable_key_unverified() -> None:
    pending = VerificationActivities(
        _dfns({"/keys/key-1/signatures/sig-1": _signature_request("Pending", None)})
    )
    read = await pending.read_and_verify(_read_input())
    assert read.view.status is SignatureStatus.PENDING and read.verification is None

    # The key cannot be read (404 here): the read stands, the workflow verifies later.
    no_key = VerificationActivities(
        _dfns({"/keys/key-1/signatures/sig-1": _signature_request("Signed", _ecdsa(DIGEST))})
    )
    read = await no_key.read_and_verify(_read_input())
    assert read.view.status is SignatureStatus.SIGNED and read.verification is None


async def test_read_and_verify_fails_when_the_read_fails() -> None:
    activities = VerificationActivities(_dfns({}))
    with pytest.raises(ApplicationError) as caught:
        await activities.read_and_verify(_read_input())
    assert "fetch sig-1" in caught.value.message


def _counting_dfns(routes: dict[str, dict[str, Any]]) -> tuple[DfnsClient, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(200, content=json.dumps(body))

    http = httpx.AsyncClient(base_url="https://dfns.test", transport=httpx.MockTransport(handler))
    return DfnsClient(http, auth_token="token-for-tests"), seen


def _carried_input(signature: Signature, *, read_key: bool) -> VerifyCarriedInput:
    return VerifyCarriedInput(
        target=SigningTarget(kind="key", id="key-1"),
        request=HashRequest(hash=_h(DIGEST)),
        snapshot=_view(signature),
        read_key=read_key,
    )


async def test_verify_carried_makes_no_dfns_call_unless_allowed_to_read_the_key() -> None:
    dfns, seen = _counting_dfns({"/keys/key-1": _KEY_ROUTE})
    activities = VerificationActivities(dfns)
    # No key held and no read allowed (a budgeted worker): unverifiable, nothing sent.
    cold = await activities.verify_carried(_carried_input(_ecdsa(DIGEST), read_key=False))
    assert cold.status == "unverifiable" and "holds no public key" in cold.detail
    assert seen == []
    # Allowed: one read of the key, then the copy is checked against it.
    warm = await activities.verify_carried(_carried_input(_ecdsa(DIGEST), read_key=True))
    assert warm.status == "verified"
    assert seen == ["/keys/key-1"]
    # Held from now on: no call either way.
    again = await activities.verify_carried(_carried_input(_ecdsa(DIGEST), read_key=False))
    assert again.status == "verified"
    assert seen == ["/keys/key-1"]


async def test_verify_carried_refuses_a_copy_signed_by_another_key_or_altered() -> None:
    dfns, _ = _counting_dfns({"/keys/key-1": _KEY_ROUTE})
    activities = VerificationActivities(dfns)
    other = await activities.verify_carried(_carried_input(_ecdsa(DIGEST, OTHER), read_key=True))
    assert other.status == "invalid"
    good = _ecdsa(DIGEST)
    flipped = format(int(good.s, 16) ^ 1, "064x")
    altered = await activities.verify_carried(
        _carried_input(good.model_copy(update={"s": "0x" + flipped}), read_key=True)
    )
    assert altered.status == "invalid"


async def test_verify_carried_says_unverifiable_when_the_key_cannot_be_read() -> None:
    dfns, seen = _counting_dfns({})
    activities = VerificationActivities(dfns)
    result = await activities.verify_carried(_carried_input(_ecdsa(DIGEST), read_key=True))
    assert result.status == "unverifiable" and "key-1" in result.detail
    assert seen == ["/keys/key-1"]
