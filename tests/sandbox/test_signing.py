"""Keys, wallets and signature requests over HTTP; every signature is checked with
code other than the sandbox's: the pure-Python secp256k1 reference under tests/unit/crypto
(the sandbox signs with libsecp256k1), cryptography and pycryptodome's Keccak."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

import pytest
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator

from tests.sandbox.helpers import Dfns, recover
from tests.support import vectors
from tests.unit.crypto import reference

HASH = "0x" + hashlib.sha256(b"signgate").hexdigest()
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# EIP-712's own example ("Ether Mail"): its digest is published.
MAIL_TYPED_DATA, MAIL_DIGEST = vectors.ether_mail()


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def rlp(item: Any) -> bytes:
    """Minimal RLP encoder for the test's own transactions."""
    if isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_prefix(len(item), 0x80) + item
    payload = b"".join(rlp(x) for x in item)
    return _rlp_prefix(len(payload), 0xC0) + payload


def _rlp_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


def unhex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def schema_validator(name: str) -> Draft202012Validator:
    text = resources.files("signgate.sandbox").joinpath("schemas", f"{name}.json").read_text()
    return Draft202012Validator(json.loads(text))


def assert_valid(name: str, instance: Any) -> None:
    errors = [e.message for e in schema_validator(name).iter_errors(instance)]
    assert errors == [], errors


def signed(dfns: Dfns, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = dfns.sign(key, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["status"] == "Signed", result
    assert_valid("signature-request", result)
    return result


# --- keys and wallets --------------------------------------------------------------------


def test_keys_and_wallets_in_dfns_shapes(dfns: Dfns) -> None:
    listed = dfns.get("/keys").json()
    assert_valid("list-keys.response", listed)
    schemes = {(k["scheme"], k["curve"]) for k in listed["items"]}
    assert schemes == {("ECDSA", "secp256k1"), ("EdDSA", "ed25519"), ("Schnorr", "secp256k1")}
    key = dfns.get(f"/keys/{dfns.key_id('evm')}").json()
    assert_valid("key", key)
    assert key["wallets"] == [{"id": dfns.wallet_id("evm"), "network": "EthereumSepolia"}]
    wallets = dfns.get("/wallets").json()
    assert_valid("list-wallets.response", wallets)
    wallet = dfns.get(f"/wallets/{dfns.wallet_id('evm')}").json()
    assert_valid("wallet", wallet)
    assert wallet["tags"] == ["treasury"]
    # The EVM address is keccak of the uncompressed public key, last 20 bytes.
    point = reference.secp256k1_normalize_public_key(unhex(key["publicKey"]), compressed=False)
    assert wallet["address"] == "0x" + keccak256(point[1:])[12:].hex()
    solana = dfns.get(f"/wallets/{dfns.wallet_id('ed')}").json()
    assert solana["network"] == "Solana" and len(solana["address"]) in (43, 44)
    taproot = dfns.get(f"/wallets/{dfns.wallet_id('taproot')}").json()
    internal = reference.secp256k1_normalize_public_key(unhex(dfns.key("taproot")["publicKey"]))[1:]
    output, _parity = reference.taproot_tweak_public_key(internal, b"")
    assert taproot["address"] == bech32m_address("tb", output)
    missing = dfns.get("/keys/key-xxxxx-xxxxx-xxxxxxxxxxxxxxxx")
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == 404


def test_key_list_pagination(dfns: Dfns) -> None:
    first = dfns.get("/keys", limit="2").json()
    assert len(first["items"]) == 2 and "nextPageToken" in first
    second = dfns.get("/keys", limit="2", paginationToken=first["nextPageToken"]).json()
    assert len(second["items"]) == 1 and "nextPageToken" not in second
    assert dfns.get("/keys", limit="x").status_code == 400


# --- ECDSA -------------------------------------------------------------------------------


def test_ecdsa_hash_raw_key(dfns: Dfns) -> None:
    result = signed(dfns, "evm", {"kind": "Hash", "hash": HASH})
    signature = result["signature"]
    assert set(signature) == {"r", "s", "recid"}
    assert int(signature["s"], 16) <= SECP256K1_N // 2
    assert recover(unhex(HASH), signature) == unhex(dfns.key("evm")["publicKey"])
    assert "network" not in result


def test_ecdsa_hash_is_deterministic_rfc6979(dfns: Dfns) -> None:
    first = signed(dfns, "evm", {"kind": "Hash", "hash": HASH})["signature"]
    second = signed(dfns, "evm", {"kind": "Hash", "hash": HASH})["signature"]
    assert first == second


def test_ecdsa_hash_evm_network_adds_encoded(dfns: Dfns) -> None:
    result = signed(dfns, "evm", {"kind": "Hash", "hash": HASH, "network": "EthereumSepolia"})
    signature = result["signature"]
    v = 27 + signature["recid"]
    assert signature["encoded"] == signature["r"] + signature["s"][2:] + f"{v:02x}"
    assert result["network"] == "EthereumSepolia"


def test_ecdsa_message_is_eip191(dfns: Dfns) -> None:
    message = b"hello sandbox"
    body = {"kind": "Message", "message": "0x" + message.hex(), "blockchainKind": "Evm"}
    signature = signed(dfns, "evm", body)["signature"]
    digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
    assert recover(digest, signature) == unhex(dfns.key("evm")["publicKey"])
    assert "encoded" in signature


def test_ecdsa_eip712_matches_the_eip_example_digest(dfns: Dfns) -> None:
    body = {"kind": "Eip712", **MAIL_TYPED_DATA}
    signature = signed(dfns, "evm", body)["signature"]
    assert recover(bytes.fromhex(MAIL_DIGEST), signature) == unhex(dfns.key("evm")["publicKey"])


def test_evm_transaction_signed_then_confirmed(dfns: Dfns) -> None:
    fields = [11155111, 7, 10**9, 2 * 10**9, 21000, b"\x11" * 20, 12345, b"", []]
    unsigned = b"\x02" + rlp(fields)
    body = {
        "kind": "Transaction",
        "transaction": "0x" + unsigned.hex(),
        "network": "EthereumSepolia",
    }
    result = signed(dfns, "evm", body)
    signature = result["signature"]
    digest = keccak256(unsigned)
    assert recover(digest, signature) == unhex(dfns.key("evm")["publicKey"])
    expected = b"\x02" + rlp(
        [*fields, signature["recid"], int(signature["r"], 16), int(signature["s"], 16)]
    )
    assert result["signedData"] == "0x" + expected.hex()
    dfns.advance(31)
    confirmed = dfns.signature("evm", result["id"])
    assert confirmed["status"] == "Confirmed"
    assert confirmed["txHash"] == "0x" + keccak256(expected).hex()
    assert confirmed["fee"] == str(21000 * 10**9)
    assert "dateConfirmed" in confirmed


# --- EdDSA and Schnorr ----------------------------------------------------------------------


def test_eddsa_hash_and_message(dfns: Dfns) -> None:
    public = Ed25519PublicKey.from_public_bytes(unhex(dfns.key("ed")["publicKey"]))
    hash_sig = signed(dfns, "ed", {"kind": "Hash", "hash": HASH})["signature"]
    assert set(hash_sig) == {"r", "s"}
    public.verify(unhex(hash_sig["r"]) + unhex(hash_sig["s"]), unhex(HASH))
    message = b"any length message \x00\x01"
    msg_sig = signed(dfns, "ed", {"kind": "Message", "message": "0x" + message.hex()})["signature"]
    public.verify(unhex(msg_sig["r"]) + unhex(msg_sig["s"]), message)


def bech32m_address(hrp: str, program: bytes) -> str:
    """BIP-350 segwit v1 address, written out here from the BIP's reference algorithm."""
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    data = [1]
    acc = bits = 0
    for byte in program:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data + [0] * 6
    chk = 1
    for value in values:
        top, chk = chk >> 25, (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= gen if (top >> i) & 1 else 0
    polymod = chk ^ 0x2BC830A3
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(charset[d] for d in data + checksum)


@pytest.mark.parametrize("root", ["", "0x" + "42" * 32])
def test_schnorr_hash_bip340_with_taproot_tweak(dfns: Dfns, root: str) -> None:
    body = {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": root}
    signature = signed(dfns, "taproot", body)["signature"]
    internal = reference.secp256k1_normalize_public_key(unhex(dfns.key("taproot")["publicKey"]))[1:]
    output, _parity = reference.taproot_tweak_public_key(internal, unhex(root))
    sig64 = unhex(signature["r"]) + unhex(signature["s"])
    assert reference.schnorr_verify(output, unhex(HASH), sig64)
    assert not reference.schnorr_verify(internal, unhex(HASH), sig64)


def test_schnorr_hash_needs_taproot_merkle_root(dfns: Dfns) -> None:
    response = dfns.sign("taproot", {"kind": "Hash", "hash": HASH})
    assert response.status_code == 400
    assert "taprootMerkleRoot" in response.json()["error"]["message"]
    assert "required" in response.json()["error"]["message"]
    assert "Schnorr" in response.json()["error"]["message"]


# --- refusals ---------------------------------------------------------------------------------


UNSUPPORTED: list[dict[str, Any]] = [
    {"kind": "Eip7702", "address": "0x" + "11" * 20, "nonce": 1, "chainId": 1},
    {"kind": "Psbt", "psbt": "0x70736274ff"},
    {"kind": "Bip322", "message": "0x49", "network": "BitcoinSignet"},
    {"kind": "PactCommand", "command": "{}"},
    {"kind": "SignDocDirect", "signDoc": "0x0a00"},
    {"kind": "SignerPayload", "payload": "0x00"},
    {"kind": "Cip8", "context": "Signature1", "payload": "0x00"},
]


@pytest.mark.parametrize("body", UNSUPPORTED, ids=[b["kind"] for b in UNSUPPORTED])
def test_unsupported_kinds_are_400_naming_the_kind(dfns: Dfns, body: dict[str, Any]) -> None:
    response = dfns.sign("evm", body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert f"'{body['kind']}'" in message and "not supported by the sandbox" in message


@pytest.mark.parametrize(
    ("key", "body", "fragment"),
    [
        ("evm", {"kind": "Hash", "hash": "0x12"}, "body.hash: '0x12' does not match"),
        ("evm", {"kind": "Hash", "hash": HASH, "colour": "red"}, "body.colour: is not allowed"),
        ("evm", {"kind": "Hashh", "hash": HASH}, "body.kind: 'Hashh' is not one of"),
        ("evm", {"kind": "Hash", "hash": HASH, "externalId": "x" * 51}, "body.externalId"),
        ("evm", {"kind": "Message", "message": "0x00"}, "EVM network"),
        ("ed", {"kind": "Eip712", **MAIL_TYPED_DATA}, "needs an ECDSA key"),
        ("evm", {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": ""}, "only to Schnorr"),
        ("evm", {"kind": "Transaction", "transaction": "0x02c0"}, "blockchainKind"),
        (
            "evm",
            {"kind": "Transaction", "transaction": "0x02c0", "blockchainKind": "Evm"},
            "body.transaction: not a valid unsigned EVM transaction",
        ),
    ],
)
def test_invalid_requests_name_the_field(
    dfns: Dfns, key: str, body: dict[str, Any], fragment: str
) -> None:
    response = dfns.sign(key, body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


# --- idempotency, reads, other generations ----------------------------------------------------


def test_external_id_idempotency(dfns: Dfns) -> None:
    body = {"kind": "Hash", "hash": HASH, "externalId": "wf-123"}
    first = dfns.sign("evm", body)
    again = dfns.sign("evm", body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    conflict = dfns.sign("evm", {**body, "hash": "0x" + "00" * 32})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["duplicate"] == {
        "id": first.json()["id"],
        "externalId": "wf-123",
    }
    other_key = dfns.sign("ed", body)
    assert other_key.status_code == 409
    listed = dfns.get(f"/keys/{dfns.key_id('evm')}/signatures").json()
    assert [item["id"] for item in listed["items"]] == [first.json()["id"]]


def test_list_and_get_signatures(dfns: Dfns) -> None:
    ids = [signed(dfns, "ed", {"kind": "Hash", "hash": HASH})["id"] for _ in range(3)]
    key_id = dfns.key_id("ed")
    page = dfns.get(f"/keys/{key_id}/signatures", limit="2").json()
    assert_valid("list-signatures.response", page)
    assert page["keyId"] == key_id
    assert [i["id"] for i in page["items"]] == ids[::-1][:2]
    rest = dfns.get(
        f"/keys/{key_id}/signatures", limit="2", paginationToken=page["nextPageToken"]
    ).json()
    assert [i["id"] for i in rest["items"]] == ids[:1] and "nextPageToken" not in rest
    assert dfns.signature("ed", ids[0])["id"] == ids[0]
    assert dfns.get(f"/keys/{dfns.key_id('evm')}/signatures/{ids[0]}").status_code == 404


def test_wallet_signatures_g2(dfns: Dfns) -> None:
    wallet_id = dfns.wallet_id("evm")
    path = f"/wallets/{wallet_id}/signatures"
    response = dfns.write("POST", path, {"kind": "Hash", "hash": HASH})
    assert response.status_code == 200, response.text
    result = response.json()
    assert_valid("wallet-signature-request", result)
    assert result["walletId"] == wallet_id and result["network"] == "EthereumSepolia"
    assert "encoded" in result["signature"]
    assert dfns.get(f"{path}/{result['id']}").json()["id"] == result["id"]
    listed = dfns.get(path).json()
    assert listed["walletId"] == wallet_id and listed["items"][0]["id"] == result["id"]
    assert dfns.signature("evm", result["id"])["walletId"] == wallet_id
    mismatch = dfns.write("POST", path, {"kind": "Hash", "hash": HASH, "network": "Ethereum"})
    assert mismatch.status_code == 400


def test_legacy_public_key_signatures_g1(dfns: Dfns) -> None:
    pk_id = dfns.public_key_id("legacy")
    public_key = dfns.get(f"/public-keys/{pk_id}").json()
    assert public_key["publicKey"] == dfns.key("evm")["publicKey"] and not public_key["isEddsa"]
    path = f"/public-keys/{pk_id}/signatures"
    created = dfns.write("POST", path, {"hash": HASH[2:]})
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "Pending"
    dfns.advance(6)
    executed = dfns.get(f"{path}/{created.json()['id']}").json()
    assert executed["status"] == "Executed"
    assert recover(unhex(HASH), executed) == unhex(public_key["publicKey"])
    assert [s["id"] for s in dfns.get(path).json()["items"]] == [executed["id"]]
    missing = dfns.get(f"{path}/sig-xxxxx-xxxxx-xxxxxxxxxxxxxxxx")
    assert missing.status_code == 404
    legacy_error = missing.json()
    assert legacy_error["httpStatus"] == 404 and legacy_error["errorName"] == "NotFound"
    assert "message" in legacy_error and "causes" in legacy_error


def test_taproot_helpers_match_the_bip86_vector() -> None:
    # BIP-86's first test vector (m/86'/0'/0'/0/0).
    internal = bytes.fromhex("cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115")
    output, _parity = reference.taproot_tweak_public_key(internal, b"")
    assert output.hex() == ("a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c")
    assert bech32m_address("bc", output) == (
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
    )
