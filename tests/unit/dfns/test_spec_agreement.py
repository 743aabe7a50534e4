"""signgate's Dfns models against the schemas vendored from Dfns's OpenAPI spec 1.578.2.

Deliberate differences between our request models and the spec live in one place,
``DIFFERENCES`` below, and mirror the list in ``signgate/dfns/requests.py``'s docstring.
Everything not listed there must agree exactly: kinds, property names, required sets,
patterns, lengths, enums, and which bodies are accepted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, TypeAdapter, ValidationError

from signgate.dfns import models, requests
from signgate.dfns.requests import (
    KNOWN_BLOCKCHAIN_KINDS,
    KNOWN_NETWORKS,
    SIGNATURE_REQUEST_KINDS,
    WEBHOOK_EVENT_KINDS,
    ApprovalDecisionRequest,
    CreateWebhookRequest,
    SignatureRequestBody,
    UpdateWebhookRequest,
    parse_signature_request_body,
)

from ._fixtures import SPEC_DIR, seed_examples, spec_fixture, spec_schema

SPEC_VERSION = "1.578.2"
HASH = "0x" + "ab" * 32
OPEN_NAME_PATTERN = r"^[A-Z][A-Za-z0-9]*$"

# --- the documented differences (the one list; requests.py's docstring explains them) -----

DIFFERENCES: dict[str, str] = {
    "open-network": (
        "network/blockchainKind accept any PascalCase name, not only the spec's closed enum: "
        "Dfns adds networks often and itself refuses names it does not know"
    ),
    "integer-numbers": "Eip7702 nonce/chainId must be integers; the spec says number",
    "null-is-absent": (
        "an explicit null for an optional field is accepted as absent (to_wire never sends it)"
    ),
    "kind-default": (
        "kind has a default when a model is built in Python; on the wire it stays required"
    ),
    "decision-extra": (
        "unknown fields are refused in decision bodies; the spec's schema does not forbid them"
    ),
    "python-re-dollar": (
        "not ours but the harness's: jsonschema runs `pattern` with Python's re, where `$` also "
        "matches before a trailing newline; JSON Schema (ECMA-262) and pydantic do not"
    ),
}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_fixture_comes_from_the_expected_spec_version() -> None:
    names = sorted(p.stem for p in SPEC_DIR.glob("*.json"))
    assert len(names) == 22
    for name in names:
        source = spec_fixture(name)["source"]
        assert source["version"] == SPEC_VERSION, name
        assert source["file"] == "openapi-1.578.2.json", name
        _validator(spec_schema(name))


# --- normalised shapes ----------------------------------------------------------------------

_KEPT = ("pattern", "minLength", "maxLength", "minItems", "maxItems", "exclusiveMinimum")


def _deref(schema: Any, root: dict[str, Any]) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        schema = root["$defs"][name]
    return schema


def shape(schema: Any, root: dict[str, Any]) -> Any:
    """The parts of a JSON schema that decide what validates, in one comparable form."""
    schema = _deref(schema, root)
    if schema is True or schema == {}:
        return "any"
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        shapes = [shape(b, root) for b in branches if _deref(b, root).get("type") != "null"]
        if len(shapes) == 1:
            return shapes[0]
        return {"anyOf": sorted(shapes, key=lambda s: json.dumps(s, sort_keys=True))}
    out: dict[str, Any] = {"type": schema.get("type")}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    elif "enum" in schema:
        out["enum"] = list(schema["enum"])
    out.update({k: schema[k] for k in _KEPT if k in schema})
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        out["properties"] = {name: shape(p, root) for name, p in properties.items()}
        out["required"] = sorted(schema.get("required", []))
        extra = schema.get("additionalProperties", True)
        out["additionalProperties"] = extra if extra is False else shape(extra, root)
    if schema.get("type") == "array":
        out["items"] = shape(schema.get("items", True), root)
    return out


def our_shape(model: type[BaseModel]) -> Any:
    """``shape`` of the JSON schema pydantic derives for a model, by wire names."""
    schema = model.model_json_schema(by_alias=True)
    return shape(schema, schema)


def spec_variants() -> dict[str, dict[str, Any]]:
    """The request ``oneOf`` variants of spec 1.578.2, by kind."""
    variants = spec_schema("signature_request_body")["oneOf"]
    return {v["properties"]["kind"]["enum"][0]: v for v in variants}


REQUEST_MODELS: dict[str, type[requests.SignatureRequestBase]] = {
    model.model_fields["kind"].default: model
    for model in (
        requests.HashRequest,
        requests.MessageRequest,
        requests.Eip7702Request,
        requests.TransactionRequest,
        requests.Eip712Request,
        requests.PsbtRequest,
        requests.Bip322Request,
        requests.PactCommandRequest,
        requests.SignDocDirectRequest,
        requests.SignerPayloadRequest,
        requests.Cip8Request,
    )
}


def expected_request_shape(kind: str) -> Any:
    """The spec's shape for ``kind`` with the documented differences applied."""
    variant = spec_variants()[kind]
    expected = shape(variant, variant)
    for name in ("network", "blockchainKind"):
        # Difference "open-network".
        expected["properties"][name] = {"type": "string", "pattern": OPEN_NAME_PATTERN}
    if kind == "Eip7702":
        # Difference "integer-numbers".
        for name in ("nonce", "chainId"):
            assert expected["properties"][name] == {"type": "number"}
            expected["properties"][name] = {"type": "integer"}
    return expected


def test_request_kinds_equal_the_spec_in_order() -> None:
    assert list(spec_variants()) == list(SIGNATURE_REQUEST_KINDS)
    assert list(REQUEST_MODELS) == list(SIGNATURE_REQUEST_KINDS)


@pytest.mark.parametrize("kind", SIGNATURE_REQUEST_KINDS)
def test_request_model_matches_the_spec_variant(kind: str) -> None:
    ours = our_shape(REQUEST_MODELS[kind])
    # Difference "kind-default" (the corpus checks that a body without kind is refused).
    assert "kind" not in ours["required"]
    ours["required"] = sorted([*ours["required"], "kind"])
    assert ours == expected_request_shape(kind)


def test_network_and_blockchain_kind_lists_equal_the_spec_enums() -> None:
    assert list(KNOWN_NETWORKS) == spec_schema("network")["enum"]
    assert list(KNOWN_BLOCKCHAIN_KINDS) == spec_schema("blockchain_kind")["enum"]
    for variant in spec_variants().values():
        assert variant["properties"]["network"]["enum"] == list(KNOWN_NETWORKS)
        assert variant["properties"]["blockchainKind"]["enum"] == list(KNOWN_BLOCKCHAIN_KINDS)


@pytest.mark.parametrize("kind", SIGNATURE_REQUEST_KINDS)
def test_every_spec_network_and_blockchain_kind_is_accepted_by_every_kind(kind: str) -> None:
    body = VALID_MINIMAL[kind]
    validator = _validator(spec_schema("signature_request_body"))
    for network in KNOWN_NETWORKS:
        parse_signature_request_body({**body, "network": network})
    for blockchain_kind in KNOWN_BLOCKCHAIN_KINDS:
        candidate = {**body, "blockchainKind": blockchain_kind}
        parse_signature_request_body(candidate)
        assert validator.is_valid(candidate)


# --- accept/refuse agreement on a corpus ----------------------------------------------------

VALID_MINIMAL: dict[str, dict[str, Any]] = {
    "Hash": {"kind": "Hash", "hash": HASH},
    "Message": {"kind": "Message", "message": "0x49206c6f76652044666e73"},
    "Eip7702": {"kind": "Eip7702", "address": "0x" + "cd" * 20, "nonce": 0, "chainId": 1},
    "Transaction": {"kind": "Transaction", "transaction": "0x02e783aa36a7"},
    "Eip712": {"kind": "Eip712", "types": {}, "domain": {}, "message": {}},
    "Psbt": {"kind": "Psbt", "psbt": "70736274ff01"},
    "Bip322": {"kind": "Bip322", "message": "49"},
    "PactCommand": {"kind": "PactCommand", "command": "{}"},
    "SignDocDirect": {"kind": "SignDocDirect", "signDoc": "0a0b0c"},
    "SignerPayload": {"kind": "SignerPayload", "payload": "0x0102"},
    "Cip8": {"kind": "Cip8", "context": "Signature1"},
}
COMMON = {"network": "EthereumSepolia", "blockchainKind": "Evm", "externalId": "x" * 50}

# (label, body, documented difference or None)
Case = tuple[str, Any, str | None]
CORPUS: list[Case] = [
    *[(f"minimal {kind}", body, None) for kind, body in VALID_MINIMAL.items()],
    *[(f"common fields {kind}", {**body, **COMMON}, None) for kind, body in VALID_MINIMAL.items()],
    ("hash without 0x", {"kind": "Hash", "hash": "ab" * 32}, None),
    ("hash mixed case", {"kind": "Hash", "hash": "0x" + "aB" * 32}, None),
    ("hash 31 bytes", {"kind": "Hash", "hash": "0x" + "ab" * 31}, None),
    ("hash 33 bytes", {"kind": "Hash", "hash": "0x" + "ab" * 33}, None),
    ("hash non-hex", {"kind": "Hash", "hash": "0x" + "zz" * 32}, None),
    ("hash 0X prefix", {"kind": "Hash", "hash": "0X" + "ab" * 32}, None),
    ("hash as number", {"kind": "Hash", "hash": 12}, None),
    ("hash missing", {"kind": "Hash"}, None),
    ("hash trailing newline", {"kind": "Hash", "hash": HASH + "\n"}, "python-re-dollar"),
    ("taproot empty", {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": ""}, None),
    ("taproot 0x only", {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": "0x"}, None),
    ("taproot 32 bytes", {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": "cd" * 32}, None),
    ("taproot 63 digits", {"kind": "Hash", "hash": HASH, "taprootMerkleRoot": "c" * 63}, None),
    ("extra field", {"kind": "Hash", "hash": HASH, "memo": "x"}, None),
    ("walletId is not a body field", {"kind": "Hash", "hash": HASH, "walletId": "wa-1"}, None),
    ("externalId empty", {"kind": "Hash", "hash": HASH, "externalId": ""}, None),
    ("externalId 51", {"kind": "Hash", "hash": HASH, "externalId": "x" * 51}, None),
    ("externalId 50 non-ascii", {"kind": "Hash", "hash": HASH, "externalId": "é" * 50}, None),
    ("externalId number", {"kind": "Hash", "hash": HASH, "externalId": 5}, None),
    ("network lower-case", {"kind": "Hash", "hash": HASH, "network": "ethereum"}, None),
    ("network number", {"kind": "Hash", "hash": HASH, "network": 1}, None),
    (
        "network from the future",
        {"kind": "Hash", "hash": HASH, "network": "Starknet"},
        "open-network",
    ),
    ("blockchainKind lower-case", {"kind": "Hash", "hash": HASH, "blockchainKind": "evm"}, None),
    (
        "blockchainKind from the future",
        {"kind": "Hash", "hash": HASH, "blockchainKind": "Starknet"},
        "open-network",
    ),
    ("network null", {"kind": "Hash", "hash": HASH, "network": None}, "null-is-absent"),
    ("externalId null", {"kind": "Hash", "hash": HASH, "externalId": None}, "null-is-absent"),
    ("unknown kind", {"kind": "Snip12", "hash": HASH}, None),
    ("kind lower-case", {"kind": "hash", "hash": HASH}, None),
    ("kind missing", {"hash": HASH}, None),
    ("kind null", {"kind": None, "hash": HASH}, None),
    ("not an object", [{"kind": "Hash", "hash": HASH}], None),
    ("message empty", {"kind": "Message", "message": ""}, None),
    ("message 0x", {"kind": "Message", "message": "0x"}, None),
    ("message odd", {"kind": "Message", "message": "0xabc"}, None),
    ("message non-hex", {"kind": "Message", "message": "hello"}, None),
    ("eip7702 nonce string", {**VALID_MINIMAL["Eip7702"], "nonce": "1"}, None),
    ("eip7702 nonce bool", {**VALID_MINIMAL["Eip7702"], "nonce": True}, None),
    ("eip7702 nonce fractional", {**VALID_MINIMAL["Eip7702"], "nonce": 1.5}, "integer-numbers"),
    ("eip7702 chainId 1.0", {**VALID_MINIMAL["Eip7702"], "chainId": 1.0}, "integer-numbers"),
    ("eip7702 address odd", {**VALID_MINIMAL["Eip7702"], "address": "0xabc"}, None),
    ("eip7702 address missing", {"kind": "Eip7702", "nonce": 0, "chainId": 1}, None),
    (
        "eip712 full",
        {
            "kind": "Eip712",
            "types": {"Person": [{"name": "wallet", "type": "address"}]},
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0x" + "1b" * 20,
                "salt": "0x" + "f2" * 32,
            },
            "message": {"wallet": "0x" + "00" * 20, "nested": {"n": None, "l": [1, 2]}},
        },
        None,
    ),
    ("eip712 chainId string", {**VALID_MINIMAL["Eip712"], "domain": {"chainId": "0x1"}}, None),
    ("eip712 chainId 0", {**VALID_MINIMAL["Eip712"], "domain": {"chainId": 0}}, None),
    ("eip712 chainId negative", {**VALID_MINIMAL["Eip712"], "domain": {"chainId": -1}}, None),
    ("eip712 chainId bool", {**VALID_MINIMAL["Eip712"], "domain": {"chainId": True}}, None),
    ("eip712 domain extra", {**VALID_MINIMAL["Eip712"], "domain": {"chain": 1}}, None),
    (
        "eip712 verifyingContract short",
        {**VALID_MINIMAL["Eip712"], "domain": {"verifyingContract": "0x" + "1b" * 19}},
        None,
    ),
    ("eip712 salt no 0x", {**VALID_MINIMAL["Eip712"], "domain": {"salt": "f2" * 32}}, None),
    ("eip712 domain missing", {"kind": "Eip712", "types": {}, "message": {}}, None),
    ("eip712 message list", {**VALID_MINIMAL["Eip712"], "message": []}, None),
    ("eip712 types list", {**VALID_MINIMAL["Eip712"], "types": []}, None),
    (
        "eip712 type field missing type",
        {**VALID_MINIMAL["Eip712"], "types": {"A": [{"name": "a"}]}},
        None,
    ),
    (
        "eip712 type field extra",
        {**VALID_MINIMAL["Eip712"], "types": {"A": [{"name": "a", "type": "uint8", "x": 1}]}},
        None,
    ),
    ("bip322 Full", {**VALID_MINIMAL["Bip322"], "format": "Full"}, None),
    ("bip322 Simple", {**VALID_MINIMAL["Bip322"], "format": "Simple"}, None),
    ("bip322 bad format", {**VALID_MINIMAL["Bip322"], "format": "simple"}, None),
    ("pact command not string", {"kind": "PactCommand", "command": {"a": 1}}, None),
    ("signDoc odd", {"kind": "SignDocDirect", "signDoc": "abc"}, None),
    ("signer payload object", {"kind": "SignerPayload", "payload": {"method": "0x00"}}, None),
    ("signer payload empty hex", {"kind": "SignerPayload", "payload": ""}, None),
    ("signer payload not hex", {"kind": "SignerPayload", "payload": "xyz"}, None),
    ("signer payload list", {"kind": "SignerPayload", "payload": ["0x00"]}, None),
    ("signer payload missing", {"kind": "SignerPayload"}, None),
    (
        "cip8 full",
        {"kind": "Cip8", "context": "Signature1", "payload": "0xab", "externalAad": "cd"},
        None,
    ),
    ("cip8 missing context", {"kind": "Cip8", "payload": "0xab"}, None),
    ("cip8 other context", {"kind": "Cip8", "context": "Signature2"}, None),
    ("cip8 aad odd", {"kind": "Cip8", "context": "Signature1", "externalAad": "abc"}, None),
]


def _ours_accepts(parse: Callable[[Any], object], body: Any) -> bool:
    try:
        parse(body)
    except ValidationError:
        return False
    return True


_BODY_ADAPTER: TypeAdapter[SignatureRequestBody] = TypeAdapter(SignatureRequestBody)


def _check_case(
    validator: Draft202012Validator,
    parse: Callable[[Any], object],
    body: Any,
    difference: str | None,
) -> None:
    spec_ok = validator.is_valid(body)
    ours_ok = _ours_accepts(parse, body)
    if difference is None:
        assert ours_ok == spec_ok, f"ours={ours_ok} spec={spec_ok}"
        return
    assert difference in DIFFERENCES
    # Every documented difference is one-sided; this pins which side.
    expected_ours = difference in {"open-network", "null-is-absent"}
    assert (ours_ok, spec_ok) == (expected_ours, not expected_ours)


def test_corpus_has_both_outcomes_and_covers_every_kind() -> None:
    validator = _validator(spec_schema("signature_request_body"))
    outcomes = {validator.is_valid(body) for _, body, _ in CORPUS}
    assert outcomes == {True, False}
    kinds = {body.get("kind") for _, body, _ in CORPUS if isinstance(body, dict)}
    assert set(SIGNATURE_REQUEST_KINDS) <= kinds
    used = {difference for _, _, difference in CORPUS if difference}
    assert used == set(DIFFERENCES) - {"decision-extra", "kind-default"}


@pytest.mark.parametrize(("label", "body", "difference"), CORPUS, ids=[c[0] for c in CORPUS])
def test_signature_request_corpus_agrees_with_the_spec(
    label: str, body: Any, difference: str | None
) -> None:
    validator = _validator(spec_schema("signature_request_body"))
    _check_case(validator, _BODY_ADAPTER.validate_python, body, difference)
    if isinstance(body, dict):
        _check_case(validator, parse_signature_request_body, body, difference)


@pytest.mark.parametrize(
    ("body", "difference"),
    [
        ({"value": "Approved"}, None),
        ({"value": "Denied", "reason": "past the deadline"}, None),
        ({"value": "Denied", "reason": "r" * 1000}, None),
        ({"value": "Denied", "reason": "r" * 1001}, None),
        ({"value": "approved"}, None),
        ({"reason": "x"}, None),
        ({"value": "Approved", "note": "x"}, "decision-extra"),
    ],
)
def test_approval_decision_corpus_agrees_with_the_spec(
    body: dict[str, Any], difference: str | None
) -> None:
    validator = _validator(spec_schema("approval_decision_request"))
    spec_ok = validator.is_valid(body)
    ours_ok = _ours_accepts(ApprovalDecisionRequest.model_validate, body)
    if difference is None:
        assert ours_ok == spec_ok
    else:
        assert (ours_ok, spec_ok) == (False, True)


WEBHOOK_BODIES: list[dict[str, Any]] = [
    {"url": "https://h", "events": ["*"]},
    {"url": "https://h", "events": ["wallet.signature.signed"], "status": "Disabled"},
    {"url": "https://h", "events": list(WEBHOOK_EVENT_KINDS), "description": "d" * 256},
    {"url": "https://h", "events": ["*"], "description": "d" * 257},
    {"url": "https://h", "events": []},
    {"url": "https://h", "events": ["key.signature.signed"]},
    {"url": "https://h", "events": "*"},
    {"url": "https://h", "events": ["*"], "status": "Paused"},
    {"url": "https://h", "events": ["*"], "secret": "s"},
    {"events": ["*"]},
    {"url": 5, "events": ["*"]},
    {},
    {"status": "Enabled"},
]


@pytest.mark.parametrize("body", WEBHOOK_BODIES)
@pytest.mark.parametrize(
    ("fixture", "model"),
    [
        ("webhook_create_request", CreateWebhookRequest),
        ("webhook_update_request", UpdateWebhookRequest),
    ],
)
def test_webhook_request_corpus_agrees_with_the_spec(
    body: dict[str, Any], fixture: str, model: type[BaseModel]
) -> None:
    validator = _validator(spec_schema(fixture))
    assert _ours_accepts(model.model_validate, body) == validator.is_valid(body)


@pytest.mark.parametrize(
    ("fixture", "model"),
    [
        ("approval_decision_request", ApprovalDecisionRequest),
        ("webhook_create_request", CreateWebhookRequest),
        ("webhook_update_request", UpdateWebhookRequest),
    ],
)
def test_other_request_models_match_the_spec(fixture: str, model: type[BaseModel]) -> None:
    schema = spec_schema(fixture)
    expected = shape(schema, schema)
    if fixture == "approval_decision_request":
        # Difference "decision-extra".
        assert expected["additionalProperties"] == "any"
        expected["additionalProperties"] = False
    assert our_shape(model) == expected


def test_webhook_event_kinds_equal_the_spec_enum() -> None:
    events = spec_schema("webhook_create_request")["properties"]["events"]["items"]["anyOf"]
    assert list(WEBHOOK_EVENT_KINDS) == events[0]["enum"]
    assert events[1]["enum"] == ["*"]
    stored_kind = spec_schema("webhook_event_get_response")["properties"]["kind"]["enum"]
    assert list(WEBHOOK_EVENT_KINDS) == stored_kind


# --- response models ------------------------------------------------------------------------


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _object_properties(fixture: str, *path: str) -> set[str]:
    schema = spec_schema(fixture)
    node = _deref(schema, schema)
    for step in path:
        node = _deref(node[step], schema)
    return set(node["properties"])


# (model, fixture, path to the object in the schema, our extra names and where they come from)
RESPONSE_SHAPES: list[tuple[type[BaseModel], str, tuple[str, ...], set[str]]] = [
    (models.KeySignatureRequest, "key_signature_get_response", (), set()),
    (models.KeySignatureRequest, "key_signature_create_response", (), set()),
    (
        models.KeySignatureRequest,
        "key_signature_list_response",
        ("properties", "items", "items"),
        set(),
    ),
    (models.Requester, "key_signature_get_response", ("properties", "requester"), {"appId"}),
    (models.Signature, "key_signature_get_response", ("properties", "signature"), set()),
    (models.KeySignatureList, "key_signature_list_response", (), set()),
    (models.WalletSignatureRequest, "wallet_signature_create_response", (), set()),
    # Old docs: the wallet list page carried walletId; spec 1.578.2 shows keyId.
    (models.WalletSignatureList, "wallet_signature_list_response", (), {"walletId"}),
    (models.Key, "key_get_response", (), set()),
    (models.KeyStore, "key_get_response", ("properties", "store"), set()),
    (models.KeyWalletRef, "key_get_response", ("properties", "wallets", "items"), set()),
    (models.Wallet, "wallet_get_response", (), set()),
    (models.WalletSigningKey, "wallet_get_response", ("properties", "signingKey"), set()),
    (models.Approval, "approval_get_response", (), set()),
    (
        models.ApprovalDecision,
        "approval_get_response",
        ("properties", "decisions", "items"),
        set(),
    ),
    (
        models.PolicyEvaluation,
        "approval_get_response",
        ("properties", "policyEvaluations", "items"),
        set(),
    ),
    (models.ApprovalList, "approval_list_response", (), set()),
    (models.Webhook, "webhook_get_response", (), set()),
    (models.CreatedWebhook, "webhook_create_response", (), set()),
    (models.WebhookList, "webhook_list_response", (), set()),
    # Old docs: deliveryFailed and nextAttemptDate on stored events.
    (models.WebhookEvent, "webhook_event_get_response", (), {"deliveryFailed", "nextAttemptDate"}),
    (models.WebhookEventList, "webhook_event_list_response", (), set()),
    (models.WebhookEventPayload, "webhook_event_payload", (), set()),
]


@pytest.mark.parametrize(
    ("model", "fixture", "path", "extras"),
    RESPONSE_SHAPES,
    ids=[f"{m.__name__}-{f}" for m, f, _, _ in RESPONSE_SHAPES],
)
def test_response_model_names_match_the_spec(
    model: type[BaseModel], fixture: str, path: tuple[str, ...], extras: set[str]
) -> None:
    spec_names = _object_properties(fixture, *path)
    assert _aliases(model) == spec_names | extras


def test_signature_statuses_equal_the_spec_enum() -> None:
    schema = spec_schema("key_signature_get_response")
    spec_statuses = schema["properties"]["status"]["enum"]
    ours = [s.value for s in models.SignatureStatus if s is not models.SignatureStatus.UNKNOWN]
    assert ours == spec_statuses


def _full_key_signature() -> dict[str, Any]:
    return {
        "id": "sig-4sfvl-f4iha-umighfi3hk4t54dr",
        "keyId": "key-01snl-t56gb-j8tsok0vn802p80i",
        "requester": {"userId": "us-3v1ag-v6b36-xxxxxxxxxxxxxxxx", "tokenId": "to-7mkkj"},
        "requestBody": {"kind": "Transaction", "transaction": "0x02e7", "blockchainKind": "Evm"},
        "status": "Confirmed",
        "signature": {"r": "0x01", "s": "0x02", "recid": 1, "encoded": "0x0102"},
        "signatures": [{"r": "0x01", "s": "0x02"}],
        "signedData": "0x02f86a",
        "network": "EthereumSepolia",
        "txHash": "0xabc",
        "fee": "21000",
        "approvalId": "ap-1",
        "reason": "",
        "externalId": "biz-42",
        "dateRequested": "2025-10-21T10:00:00.000Z",
        "datePolicyResolved": "2025-10-21T10:01:00.000Z",
        "dateSigned": "2025-10-21T10:01:01.000Z",
        "dateConfirmed": "2025-10-21T10:02:00.000Z",
    }


WEBHOOK = {
    "id": "wh-705m3-si5pq-k3kkp3vv9fnehdil",
    "url": "https://hooks.example/dfns",
    "events": ["wallet.signature.signed", "*"],
    "status": "Enabled",
    "description": "signgate",
    "dateCreated": "2025-10-21T10:00:00Z",
    "dateUpdated": "2025-10-21T10:00:00Z",
}
STORED_EVENT = {
    "id": "whe-544ul-uqgad-jkgltj5p6fvd04cj",
    "kind": "wallet.signature.signed",
    "date": "2023-11-07T05:31:56Z",
    "data": {"signatureRequest": _full_key_signature()},
    "status": "200",
    "timestampSent": 1701684144,
}
APPROVAL = {
    "id": "ap-2a9in-tt2a1-983lho480p35ejd0",
    "initiatorId": "us-1",
    "status": "Pending",
    "expirationDate": "2023-12-22T21:16:16.659Z",
    "dateCreated": "2023-12-22T20:56:16.662Z",
    "dateUpdated": "2023-12-22T20:56:16.662Z",
    "activity": {"kind": "Wallets:Sign", "signatureRequest": _full_key_signature()},
    "policyEvaluations": [{"policyId": "plc-1", "triggered": True, "reason": "needs approval"}],
    "decisions": [
        {"userId": "us-2", "date": "2023-12-22T20:57:00Z", "value": "Denied", "reason": None}
    ],
}

# (fixture, model, sample that the spec accepts)
SAMPLES: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    ("key_signature_get_response", models.KeySignatureRequest, _full_key_signature()),
    ("key_signature_create_response", models.KeySignatureRequest, _full_key_signature()),
    (
        "key_signature_list_response",
        models.KeySignatureList,
        {"keyId": "key-1", "items": [_full_key_signature()], "nextPageToken": "opaque"},
    ),
    (
        "wallet_signature_create_response",
        models.WalletSignatureRequest,
        {**_full_key_signature(), "walletId": "wa-1"},
    ),
    (
        "key_get_response",
        models.Key,
        {
            "id": "key-01snl-t56gb-j8tsok0vn802p80i",
            "scheme": "EdDSA",
            "curve": "ed25519",
            "publicKey": "e2375c8c",
            "status": "Active",
            "custodial": True,
            "dateCreated": "2025-10-21T10:00:00Z",
            "name": "treasury",
            "imported": False,
            "exported": False,
            "store": {"id": "ks-1", "kind": "Mpc", "keyId": "k-1"},
            "wallets": [{"id": "wa-1", "network": "Solana"}],
        },
    ),
    (
        "wallet_get_response",
        models.Wallet,
        {
            "id": "wa-5pfuu-9euek-h0odgb6snva8ph3k",
            "network": "EthereumSepolia",
            "address": "0x00e3495cf6af59008f22ffaf32d4c92ac33dac47",
            "signingKey": {
                "scheme": "ECDSA",
                "curve": "secp256k1",
                "publicKey": "02ab",
                "id": "key-01snl-t56gb-j8tsok0vn802p80i",
            },
            "status": "Active",
            "tags": ["treasury"],
            "custodial": True,
            "externalId": "w-1",
            "dateCreated": "2025-10-21T10:00:00Z",
        },
    ),
    ("approval_get_response", models.Approval, APPROVAL),
    ("approval_list_response", models.ApprovalList, {"items": [APPROVAL], "nextPageToken": "t"}),
    ("webhook_get_response", models.Webhook, WEBHOOK),
    ("webhook_create_response", models.CreatedWebhook, {**WEBHOOK, "secret": "whs-1"}),
    ("webhook_list_response", models.WebhookList, {"items": [WEBHOOK]}),
    ("webhook_event_get_response", models.WebhookEvent, STORED_EVENT),
    ("webhook_event_list_response", models.WebhookEventList, {"items": [STORED_EVENT]}),
]


@pytest.mark.parametrize(("fixture", "model", "sample"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_spec_valid_responses_parse_and_keep_their_names(
    fixture: str, model: type[BaseModel], sample: dict[str, Any]
) -> None:
    _validator(spec_schema(fixture)).validate(sample)
    parsed = model.model_validate(sample)
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert set(dumped) == set(sample)


def test_webhook_payload_envelope_parses() -> None:
    # The spec's `webhooks` section has only transfer/offer events: check the envelope with
    # `kind` and `data` opened up to any event, and our parse of a signature event.
    schema = copy.deepcopy(spec_schema("webhook_event_payload"))
    schema["properties"]["kind"] = {"type": "string", "enum": list(WEBHOOK_EVENT_KINDS)}
    schema["properties"]["data"] = {"type": "object"}
    sample = {
        "id": "whe-544ul-uqgad-jkgltj5p6fvd04cj",
        "kind": "wallet.signature.signed",
        "date": "2023-11-07T05:31:56Z",
        "data": {"signatureRequest": _full_key_signature()},
        "timestampSent": 1701684144,
        "deliveryAttempt": 1,
    }
    _validator(schema).validate(sample)
    assert _validator(schema).is_valid({**sample, "retryOf": "whe-1"})
    assert not _validator(schema).is_valid(
        {k: v for k, v in sample.items() if k != "deliveryAttempt"}
    )
    payload = models.WebhookEventPayload.model_validate(sample)
    assert payload.signature_request() is not None


def test_seed_keys_examples_are_spec_valid() -> None:
    body_validator = _validator(spec_schema("signature_request_body"))
    response_validator = _validator(spec_schema("key_signature_get_response"))
    checked = 0
    for example in seed_examples():
        if example.seed.startswith(("001", "003")):
            data = example.data
            validator = response_validator if "requestBody" in data else body_validator
            validator.validate(data)
            checked += 1
        elif example.seed.startswith("002") and "requestBody" not in example.data:
            # G2-era request bodies are still valid bodies of the same oneOf.
            body_validator.validate(example.data)
            checked += 1
    assert checked == 11
