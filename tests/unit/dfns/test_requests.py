"""Strict request bodies: what signgate is allowed to send to Dfns."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from signgate.dfns.requests import (
    KNOWN_BLOCKCHAIN_KINDS,
    KNOWN_NETWORKS,
    SIGNATURE_REQUEST_KINDS,
    WEBHOOK_EVENT_KINDS,
    ApprovalDecisionRequest,
    Bip322Request,
    Cip8Request,
    CreateWebhookRequest,
    Eip712Domain,
    Eip712Request,
    Eip712TypeField,
    Eip7702Request,
    HashRequest,
    LegacyHashRequest,
    MessageRequest,
    PactCommandRequest,
    PsbtRequest,
    SignatureRequestBase,
    SignDocDirectRequest,
    SignerPayloadRequest,
    TransactionRequest,
    UpdateWebhookRequest,
    parse_signature_request_body,
    to_wire,
)

HASH = "0x031edd7d41651593c5fe5c006fa5752b37fddff7bc4e843aa6af0c950f4b9406"


def _error_locs(exc: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(error["loc"]) for error in exc.errors()]


def _fields_in_errors(exc: ValidationError) -> set[str | int]:
    return {part for loc in _error_locs(exc) for part in loc}


# --- building each kind ---------------------------------------------------------------------

BUILT: list[tuple[SignatureRequestBase, dict[str, Any]]] = [
    (
        HashRequest(
            hash=HASH, taproot_merkle_root="", network="BitcoinSignet", external_id="order-1"
        ),
        {
            "kind": "Hash",
            "hash": HASH,
            "taprootMerkleRoot": "",
            "network": "BitcoinSignet",
            "externalId": "order-1",
        },
    ),
    (MessageRequest(message="0x49206c6f7665"), {"kind": "Message", "message": "0x49206c6f7665"}),
    (
        Eip7702Request(address="0x" + "ab" * 20, nonce=7, chain_id=11155111),
        {"kind": "Eip7702", "address": "0x" + "ab" * 20, "nonce": 7, "chainId": 11155111},
    ),
    (
        TransactionRequest(transaction="0x02e783aa36a7", blockchain_kind="Evm"),
        {"kind": "Transaction", "transaction": "0x02e783aa36a7", "blockchainKind": "Evm"},
    ),
    (
        Eip712Request(
            types={"Mail": [Eip712TypeField(name="contents", type="string")]},
            domain=Eip712Domain(
                name="Ether Mail",
                chain_id=1,
                verifying_contract="0x1b352de7a926ebd1bf52194dab487c2cb0793a9b",
            ),
            message={"contents": "Hello, Bob!"},
        ),
        {
            "kind": "Eip712",
            "types": {"Mail": [{"name": "contents", "type": "string"}]},
            "domain": {
                "name": "Ether Mail",
                "chainId": 1,
                "verifyingContract": "0x1b352de7a926ebd1bf52194dab487c2cb0793a9b",
            },
            "message": {"contents": "Hello, Bob!"},
        },
    ),
    (PsbtRequest(psbt="70736274ff"), {"kind": "Psbt", "psbt": "70736274ff"}),
    (
        Bip322Request(message="0x49", format="Full", network="BitcoinSignet"),
        {"kind": "Bip322", "message": "0x49", "format": "Full", "network": "BitcoinSignet"},
    ),
    (
        PactCommandRequest(command='{"networkId":"testnet04"}'),
        {"kind": "PactCommand", "command": '{"networkId":"testnet04"}'},
    ),
    (SignDocDirectRequest(sign_doc="0a0b"), {"kind": "SignDocDirect", "signDoc": "0a0b"}),
    (
        SignerPayloadRequest(payload={"specVersion": "0x01", "tip": None}, network="Polkadot"),
        {
            "kind": "SignerPayload",
            "payload": {"specVersion": "0x01", "tip": None},
            "network": "Polkadot",
        },
    ),
    (
        Cip8Request(context="Signature1", payload="0xabcd", external_aad="00"),
        {"kind": "Cip8", "context": "Signature1", "payload": "0xabcd", "externalAad": "00"},
    ),
]


@pytest.mark.parametrize(("model", "wire"), BUILT, ids=lambda v: getattr(v, "kind", ""))
def test_built_request_serialises_to_dfns_names(
    model: SignatureRequestBase, wire: dict[str, Any]
) -> None:
    assert to_wire(model) == wire
    # Parsing the wire form gives back the same model: one body, one meaning.
    assert parse_signature_request_body(wire) == model


def test_built_examples_cover_every_kind_in_spec_order() -> None:
    assert [model.kind for model, _ in BUILT] == list(SIGNATURE_REQUEST_KINDS)
    assert SIGNATURE_REQUEST_KINDS == (
        "Hash",
        "Message",
        "Eip7702",
        "Transaction",
        "Eip712",
        "Psbt",
        "Bip322",
        "PactCommand",
        "SignDocDirect",
        "SignerPayload",
        "Cip8",
    )


def test_kind_goes_first_on_the_wire() -> None:
    wire = to_wire(HashRequest(external_id="a", hash=HASH))
    assert next(iter(wire)) == "kind"


def test_to_wire_drops_none_fields_but_keeps_nulls_inside_user_data() -> None:
    wire = to_wire(SignerPayloadRequest(payload={"era": None}, network=None))
    assert wire == {"kind": "SignerPayload", "payload": {"era": None}}


def test_request_models_are_frozen() -> None:
    request = HashRequest(hash=HASH)
    with pytest.raises(ValidationError, match="frozen"):
        request.hash = "00" * 32  # type: ignore[misc]


# --- strictness -----------------------------------------------------------------------------


def test_unknown_field_is_refused_when_building() -> None:
    with pytest.raises(ValidationError) as caught:
        HashRequest(hash=HASH, memo="hi")  # type: ignore[call-arg]
    assert _error_locs(caught.value) == [("memo",)]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_unknown_field_is_refused_when_parsing() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Hash", "hash": HASH, "walletId": "wa-1"})
    assert _error_locs(caught.value) == [("Hash", "walletId")]


def test_snake_case_name_on_the_wire_is_not_an_alias_for_unknown_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Hash", "hash": HASH, "taprootRoot": ""})
    assert "taprootRoot" in _fields_in_errors(caught.value)


@pytest.mark.parametrize("length", [1, 50])
def test_external_id_within_bounds_is_accepted(length: int) -> None:
    assert HashRequest(hash=HASH, external_id="é" * length).external_id == "é" * length


@pytest.mark.parametrize("external_id", ["", "x" * 51])
def test_external_id_out_of_bounds_is_refused_and_named(external_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Hash", "hash": HASH, "externalId": external_id})
    assert _error_locs(caught.value) == [("Hash", "externalId")]


@pytest.mark.parametrize(
    "bad_hash",
    [
        "0x" + "ab" * 31,  # 31 bytes
        "ab" * 31,
        "0x" + "ab" * 33,  # 33 bytes
        "0x" + "zz" * 32,  # not hex
        "0X" + "ab" * 32,  # the prefix is lower-case 0x only
        "0x" + "ab" * 32 + "\n",
        "",
    ],
)
def test_bad_hash_is_refused_and_named(bad_hash: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HashRequest(hash=bad_hash)
    assert _error_locs(caught.value) == [("hash",)]
    assert caught.value.errors()[0]["type"] == "string_pattern_mismatch"


@pytest.mark.parametrize(
    "good_hash", [HASH, HASH.removeprefix("0x"), HASH.upper().replace("X", "x")]
)
def test_hash_accepts_32_bytes_with_or_without_prefix(good_hash: str) -> None:
    assert HashRequest(hash=good_hash).hash == good_hash


@pytest.mark.parametrize("root", ["", "0x", "ab" * 32, "0x" + "AB" * 32])
def test_taproot_merkle_root_accepts_empty_or_32_bytes(root: str) -> None:
    assert HashRequest(hash=HASH, taproot_merkle_root=root).taproot_merkle_root == root


@pytest.mark.parametrize("root", ["0x" + "ab" * 31 + "a", "ab" * 16, "xyz"])
def test_taproot_merkle_root_refuses_other_lengths(root: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HashRequest(hash=HASH, taproot_merkle_root=root)
    assert _error_locs(caught.value) == [("taproot_merkle_root",)]


@pytest.mark.parametrize("message", ["0xabc", "0x0g", "hello", "0x 00"])
def test_hex_fields_refuse_odd_length_or_non_hex(message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MessageRequest(message=message)
    assert _error_locs(caught.value) == [("message",)]


def test_empty_hex_message_is_what_the_spec_allows() -> None:
    assert MessageRequest(message="").message == ""
    assert MessageRequest(message="0x").message == "0x"


@pytest.mark.parametrize("value", ["1", 1.0, True])
def test_eip7702_numbers_are_integers_not_coerced(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body(
            {"kind": "Eip7702", "address": "0x00", "nonce": value, "chainId": 1}
        )
    assert _error_locs(caught.value) == [("Eip7702", "nonce")]


@pytest.mark.parametrize("chain_id", [1, "1", "0x1", "eip155:1"])
def test_eip712_domain_chain_id_is_positive_int_or_string(chain_id: int | str) -> None:
    assert Eip712Domain.model_validate({"chainId": chain_id}).chain_id == chain_id


@pytest.mark.parametrize("chain_id", [0, -1, 1.5, True, None])
def test_eip712_domain_chain_id_refuses_the_rest(chain_id: Any) -> None:
    if chain_id is None:
        # None means "absent" for an optional field.
        assert Eip712Domain.model_validate({"chainId": None}).chain_id is None
        return
    with pytest.raises(ValidationError) as caught:
        Eip712Domain.model_validate({"chainId": chain_id})
    assert {loc[0] for loc in _error_locs(caught.value)} == {"chainId"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verifyingContract", "0x" + "ab" * 19),
        ("verifyingContract", "ab" * 20),
        ("salt", "ab" * 32),
        ("salt", "0x" + "ab" * 31),
        ("unknown", "x"),
    ],
)
def test_eip712_domain_fields_are_checked(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Eip712Domain.model_validate({field: value})
    assert _error_locs(caught.value) == [(field,)]


def test_eip712_type_fields_are_strict() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body(
            {
                "kind": "Eip712",
                "types": {"Mail": [{"name": "to"}]},
                "domain": {},
                "message": {},
            }
        )
    assert _error_locs(caught.value) == [("Eip712", "types", "Mail", 0, "type")]


def test_bip322_format_is_simple_or_full() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Bip322", "message": "00", "format": "simple"})
    assert _error_locs(caught.value) == [("Bip322", "format")]


def test_signer_payload_is_hex_or_object() -> None:
    assert SignerPayloadRequest(payload="0x0102").payload == "0x0102"
    assert SignerPayloadRequest(payload={"a": 1}).payload == {"a": 1}
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "SignerPayload", "payload": "not hex"})
    assert {loc[:2] for loc in _error_locs(caught.value)} == {("SignerPayload", "payload")}


def test_cip8_context_is_required_and_fixed() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Cip8"})
    assert _error_locs(caught.value) == [("Cip8", "context")]
    with pytest.raises(ValidationError):
        parse_signature_request_body({"kind": "Cip8", "context": "Signature2"})


def test_unknown_kind_names_the_kind_and_the_expected_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"kind": "Snip12", "data": {}})
    message = str(caught.value)
    assert "'Snip12'" in message
    for kind in SIGNATURE_REQUEST_KINDS:
        assert f"'{kind}'" in message


def test_missing_kind_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_signature_request_body({"hash": HASH})
    assert caught.value.errors()[0]["type"] == "union_tag_not_found"


@pytest.mark.parametrize("network", KNOWN_NETWORKS)
def test_every_known_network_is_accepted(network: str) -> None:
    assert HashRequest(hash=HASH, network=network).network == network


@pytest.mark.parametrize("kind", KNOWN_BLOCKCHAIN_KINDS)
def test_every_known_blockchain_kind_is_accepted(kind: str) -> None:
    assert TransactionRequest(transaction="00", blockchain_kind=kind).blockchain_kind == kind


def test_a_network_newer_than_this_client_is_accepted() -> None:
    assert HashRequest(hash=HASH, network="Starknet").network == "Starknet"


@pytest.mark.parametrize("network", ["", "ethereum", "Ethereum Sepolia", "Ethereum\n"])
def test_malformed_network_names_are_refused(network: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HashRequest(hash=HASH, network=network)
    assert _error_locs(caught.value) == [("network",)]


# --- legacy, approvals, webhooks ------------------------------------------------------------


@pytest.mark.parametrize("value", ["00", "0x" + "ab" * 32, "ab" * 100, "0xDEADbeef"])
def test_legacy_hash_accepts_any_length_hex(value: str) -> None:
    assert to_wire(LegacyHashRequest(hash=value)) == {"hash": value}


@pytest.mark.parametrize("value", ["", "0x", "abc", "0xzz"])
def test_legacy_hash_refuses_empty_odd_or_non_hex(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LegacyHashRequest(hash=value)
    assert _error_locs(caught.value) == [("hash",)]


def test_approval_decision_wire_form() -> None:
    assert to_wire(ApprovalDecisionRequest(value="Approved")) == {"value": "Approved"}
    assert to_wire(ApprovalDecisionRequest(value="Denied", reason="deadline passed")) == {
        "value": "Denied",
        "reason": "deadline passed",
    }


@pytest.mark.parametrize(
    "body", [{"value": "approved"}, {"value": "Denied", "reason": "x" * 1001}, {}]
)
def test_approval_decision_refuses_bad_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ApprovalDecisionRequest.model_validate(body)


def test_create_webhook_wire_form() -> None:
    request = CreateWebhookRequest(
        url="https://hooks.example/dfns",
        events=["wallet.signature.signed", "wallet.signature.rejected"],
        description="signgate",
        status="Enabled",
    )
    assert to_wire(request) == {
        "url": "https://hooks.example/dfns",
        "events": ["wallet.signature.signed", "wallet.signature.rejected"],
        "description": "signgate",
        "status": "Enabled",
    }
    assert to_wire(CreateWebhookRequest(url="https://h", events=["*"])) == {
        "url": "https://h",
        "events": ["*"],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://h", "events": []}, "events"),
        ({"url": "https://h", "events": ["key.signature.signed"]}, "events"),
        ({"url": "https://h", "events": ["*"], "description": "d" * 257}, "description"),
        ({"url": "https://h", "events": ["*"], "status": "Paused"}, "status"),
        ({"events": ["*"]}, "url"),
        ({"url": "https://h", "events": ["*"], "secret": "s"}, "secret"),
    ],
)
def test_create_webhook_refuses_bad_bodies(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateWebhookRequest.model_validate(body)
    assert field in _fields_in_errors(caught.value)


def test_update_webhook_sends_only_what_changes() -> None:
    assert to_wire(UpdateWebhookRequest()) == {}
    assert to_wire(UpdateWebhookRequest(status="Disabled")) == {"status": "Disabled"}
    with pytest.raises(ValidationError):
        UpdateWebhookRequest(events=[])


def test_every_webhook_event_kind_can_be_subscribed() -> None:
    request = CreateWebhookRequest(url="https://h", events=list(WEBHOOK_EVENT_KINDS))  # type: ignore[arg-type]
    assert tuple(request.events) == WEBHOOK_EVENT_KINDS
    assert "wallet.signature.signed" in WEBHOOK_EVENT_KINDS
    assert not any(kind.startswith("key.signature") for kind in WEBHOOK_EVENT_KINDS)


@pytest.mark.parametrize(
    "model",
    [ApprovalDecisionRequest(value="Approved"), LegacyHashRequest(hash="00"), BUILT[0][0]],
)
def test_every_request_model_forbids_extra_and_is_frozen(model: BaseModel) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True
