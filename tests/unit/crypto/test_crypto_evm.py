"""EVM helpers in signgate.crypto: addresses, EIP-191, EIP-712, RLP and transactions."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from signgate import crypto
from signgate.crypto import (
    SECP256K1_N,
    EcdsaSignature,
    ecdsa_recover,
    ecdsa_sign,
    eip191_hash,
    eip712_hash,
    encoded_evm_signature,
    evm_address,
    evm_checksum_address,
    evm_signed_transaction,
    evm_transaction_sender,
    evm_transaction_signing_hash,
    evm_transaction_summary,
    keccak256,
    rlp_decode,
    rlp_encode,
    secp256k1_public_key,
)
from tests.unit.crypto import reference as ref

VECTORS = Path(__file__).resolve().parents[2] / "fixtures" / "vectors"
KEY_ONE = (1).to_bytes(32, "big")
SIGNER = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _minimal(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _word(value: int) -> bytes:
    return (value % 2**256).to_bytes(32, "big")


# --------------------------------------------------------------------------- addresses


def test_known_address_of_private_key_one() -> None:
    assert (
        evm_address(secp256k1_public_key(KEY_ONE)) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    )


def test_address_accepts_every_public_key_form() -> None:
    expected = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"  # web3.js docs
    uncompressed = secp256k1_public_key(SIGNER, compressed=False)
    assert evm_address(secp256k1_public_key(SIGNER)) == expected
    assert evm_address(uncompressed) == expected
    assert evm_address(uncompressed[1:]) == expected
    with pytest.raises(ValueError, match=r"33 .* or 65"):
        evm_address(uncompressed[:40])
    with pytest.raises(ValueError, match="not a valid"):
        evm_address(b"\x04" + b"\x00" * 64)


@pytest.mark.parametrize(
    "address",
    [  # the EIP-55 test addresses
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_eip55_checksums(address: str) -> None:
    assert evm_checksum_address(address.lower()) == address
    assert evm_checksum_address(address.upper().replace("0X", "0x")) == address
    assert evm_checksum_address(bytes.fromhex(address[2:])) == address


def test_checksum_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="40 hex digits"):
        evm_checksum_address("0x1234")
    with pytest.raises(ValueError, match="20 bytes"):
        evm_checksum_address(b"\x00" * 19)


# --------------------------------------------------------------------------- EIP-191


def test_eip191_known_vectors() -> None:
    vectors = _load("web3js-docs-examples.json")
    assert eip191_hash(b"Hello World").hex() == vectors["hashMessage"]["hash"]
    sign = vectors["sign"]
    secret = bytes.fromhex(sign["privateKey"])
    digest = eip191_hash(sign["message"].encode())
    assert digest.hex() == sign["messageHash"]
    assert encoded_evm_signature(ecdsa_sign(secret, digest)).hex() == sign["signature"]


def test_eip191_prefix_uses_decimal_length() -> None:
    message = b"x" * 123
    assert eip191_hash(message) == keccak256(b"\x19Ethereum Signed Message:\n123" + message)
    assert eip191_hash(b"") == keccak256(b"\x19Ethereum Signed Message:\n0")


def test_encoded_signature_round_trips_through_the_reference() -> None:
    digest = eip191_hash(b"signgate")
    sig = ecdsa_sign(SIGNER, digest)
    encoded = encoded_evm_signature(sig)
    assert len(encoded) == 65
    assert encoded[64] == 27 + sig.recid
    r, s = int.from_bytes(encoded[:32], "big"), int.from_bytes(encoded[32:64], "big")
    recovered = ref.ecdsa_recover(digest, r, s, encoded[64] - 27)
    assert evm_address(recovered) == evm_address(ref.secp256k1_public_key(SIGNER))
    with pytest.raises(ValueError, match="recid 0 or 1"):
        encoded_evm_signature(EcdsaSignature(sig.r, sig.s, 2))


# --------------------------------------------------------------------------- EIP-712


def test_ether_mail_explicit_form() -> None:
    vector = _load("eip712-ether-mail.json")
    typed, expected = vector["typedData"], vector["expected"]
    types = crypto._parse_types(typed["types"])
    assert crypto._encode_type("Mail", types) == expected["encodeTypeMail"]
    encoder = crypto._Eip712Encoder(types)
    assert encoder.type_hash("Mail").hex() == expected["typeHashMail"]
    assert encoder.hash_struct("Mail", typed["message"], "m").hex() == expected["structHashMessage"]
    assert (
        encoder.hash_struct("EIP712Domain", typed["domain"], "d").hex()
        == expected["domainSeparator"]
    )
    assert eip712_hash(typed).hex() == expected["digest"]


def test_ether_mail_signature_matches_the_eip() -> None:
    vector = _load("eip712-ether-mail.json")
    expected = vector["expected"]
    secret = keccak256(expected["signerPrivateKeyPreimage"].encode())
    assert evm_address(secp256k1_public_key(secret)).lower() == expected["signerAddress"]
    sig = ecdsa_sign(secret, eip712_hash(vector["typedData"]))
    assert (27 + sig.recid, sig.r, sig.s) == (
        expected["v"],
        int(expected["r"], 16),
        int(expected["s"], 16),
    )


def _dfns_shaped(typed: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(typed)
    del body["primaryType"]
    del body["types"]["EIP712Domain"]
    return body


def test_ether_mail_dfns_shape_infers_primary_type_and_domain() -> None:
    vector = _load("eip712-ether-mail.json")
    body = _dfns_shaped(vector["typedData"])
    assert eip712_hash(body).hex() == vector["expected"]["digest"]
    for chain_id in ("1", "0x1", "0x01"):
        body["domain"]["chainId"] = chain_id
        assert eip712_hash(body).hex() == vector["expected"]["digest"]
    body["domain"]["chainId"] = 5
    assert eip712_hash(body).hex() != vector["expected"]["digest"]


def test_ethers_eip712_type_hashes() -> None:
    vector = _load("eip712-ethers-eip712-cases.json")
    encoder = crypto._Eip712Encoder(crypto._parse_types(vector["typeHashes"]["types"]))
    for name, expected in vector["typeHashes"]["expected"].items():
        assert encoder.type_hash(name).hex() == expected


@pytest.mark.parametrize(
    "case", _load("eip712-ethers-eip712-cases.json")["cases"], ids=lambda c: str(c["name"])
)
def test_ethers_eip712_cases(case: dict[str, Any]) -> None:
    domain = _load("eip712-ethers-eip712-cases.json")["domain"]
    body = {"types": case["types"], "domain": domain, "message": case["message"]}
    assert eip712_hash({**body, "primaryType": case["primaryType"]}).hex() == case["digest"]
    if case["name"] == "mail-with-arrays":
        # Mail and Group are both unreferenced: inference must refuse to guess.
        with pytest.raises(ValueError, match=r"\['Group', 'Mail'\]"):
            eip712_hash(body)
    else:
        assert eip712_hash(body).hex() == case["digest"]


def test_ethers_eip712_array_intermediates() -> None:
    vector = _load("eip712-ethers-eip712-cases.json")
    case = next(c for c in vector["cases"] if c["name"] == "mail-with-arrays")
    encoder = crypto._Eip712Encoder(crypto._parse_types(case["types"]))
    expected = case["intermediate"]
    assert encoder.type_hash("Group").hex() == expected["typeHashGroup"]
    assert encoder.type_hash("Person").hex() == expected["typeHashPerson"]
    assert encoder.type_hash("Mail").hex() == expected["typeHashMail"]
    message = case["message"]
    assert encoder.hash_struct("Person", message["from"], "f").hex() == expected["structHashFrom"]
    assert encoder.hash_struct("Person", message["to"][0], "t").hex() == expected["structHashTo0"]
    assert encoder.hash_struct("Mail", message, "m").hex() == expected["structHashMessage"]


ATOMS_TYPES = {
    "Atoms": [
        {"name": "small", "type": "uint8"},
        {"name": "negative", "type": "int8"},
        {"name": "minusOne", "type": "int256"},
        {"name": "big", "type": "uint256"},
        {"name": "flag", "type": "bool"},
        {"name": "blob", "type": "bytes"},
        {"name": "tag", "type": "bytes3"},
        {"name": "who", "type": "address"},
        {"name": "text", "type": "string"},
        {"name": "pair", "type": "uint256[2]"},
        {"name": "words", "type": "string[]"},
        {"name": "grid", "type": "uint16[][2]"},
    ]
}
ATOMS_MESSAGE = {
    "small": "0xff",
    "negative": -128,
    "minusOne": "-1",
    "big": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
    "flag": True,
    "blob": "0x",
    "tag": "0x010203",
    "who": "0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826",
    "text": "zürich ✓",
    "pair": [1, "2"],
    "words": ["a", ""],
    "grid": [[1], []],
}


def test_atomic_types_and_arrays_follow_the_spec() -> None:
    # The expectation is assembled by hand from the EIP-712 encoding rules.
    domain = {"name": "Atoms", "salt": "0x" + "11" * 32}
    type_string = (
        "Atoms(uint8 small,int8 negative,int256 minusOne,uint256 big,bool flag,bytes blob,"
        "bytes3 tag,address who,string text,uint256[2] pair,string[] words,uint16[][2] grid)"
    )
    struct_hash = keccak256(
        keccak256(type_string.encode())
        + _word(255)
        + _word(-128)
        + _word(-1)
        + _word(2**256 - 1)
        + _word(1)
        + keccak256(b"")
        + b"\x01\x02\x03".ljust(32, b"\x00")
        + bytes.fromhex("cd2a3d9f938e13cd947ec05abc7fe734df8dd826").rjust(32, b"\x00")
        + keccak256("zürich ✓".encode())
        + keccak256(_word(1) + _word(2))
        + keccak256(keccak256(b"a") + keccak256(b""))
        + keccak256(keccak256(_word(1)) + keccak256(b""))
    )
    domain_hash = keccak256(
        keccak256(b"EIP712Domain(string name,bytes32 salt)") + keccak256(b"Atoms") + b"\x11" * 32
    )
    expected = keccak256(b"\x19\x01" + domain_hash + struct_hash)
    body = {"types": ATOMS_TYPES, "domain": domain, "message": ATOMS_MESSAGE}
    assert eip712_hash(body) == expected
    assert eip712_hash({**body, "primaryType": "Atoms"}) == expected


def test_domain_type_uses_present_fields_in_standard_order() -> None:
    body = {
        "types": {"Ping": [{"name": "n", "type": "uint256"}]},
        "domain": {
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
            "chainId": 10,
            "version": None,
        },
        "message": {"n": 7},
    }
    domain_hash = keccak256(
        keccak256(b"EIP712Domain(uint256 chainId,address verifyingContract)")
        + _word(10)
        + bytes.fromhex("cccccccccccccccccccccccccccccccccccccccc").rjust(32, b"\x00")
    )
    message_hash = keccak256(keccak256(b"Ping(uint256 n)") + _word(7))
    assert eip712_hash(body) == keccak256(b"\x19\x01" + domain_hash + message_hash)


def test_empty_domain_and_domain_only_digest() -> None:
    body = {
        "types": {"Ping": [{"name": "n", "type": "uint256"}]},
        "domain": {},
        "message": {"n": 1},
    }
    domain_hash = keccak256(keccak256(b"EIP712Domain()"))
    message_hash = keccak256(keccak256(b"Ping(uint256 n)") + _word(1))
    assert eip712_hash(body) == keccak256(b"\x19\x01" + domain_hash + message_hash)
    only_domain = {**body, "primaryType": "EIP712Domain"}
    assert eip712_hash(only_domain) == keccak256(b"\x19\x01" + domain_hash)


def test_recursive_type_is_inferred_and_encoded() -> None:
    types = {"Node": [{"name": "value", "type": "uint256"}, {"name": "children", "type": "Node[]"}]}
    message = {"value": 1, "children": [{"value": 2, "children": []}]}
    type_hash = keccak256(b"Node(uint256 value,Node[] children)")
    leaf = keccak256(type_hash + _word(2) + keccak256(b""))
    root = keccak256(type_hash + _word(1) + keccak256(leaf))
    domain_hash = keccak256(keccak256(b"EIP712Domain()"))
    body = {"types": types, "domain": {}, "message": message}
    assert eip712_hash(body) == keccak256(b"\x19\x01" + domain_hash + root)


@pytest.mark.parametrize(
    ("field_type", "value", "message"),
    [
        ("uint8", 256, "does not fit uint8"),
        ("uint8", -1, "does not fit uint8"),
        ("int8", 128, "does not fit int8"),
        ("int8", "-129", "does not fit int8"),
        ("uint256", 1.5, "expected an integer"),
        ("uint256", True, "got a bool"),
        ("uint256", "12abc", "not a decimal or 0x-hex"),
        ("uint256", "0x", "not a decimal or 0x-hex"),
        ("bool", 1, "expected a boolean"),
        ("bytes3", "0x0102", "exactly 3 bytes"),
        ("bytes", "0x123", "hex bytes"),
        ("bytes", "hello", "hex bytes"),
        ("address", "0x1234", "20-byte address"),
        ("string", 5, "expected a string"),
        ("uint256[2]", [1], "needs 2 items"),
        ("uint256[]", "1,2", "expected an array"),
    ],
)
def test_bad_values_are_rejected(field_type: str, value: object, message: str) -> None:
    body = {
        "types": {"T": [{"name": "f", "type": field_type}]},
        "domain": {"name": "x"},
        "message": {"f": value},
    }
    with pytest.raises(ValueError, match=message):
        eip712_hash(body)


@pytest.mark.parametrize(
    "field_type", ["uint", "int", "uint7", "uint264", "bytes0", "bytes33", "Nope"]
)
def test_unknown_types_are_rejected(field_type: str) -> None:
    body = {
        "types": {"T": [{"name": "f", "type": field_type}]},
        "domain": {},
        "message": {"f": 1},
    }
    with pytest.raises(ValueError, match="unknown type"):
        eip712_hash(body)


def test_structural_errors() -> None:
    ping = {"Ping": [{"name": "n", "type": "uint256"}]}
    with pytest.raises(ValueError, match="missing field 'n'"):
        eip712_hash({"types": ping, "domain": {}, "message": {}})
    with pytest.raises(ValueError, match="non-standard fields"):
        eip712_hash({"types": ping, "domain": {"origin": "x"}, "message": {"n": 1}})
    with pytest.raises(ValueError, match="primaryType 'Pong'"):
        eip712_hash({"types": ping, "domain": {}, "message": {"n": 1}, "primaryType": "Pong"})
    with pytest.raises(ValueError, match="'types' must be an object"):
        eip712_hash({"domain": {}, "message": {}})
    with pytest.raises(ValueError, match="'domain' must be an object"):
        eip712_hash({"types": ping, "message": {"n": 1}})
    with pytest.raises(ValueError, match="repeats a field"):
        eip712_hash(
            {"types": {"P": [{"name": "a", "type": "bool"}] * 2}, "domain": {}, "message": {}}
        )
    with pytest.raises(ValueError, match="shadows an atomic type"):
        eip712_hash({"types": {"uint256": []}, "domain": {}, "message": {}})
    with pytest.raises(ValueError, match="found \\[\\]"):
        eip712_hash({"types": {}, "domain": {}, "message": {}})
    with pytest.raises(TypeError):
        eip712_hash("not a mapping")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- RLP


@pytest.mark.parametrize(
    ("value", "encoded"),
    [  # the examples from the Ethereum RLP specification
        (b"dog", "83646f67"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        (b"", "80"),
        ([], "c0"),
        (0, "80"),
        (b"\x00", "00"),
        (b"\x0f", "0f"),
        (15, "0f"),
        (1024, "820400"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (
            b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
            "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572"
            "206164697069736963696e6720656c6974",
        ),
    ],
)
def test_rlp_specification_examples(value: Any, encoded: str) -> None:
    assert rlp_encode(value).hex() == encoded
    decoded = rlp_decode(bytes.fromhex(encoded))
    assert rlp_encode(decoded).hex() == encoded


def test_rlp_long_list_round_trips() -> None:
    items = [bytes([i]) * i for i in range(1, 80)]
    encoded = rlp_encode(items)
    assert encoded[0] == 0xF9  # two length bytes
    assert rlp_decode(encoded) == items


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("", "end of input"),
        ("8100", "must encode itself"),
        ("b80161", "long form"),
        ("b9000161", "leading zeros"),
        ("83646f", "past the end"),
        ("83646f6700", "trailing bytes"),
        ("c883636174", "past the end"),
        ("b9", "truncated"),
    ],
)
def test_rlp_rejects_non_canonical_input(encoded: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rlp_decode(bytes.fromhex(encoded))


def test_rlp_encode_rejects_unsupported_values() -> None:
    with pytest.raises(ValueError, match="negative"):
        rlp_encode(-1)
    with pytest.raises(TypeError, match="bool"):
        rlp_encode(True)
    with pytest.raises(TypeError, match="str"):
        rlp_encode("text")


# --------------------------------------------------------------------------- transactions


def test_eip155_example_from_the_eip() -> None:
    vector = _load("eip155-example.json")
    unsigned = bytes.fromhex(vector["signingData"])
    digest = evm_transaction_signing_hash(unsigned)
    assert digest.hex() == vector["signingHash"]
    sig = ecdsa_sign(bytes.fromhex(vector["privateKey"]), digest)
    assert (sig.r, sig.s) == (int(vector["r"]), int(vector["s"]))
    signed = evm_signed_transaction(unsigned, sig)
    assert signed.hex() == vector["signedTransaction"]
    decoded = rlp_decode(signed)
    assert isinstance(decoded, list)
    assert isinstance(decoded[6], bytes)
    assert int.from_bytes(decoded[6], "big") == vector["v"]
    assert evm_transaction_sender(signed) == evm_address(
        secp256k1_public_key(bytes.fromhex(vector["privateKey"]))
    )
    assert evm_transaction_summary(unsigned) == {
        "type": 0,
        "chain_id": 1,
        "nonce": 9,
        "to": "0x3535353535353535353535353535353535353535",
        "value": 10**18,
        "gas_limit": 21000,
        "data": "0x",
    }


def test_web3js_legacy_transaction() -> None:
    vector = _load("web3js-docs-examples.json")["signTransaction"]
    unsigned = rlp_encode(
        [
            vector["nonce"],
            vector["gasPrice"],
            vector["gas"],
            bytes.fromhex(vector["to"][2:]),
            vector["value"],
            b"",
            vector["chainId"],
            b"",
            b"",
        ]
    )
    digest = evm_transaction_signing_hash(unsigned)
    assert digest.hex() == vector["messageHash"]
    signed = evm_signed_transaction(
        unsigned, ecdsa_sign(bytes.fromhex(vector["privateKey"]), digest)
    )
    assert signed.hex() == vector["rawTransaction"]
    assert keccak256(signed).hex() == vector["transactionHash"]
    assert evm_transaction_summary(unsigned)["to"] == vector["to"]


def _reth_unsigned(vector: dict[str, Any]) -> bytes:
    return b"\x02" + rlp_encode(
        [
            vector["chainId"],
            vector["nonce"],
            vector["maxPriorityFeePerGas"],
            vector["maxFeePerGas"],
            vector["gasLimit"],
            bytes.fromhex(vector["to"][2:]),
            vector["value"],
            bytes.fromhex(vector["data"]),
            vector["accessList"],
        ]
    )


def test_mainnet_eip1559_transaction_from_reth() -> None:
    vector = _load("reth-eip1559-mainnet-tx.json")
    unsigned = _reth_unsigned(vector)
    sig = EcdsaSignature(int(vector["r"], 16), int(vector["s"], 16), vector["yParity"])
    signed = evm_signed_transaction(unsigned, sig)
    assert keccak256(signed).hex() == vector["transactionHash"]
    assert evm_transaction_sender(signed).lower() == vector["signer"]
    summary = evm_transaction_summary(unsigned)
    assert summary["type"] == 2
    assert summary["chain_id"] == 1
    assert summary["nonce"] == 66
    assert summary["value"] == 0
    assert summary["data"] == "0x" + vector["data"]


def test_dfns_example_eip1559_transaction_signs_and_reparses() -> None:
    # The unsigned transaction from Dfns's "Transaction" request example.
    unsigned = bytes.fromhex(
        "02e783aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c0"
    )
    summary = evm_transaction_summary(unsigned)
    assert summary == {
        "type": 2,
        "chain_id": 11155111,
        "nonce": 22,
        "to": "0xe5a2eBC128e262aB1e3BD02bFFbE16911aDFbFFB",
        "value": 1,
        "gas_limit": 21000,
        "data": "0x",
    }
    digest = evm_transaction_signing_hash(unsigned)
    assert digest == keccak256(unsigned)
    sig = ecdsa_sign(SIGNER, digest)
    signed = evm_signed_transaction(unsigned, sig)
    assert signed[:1] == b"\x02"
    assert evm_transaction_sender(signed) == evm_address(secp256k1_public_key(SIGNER))
    fields = rlp_decode(signed[1:])
    assert isinstance(fields, list)
    assert fields[-3:] == [_minimal(sig.recid), _minimal(sig.r), _minimal(sig.s)]


ACCESS_LIST = [
    [
        bytes.fromhex("de0b295669a9fd93d5f28d9ec85e40f4cb697bae"),
        [(3).to_bytes(32, "big"), (7).to_bytes(32, "big")],
    ],
    [bytes.fromhex("bb9bc244d798123fde783fcc1c72d3bb8c189413"), []],
]


def _typed(tx_type: int, fields: list[Any]) -> bytes:
    return bytes([tx_type]) + rlp_encode(fields)


TYPED_CASES = {
    "eip2930": _typed(
        0x01, [5, 0, 10**9, 50_000, bytes.fromhex("11" * 20), 123, b"\xde\xad", ACCESS_LIST]
    ),
    "eip1559-create": _typed(0x02, [1, 7, 10**9, 3 * 10**9, 900_000, b"", 0, b"\x60\x80", []]),
    "eip7702": _typed(
        0x04,
        [
            1,
            3,
            10**9,
            2 * 10**9,
            80_000,
            bytes.fromhex("22" * 20),
            0,
            b"",
            [],
            [[1, bytes.fromhex("33" * 20), 0, 1, 2**255, 12345]],
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(TYPED_CASES))
def test_typed_transactions_sign_and_reparse(name: str) -> None:
    unsigned = TYPED_CASES[name]
    digest = evm_transaction_signing_hash(unsigned)
    assert digest == keccak256(unsigned)  # type byte || rlp(payload)
    sig = ecdsa_sign(SIGNER, digest)
    signed = evm_signed_transaction(unsigned, sig)
    assert signed[0] == unsigned[0]
    payload = rlp_decode(signed[1:])
    unsigned_payload = rlp_decode(unsigned[1:])
    assert isinstance(payload, list)
    assert isinstance(unsigned_payload, list)
    assert payload[: len(unsigned_payload)] == unsigned_payload
    assert evm_transaction_sender(signed) == evm_address(secp256k1_public_key(SIGNER))
    summary = evm_transaction_summary(unsigned)
    assert summary["type"] == unsigned[0]
    if name == "eip1559-create":
        assert summary["to"] is None
        assert summary["data"] == "0x6080"


def test_pre_eip155_legacy_transaction() -> None:
    unsigned = rlp_encode([0, 10**9, 21000, bytes.fromhex("44" * 20), 1, b""])
    digest = evm_transaction_signing_hash(unsigned)
    assert digest == keccak256(unsigned)
    sig = ecdsa_sign(SIGNER, digest)
    signed = evm_signed_transaction(unsigned, sig)
    decoded = rlp_decode(signed)
    assert isinstance(decoded, list)
    assert decoded[6] == bytes([27 + sig.recid])
    assert evm_transaction_sender(signed) == evm_address(secp256k1_public_key(SIGNER))
    assert evm_transaction_summary(unsigned)["chain_id"] is None


def test_sender_of_tampered_transaction_differs() -> None:
    unsigned = TYPED_CASES["eip2930"]
    sig = ecdsa_sign(SIGNER, evm_transaction_signing_hash(unsigned))
    wrong_recid = evm_signed_transaction(unsigned, EcdsaSignature(sig.r, sig.s, sig.recid ^ 1))
    assert evm_transaction_sender(wrong_recid) != evm_address(secp256k1_public_key(SIGNER))
    high_s = evm_signed_transaction(unsigned, EcdsaSignature(sig.r, SECP256K1_N - sig.s, 0))
    with pytest.raises(ValueError, match="high-s"):
        evm_transaction_sender(high_s)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"\x03" + rlp_encode([]), "unsupported EVM transaction type 0x03"),
        (b"\x7f\x01", "unsupported"),
        (b"\x02" + rlp_encode(b"abc"), "must be an RLP list"),
        (b"\x02" + rlp_encode([1, 2, 3]), "needs 9 fields, got 3"),
        (rlp_encode([1, 2, 3, b"", 5, b"", 1]), "legacy transaction has 7 fields"),
        (rlp_encode([b"\x00\x01", 1, 1, b"", 1, b""]), "leading zero"),
        (rlp_encode([1, 1, 1, b"\x11" * 19, 1, b""]), "20-byte address"),
        (rlp_encode([1, 1, 1, b"", 1, [b"x"]]), "byte string"),
        (rlp_encode([1, 1, 1, b"", 1, b"", 1, 5, 6]), "already signed"),
        (rlp_encode([1, 1, 1, b"", 1, b"", 0, b"", b""]), "non-zero chainId"),
        (_typed(0x04, [1, 0, 1, 1, 1, b"", 0, b"", [], []]), "20-byte address"),
        (_typed(0x01, [1, 0, 1, 1, b"", 0, b"", [[b"\x11" * 20]]]), r"\[address, storageKeys\]"),
        (_typed(0x01, [1, 0, 1, 1, b"", 0, b"", [[b"\x11" * 20, [b"\x01"]]]]), "32 bytes"),
        (_typed(0x04, [1, 0, 1, 1, 1, b"\x22" * 20, 0, b"", [], [[1, 2]]]), "authorizations"),
        (_typed(0x02, [1, 0, 1, 1, 1, b"", 0, b"", []]) + b"\x00", "trailing bytes"),
        (rlp_encode(b"not a list"), "neither an RLP list"),
    ],
)
def test_garbage_transactions_are_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evm_transaction_signing_hash(raw)


def test_signed_transaction_needs_recid_zero_or_one() -> None:
    unsigned = TYPED_CASES["eip2930"]
    sig = ecdsa_sign(SIGNER, evm_transaction_signing_hash(unsigned))
    with pytest.raises(ValueError, match="recid 0 or 1"):
        evm_signed_transaction(unsigned, EcdsaSignature(sig.r, sig.s, 2))


def test_sender_rejects_unsigned_or_malformed_signatures() -> None:
    with pytest.raises(ValueError, match="needs 12 fields"):
        evm_transaction_sender(TYPED_CASES["eip1559-create"])
    with pytest.raises(ValueError, match="legacy transaction has 6 fields"):
        evm_transaction_sender(rlp_encode([0, 1, 1, b"", 0, b""]))
    with pytest.raises(ValueError, match="invalid v value"):
        evm_transaction_sender(rlp_encode([0, 1, 1, b"", 0, b"", 30, 1, 1]))
    unsigned = TYPED_CASES["eip2930"]
    payload = rlp_decode(unsigned[1:])
    assert isinstance(payload, list)
    with pytest.raises(ValueError, match="yParity must be 0 or 1"):
        evm_transaction_sender(b"\x01" + rlp_encode([*payload, 2, 1, 1]))


def test_recovered_key_matches_transaction_sender() -> None:
    unsigned = TYPED_CASES["eip7702"]
    digest = evm_transaction_signing_hash(unsigned)
    sig = ecdsa_sign(SIGNER, digest)
    public = ecdsa_recover(digest, sig.r, sig.s, sig.recid)
    assert evm_address(public) == evm_transaction_sender(evm_signed_transaction(unsigned, sig))
