"""Tolerant response models, the seed examples, and the normalised signature view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from signgate.dfns.models import (
    TERMINAL_STATUSES,
    Approval,
    ApprovalList,
    CreatedWebhook,
    Key,
    KeySignatureList,
    KeySignatureRequest,
    PublicKey,
    PublicKeySignature,
    SignatureGeneration,
    SignatureRequestView,
    SignatureStatus,
    Wallet,
    WalletSignatureList,
    WalletSignatureRequest,
    Webhook,
    WebhookEvent,
    WebhookEventList,
    WebhookEventPayload,
    WebhookList,
    normalize_status,
)
from signgate.dfns.requests import (
    Eip712Request,
    HashRequest,
    LegacyHashRequest,
    MessageRequest,
    parse_signature_request_body,
    to_wire,
)

from ._fixtures import SeedExample, seed_examples

SEED_G3_MD = "001_1051e33e649ccdc3"
SEED_G2 = "002_040fb1d4aeb02e4c"
SEED_G3_TXT = "003_4c01bff0a6262823"
SEED_G1 = "004_8605398c051b49b2"

# What each extracted example is, in page order.
EXPECTED_SEED_EXAMPLES: dict[tuple[str, int], str] = {
    (SEED_G3_MD, 0): "request:Hash",
    (SEED_G3_MD, 1): "request:Hash",
    (SEED_G3_MD, 2): "request:Message",
    (SEED_G3_MD, 3): "keys",
    (SEED_G2, 0): "request:Hash",
    (SEED_G2, 1): "wallets",
    (SEED_G2, 2): "request:Message",
    (SEED_G2, 3): "wallets",
    (SEED_G2, 4): "request:Eip712",
    (SEED_G2, 5): "wallets",
    (SEED_G3_TXT, 0): "request:Hash",
    (SEED_G3_TXT, 1): "request:Hash",
    (SEED_G3_TXT, 2): "request:Message",
    (SEED_G3_TXT, 3): "keys",
    (SEED_G1, 0): "legacy-request",
    (SEED_G1, 1): "public-keys",
}
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "Hash": HashRequest,
    "Message": MessageRequest,
    "Eip712": Eip712Request,
}
RESPONSE_MODELS: dict[
    str, type[KeySignatureRequest | WalletSignatureRequest | PublicKeySignature]
] = {
    "keys": KeySignatureRequest,
    "wallets": WalletSignatureRequest,
    "public-keys": PublicKeySignature,
}


def key_tree(value: Any) -> Any:
    """The nested key structure of a JSON value (the values themselves are ignored)."""
    if isinstance(value, dict):
        return {key: key_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [key_tree(item) for item in value]
    return None


def _example_id(example: SeedExample) -> str:
    return f"{example.seed[:3]}#{example.index}"


# --- seeds ----------------------------------------------------------------------------------


def test_every_seed_example_is_found_and_classified() -> None:
    found = {(e.seed, e.index) for e in seed_examples()}
    assert found == set(EXPECTED_SEED_EXAMPLES)


def test_only_the_documented_trailing_comma_was_repaired() -> None:
    repaired = {(e.seed, e.index) for e in seed_examples() if e.repaired}
    # The same "200 Success" example, in the markdown page and its plain-text rendering.
    assert repaired == {(SEED_G3_MD, 3), (SEED_G3_TXT, 3)}


@pytest.mark.parametrize("example", seed_examples(), ids=_example_id)
def test_seed_example_parses_into_its_model_and_keeps_dfns_names(example: SeedExample) -> None:
    expected = EXPECTED_SEED_EXAMPLES[(example.seed, example.index)]
    if expected.startswith("request:"):
        request = parse_signature_request_body(example.data)
        assert type(request) is REQUEST_MODELS[expected.removeprefix("request:")]
        assert to_wire(request) == example.data
    elif expected == "legacy-request":
        assert to_wire(LegacyHashRequest.model_validate(example.data)) == example.data
    else:
        model = RESPONSE_MODELS[expected].model_validate(example.data)
        dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        assert key_tree(dumped) == key_tree(example.data)
        view = model.view()
        assert view.generation == expected
        assert view.id == example.data["id"]
        assert view.raw_status == example.data["status"]
        assert view.status is not SignatureStatus.UNKNOWN


@pytest.mark.parametrize(
    "example",
    [
        e
        for e in seed_examples()
        if EXPECTED_SEED_EXAMPLES[(e.seed, e.index)] in {"keys", "wallets"}
    ],
    ids=_example_id,
)
def test_echoed_request_bodies_are_valid_requests(example: SeedExample) -> None:
    request = parse_signature_request_body(example.data["requestBody"])
    assert to_wire(request) == example.data["requestBody"]


def test_keys_seed_response_view() -> None:
    (example,) = [e for e in seed_examples() if (e.seed, e.index) == (SEED_G3_MD, 3)]
    view = KeySignatureRequest.model_validate(example.data).view()
    assert view.generation == "keys"
    assert view.key_id == "key-1f04s-lqc9q-xxxxxxxxxxxxxxxx"
    assert view.status is SignatureStatus.SIGNED
    assert view.is_terminal
    assert view.signature is not None
    assert view.signature.r == "0x05e365d4304eaa78516eb309bff91f8c12e5445a431e3f2428239678d0150c6c"
    assert view.signature.recid == 0
    assert view.signature.encoded is None
    assert view.signatures == []
    assert view.date_requested == datetime(2023, 5, 15, 20, 21, 11, 576000, tzinfo=UTC)
    assert view.date_signed == datetime(2024, 1, 10, 19, 7, 40, 533000, tzinfo=UTC)
    assert view.request_body == example.data["requestBody"]


def test_wallets_seed_responses_view() -> None:
    views = [
        WalletSignatureRequest.model_validate(e.data).view()
        for e in seed_examples()
        if EXPECTED_SEED_EXAMPLES[(e.seed, e.index)] == "wallets"
    ]
    assert [v.raw_status for v in views] == ["Pending", "Pending", "Signed"]
    assert [v.is_terminal for v in views] == [False, False, True]
    assert {v.wallet_id for v in views} == {"wa-1f04s-lqc9q-xxxxxxxxxxxxxxxx"}
    assert [v.network for v in views] == ["EthereumSepolia", "KeyEdDSA", "EthereumSepolia"]
    assert views[2].signature is not None
    assert views[2].signature.encoded is not None
    assert views[2].signature.encoded.endswith("1c")


def test_requester_app_id_of_the_wallets_era_is_read() -> None:
    (example,) = [e for e in seed_examples() if (e.seed, e.index) == (SEED_G2, 1)]
    model = WalletSignatureRequest.model_validate(example.data)
    assert model.requester.app_id == "ap-24vva-92s32-xxxxxxxxxxxxxxxx"


def test_legacy_seed_response_view() -> None:
    (example,) = [e for e in seed_examples() if (e.seed, e.index) == (SEED_G1, 1)]
    model = PublicKeySignature.model_validate(example.data)
    view = model.view()
    assert view.generation == "public-keys"
    assert view.public_key_id == "pk-orange-magnesium-a0606d08b2"
    assert view.status is SignatureStatus.PENDING
    # r and s are "" while pending: no signature yet, even though recid is 0.
    assert view.signature is None
    assert view.request_body == {"hash": example.data["hash"]}
    assert view.date_requested == datetime(2022, 7, 19, 21, 41, 32, 530000, tzinfo=UTC)
    assert model.initiator == example.data["initiator"]


# --- status normalisation -------------------------------------------------------------------

LEGACY = {
    "id": "si-colorado-ten-45249ad166",
    "publicKeyId": "pk-orange-magnesium-a0606d08b2",
    "hash": "0x561b555fac475c204fff5d709823f0ab4fcc826bd00900e4e8db26e7e5e328b2",
    "dateCreated": "2022-07-19T21:41:32.530Z",
}


def test_legacy_executed_maps_to_signed_with_its_signature() -> None:
    model = PublicKeySignature.model_validate(
        {**LEGACY, "status": "Executed", "r": "0x01", "s": "0x02", "recid": 1}
    )
    view = model.view()
    assert view.status is SignatureStatus.SIGNED
    assert view.raw_status == "Executed"
    assert view.is_terminal
    assert view.signature is not None
    assert (view.signature.r, view.signature.s, view.signature.recid) == ("0x01", "0x02", 1)


def test_legacy_executed_without_r_and_s_has_no_signature() -> None:
    view = PublicKeySignature.model_validate(
        {**LEGACY, "status": "Executed", "r": "", "s": ""}
    ).view()
    assert view.status is SignatureStatus.SIGNED
    assert view.signature is None


def test_legacy_rejected_keeps_no_signature_even_with_r_and_s() -> None:
    view = PublicKeySignature.model_validate(
        {**LEGACY, "status": "Rejected", "r": "0x01", "s": "0x02"}
    ).view()
    assert view.status is SignatureStatus.REJECTED
    assert view.signature is None


@pytest.mark.parametrize(
    ("raw", "generation", "expected"),
    [
        ("Pending", "keys", SignatureStatus.PENDING),
        ("Executing", "keys", SignatureStatus.EXECUTING),
        ("Signed", "keys", SignatureStatus.SIGNED),
        ("Confirmed", "wallets", SignatureStatus.CONFIRMED),
        ("Failed", "wallets", SignatureStatus.FAILED),
        ("Rejected", "wallets", SignatureStatus.REJECTED),
        ("Executed", "public-keys", SignatureStatus.SIGNED),
        ("Pending", "public-keys", SignatureStatus.PENDING),
        ("Rejected", "public-keys", SignatureStatus.REJECTED),
        ("Failed", "public-keys", SignatureStatus.FAILED),
        # Each vocabulary belongs to its generation only.
        ("Executed", "keys", SignatureStatus.UNKNOWN),
        ("Signed", "public-keys", SignatureStatus.UNKNOWN),
        ("Confirmed", "public-keys", SignatureStatus.UNKNOWN),
        ("signed", "keys", SignatureStatus.UNKNOWN),
        ("Unknown", "keys", SignatureStatus.UNKNOWN),
        ("Broadcasted", "keys", SignatureStatus.UNKNOWN),
    ],
)
def test_normalize_status(
    raw: str, generation: SignatureGeneration, expected: SignatureStatus
) -> None:
    assert normalize_status(raw, generation) is expected


def test_terminal_statuses() -> None:
    terminal = {
        SignatureStatus.SIGNED,
        SignatureStatus.CONFIRMED,
        SignatureStatus.FAILED,
        SignatureStatus.REJECTED,
    }
    assert terminal == TERMINAL_STATUSES
    assert SignatureStatus.UNKNOWN not in TERMINAL_STATUSES
    assert SignatureStatus.PENDING not in TERMINAL_STATUSES


KEY_SIGNATURE: dict[str, Any] = {
    "id": "sig-4sfvl-f4iha-umighfi3hk4t54dr",
    "keyId": "key-01snl-t56gb-j8tsok0vn802p80i",
    "requester": {"userId": "us-3v1ag-v6b36-xxxxxxxxxxxxxxxx"},
    "requestBody": {"kind": "Hash", "hash": "00" * 32, "externalId": "biz-42"},
    "status": "Pending",
    "approvalId": "ap-2a9in-tt2a1-983lho480p35ejd0",
    "externalId": "biz-42",
    "dateRequested": "2025-10-21T10:00:00.000Z",
}


def test_unknown_status_becomes_unknown_and_keeps_the_raw_value() -> None:
    view = KeySignatureRequest.model_validate({**KEY_SIGNATURE, "status": "Broadcasting"}).view()
    assert view.status is SignatureStatus.UNKNOWN
    assert view.raw_status == "Broadcasting"
    assert not view.is_terminal


def test_pending_request_with_approval() -> None:
    view = KeySignatureRequest.model_validate(KEY_SIGNATURE).view()
    assert view.status is SignatureStatus.PENDING
    assert view.approval_id == "ap-2a9in-tt2a1-983lho480p35ejd0"
    assert view.external_id == "biz-42"
    assert view.wallet_id is None
    assert not view.is_terminal


def test_all_dates_are_parsed_and_aware() -> None:
    model = KeySignatureRequest.model_validate(
        {
            **KEY_SIGNATURE,
            "status": "Confirmed",
            "datePolicyResolved": "2025-10-21T10:05:00Z",
            "dateSigned": "2025-10-21T10:05:01.5+00:00",
            "dateConfirmed": "2025-10-21T11:00:00.000Z",
        }
    )
    view = model.view()
    assert view.date_requested == datetime(2025, 10, 21, 10, 0, tzinfo=UTC)
    assert view.date_policy_resolved == datetime(2025, 10, 21, 10, 5, tzinfo=UTC)
    assert view.date_signed == datetime(2025, 10, 21, 10, 5, 1, 500000, tzinfo=UTC)
    assert view.date_confirmed == datetime(2025, 10, 21, 11, 0, tzinfo=UTC)


def test_naive_dates_are_read_as_utc_in_the_view() -> None:
    view = KeySignatureRequest.model_validate(
        {**KEY_SIGNATURE, "dateRequested": "2025-10-21T10:00:00"}
    ).view()
    assert view.date_requested == datetime(2025, 10, 21, 10, 0, tzinfo=UTC)


def test_malformed_date_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        KeySignatureRequest.model_validate({**KEY_SIGNATURE, "dateRequested": "yesterday"})
    assert [e["loc"] for e in caught.value.errors()] == [("dateRequested",)]


def test_unknown_fields_are_kept_and_round_trip() -> None:
    data = {
        **KEY_SIGNATURE,
        "details": {"chain": "x"},
        "walletId": "wa-1",
        "signature": {"r": "0x01", "s": "0x02", "recid": 1, "v": 28},
    }
    model = KeySignatureRequest.model_validate(data)
    assert model.model_extra == {"details": {"chain": "x"}, "walletId": "wa-1"}
    dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert key_tree(dumped) == key_tree(data)
    assert dumped["details"] == {"chain": "x"}
    assert model.view().wallet_id == "wa-1"


def test_request_body_is_kept_as_sent_even_for_a_kind_newer_than_this_client() -> None:
    body = {"kind": "Snip12", "data": {"types": {}}, "futureField": 1}
    view = KeySignatureRequest.model_validate({**KEY_SIGNATURE, "requestBody": body}).view()
    assert view.request_body == body


def test_psbt_response_with_several_signatures() -> None:
    signatures = [
        {"r": "0x01", "s": "0x02", "encoded": "0x3045"},
        {"r": "0x03", "s": "0x04", "encoded": "0x3044"},
    ]
    view = KeySignatureRequest.model_validate(
        {**KEY_SIGNATURE, "status": "Signed", "signatures": signatures, "signedData": "0x7073"}
    ).view()
    assert [s.encoded for s in view.signatures] == ["0x3045", "0x3044"]
    assert view.signature is None
    assert view.signed_data == "0x7073"


def test_missing_required_field_is_reported_by_its_dfns_name() -> None:
    data = {k: v for k, v in KEY_SIGNATURE.items() if k != "keyId"}
    with pytest.raises(ValidationError) as caught:
        KeySignatureRequest.model_validate(data)
    assert [e["loc"] for e in caught.value.errors()] == [("keyId",)]


def test_wallet_signature_request_requires_wallet_id_and_network() -> None:
    with pytest.raises(ValidationError) as caught:
        WalletSignatureRequest.model_validate(KEY_SIGNATURE)
    assert {e["loc"] for e in caught.value.errors()} == {("walletId",), ("network",)}
    model = WalletSignatureRequest.model_validate(
        {**KEY_SIGNATURE, "walletId": "wa-1", "network": "Ethereum"}
    )
    view = model.view()
    assert (view.generation, view.wallet_id, view.key_id) == (
        "wallets",
        "wa-1",
        KEY_SIGNATURE["keyId"],
    )


# --- the view crosses Temporal boundaries ---------------------------------------------------


def test_view_round_trips_through_json() -> None:
    view = KeySignatureRequest.model_validate(
        {**KEY_SIGNATURE, "status": "Signed", "signature": {"r": "0x01", "s": "0x02"}}
    ).view()
    again = SignatureRequestView.model_validate_json(view.model_dump_json())
    assert again == view
    assert again.status is SignatureStatus.SIGNED


def test_view_is_frozen_and_ignores_unknown_fields_when_read_back() -> None:
    view = KeySignatureRequest.model_validate(KEY_SIGNATURE).view()
    with pytest.raises(ValidationError, match="frozen"):
        view.status = SignatureStatus.SIGNED  # type: ignore[misc]
    data = {**view.model_dump(mode="json"), "addedInAFutureVersion": True}
    assert SignatureRequestView.model_validate(data) == view


def test_view_uses_snake_case_names() -> None:
    dumped = KeySignatureRequest.model_validate(KEY_SIGNATURE).view().model_dump()
    assert "raw_status" in dumped
    assert "date_requested" in dumped
    assert not any(any(c.isupper() for c in key) for key in dumped)


# --- lists and pagination -------------------------------------------------------------------


def test_key_signature_list_keeps_the_token_opaque() -> None:
    token = "eyJrIjoiMSJ9==/+x"
    page = KeySignatureList.model_validate(
        {"keyId": KEY_SIGNATURE["keyId"], "items": [KEY_SIGNATURE], "nextPageToken": token}
    )
    assert page.next_page_token == token
    assert [item.id for item in page.items] == [KEY_SIGNATURE["id"]]
    last = KeySignatureList.model_validate({"keyId": "key-1", "items": []})
    assert last.next_page_token is None


def test_wallet_signature_list_items_inherit_the_page_wallet_id() -> None:
    item = {**KEY_SIGNATURE, "network": "Ethereum"}
    page = WalletSignatureList.model_validate({"walletId": "wa-9", "items": [item]})
    assert page.items[0].wallet_id == "wa-9"


def test_wallet_signature_list_takes_the_wallet_id_from_context() -> None:
    # Spec 1.578.2 shows `keyId` on this page instead of `walletId`.
    data = {"keyId": "key-1", "items": [{**KEY_SIGNATURE, "network": "Ethereum"}]}
    with pytest.raises(ValidationError):
        WalletSignatureList.model_validate(data)
    page = WalletSignatureList.model_validate(data, context={"wallet_id": "wa-7"})
    assert page.items[0].wallet_id == "wa-7"
    assert page.key_id == "key-1"
    own = {**KEY_SIGNATURE, "network": "Ethereum", "walletId": "wa-own"}
    page = WalletSignatureList.model_validate({"items": [own]}, context={"wallet_id": "wa-7"})
    assert page.items[0].wallet_id == "wa-own"


# --- keys, wallets, approvals, webhooks -----------------------------------------------------


def test_key_and_wallet() -> None:
    key = Key.model_validate(
        {
            "id": "key-01snl-t56gb-j8tsok0vn802p80i",
            "scheme": "ECDSA",
            "curve": "secp256k1",
            "publicKey": "02e2375c8c9e87bfcd0be8f29d76c818cabacd51584f72cb2222d49a13b036d8",
            "status": "Active",
            "custodial": True,
            "dateCreated": "2025-10-21T10:00:00Z",
            "store": {"id": "ks-1", "kind": "Mpc", "keyId": "k-1"},
            "wallets": [{"id": "wa-1", "network": "Ethereum"}],
            "futureFlag": True,
        }
    )
    assert key.store is not None
    assert key.store.kind == "Mpc"
    assert key.wallets[0].network == "Ethereum"
    assert key.model_extra == {"futureFlag": True}
    wallet = Wallet.model_validate(
        {
            "id": "wa-5pfuu-9euek-h0odgb6snva8ph3k",
            "network": "EthereumSepolia",
            "address": "0x00e3495cf6af59008f22ffaf32d4c92ac33dac47",
            "signingKey": {
                "scheme": "ECDSA",
                "curve": "secp256k1",
                "publicKey": "02ab",
                "id": "key-1",
            },
            "status": "Active",
            "tags": ["treasury"],
            "custodial": True,
            "dateCreated": "2025-10-21T10:00:00Z",
        }
    )
    assert wallet.key_id == "key-1"
    older = Wallet.model_validate(
        {
            "id": "wa-1",
            "network": "Bitcoin",
            "signingKey": {"scheme": "ECDSA", "curve": "secp256k1", "publicKey": "02ab"},
            "status": "Active",
        }
    )
    assert older.key_id is None
    assert older.tags == []
    assert PublicKey.model_validate({"id": "pk-1", "publicKey": "02ab"}).scheme is None


APPROVAL: dict[str, Any] = {
    "id": "ap-2a9in-tt2a1-983lho480p35ejd0",
    "initiatorId": "us-3v1ag-v6b36-xxxxxxxxxxxxxxxx",
    "status": "Approved",
    "expirationDate": "2023-12-22T21:16:16.659Z",
    "dateCreated": "2023-12-22T20:56:16.662Z",
    "dateUpdated": "2023-12-22T20:58:00.000Z",
    "dateResolved": "2023-12-22T20:58:00.000Z",
    "activity": {"kind": "Wallets:Sign", "signatureRequest": KEY_SIGNATURE},
    "policyEvaluations": [{"policyId": "plc-1", "triggered": True, "reason": "amount > 100"}],
    "decisions": [
        {"userId": "us-2", "date": "2023-12-22T20:58:00.000Z", "value": "Approved", "reason": None}
    ],
}


def test_approval() -> None:
    approval = Approval.model_validate(APPROVAL)
    assert approval.signature_request_id == KEY_SIGNATURE["id"]
    assert approval.policy_evaluations[0].triggered is True
    assert approval.decisions[0].value == "Approved"
    assert approval.decisions[0].reason is None
    assert approval.decisions[0].date == datetime(2023, 12, 22, 20, 58, tzinfo=UTC)
    dumped = approval.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert key_tree(dumped) == key_tree(APPROVAL)
    other = Approval.model_validate(
        {**APPROVAL, "activity": {"kind": "Policies:Modify", "changeRequest": {"id": "cr-1"}}}
    )
    assert other.signature_request_id is None
    page = ApprovalList.model_validate({"items": [APPROVAL], "nextPageToken": "t"})
    assert page.items[0].id == APPROVAL["id"]


WEBHOOK: dict[str, Any] = {
    "id": "wh-705m3-si5pq-k3kkp3vv9fnehdil",
    "url": "https://hooks.example/dfns",
    "events": ["wallet.signature.signed", "*"],
    "status": "Enabled",
    "description": "signgate",
    "dateCreated": "2025-10-21T10:00:00Z",
    "dateUpdated": "2025-10-21T10:00:00Z",
}
SECRET = "whs-super-secret-value-0123456789"


def test_created_webhook_secret_never_shows() -> None:
    created = CreatedWebhook.model_validate({**WEBHOOK, "secret": SECRET})
    assert created.secret.get_secret_value() == SECRET
    for text in (repr(created), str(created), created.model_dump_json(), str(created.model_dump())):
        assert SECRET not in text
    assert Webhook.model_validate(WEBHOOK).events == ["wallet.signature.signed", "*"]
    page = WebhookList.model_validate({"items": [WEBHOOK]})
    assert page.items[0].id == WEBHOOK["id"]


def test_created_webhook_requires_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        CreatedWebhook.model_validate(WEBHOOK)
    assert [e["loc"] for e in caught.value.errors()] == [("secret",)]


def test_stored_webhook_events() -> None:
    event = {
        "id": "whe-544ul-uqgad-jkgltj5p6fvd04cj",
        "kind": "wallet.signature.signed",
        "date": "2023-11-07T05:31:56Z",
        "data": {"signatureRequest": KEY_SIGNATURE},
        "status": "500",
        "error": "upstream timeout",
        "timestampSent": 1701684144,
        "deliveryFailed": True,
        "nextAttemptDate": "2023-11-07T05:43:56Z",
    }
    stored = WebhookEvent.model_validate(event)
    assert stored.delivery_failed is True
    assert stored.next_attempt_date == datetime(2023, 11, 7, 5, 43, 56, tzinfo=UTC)
    page = WebhookEventList.model_validate({"items": [event], "nextPageToken": "n"})
    assert page.items[0].status == "500"


def test_delivered_webhook_payload_and_its_signature_request() -> None:
    payload = WebhookEventPayload.model_validate(
        {
            "id": "whe-544ul-uqgad-jkgltj5p6fvd04cj",
            "kind": "wallet.signature.signed",
            "date": "2023-11-07T05:31:56Z",
            "data": {"signatureRequest": {**KEY_SIGNATURE, "status": "Signed"}},
            "timestampSent": 1701684144,
            "deliveryAttempt": 2,
            "retryOf": "whe-aaaaa-bbbbb-cccccccccccccccc",
        }
    )
    assert payload.delivery_attempt == 2
    assert payload.retry_of == "whe-aaaaa-bbbbb-cccccccccccccccc"
    request = payload.signature_request()
    assert request is not None
    assert request.external_id == "biz-42"
    assert request.view().status is SignatureStatus.SIGNED
    approval_event = payload.model_copy(update={"data": {"approval": APPROVAL}})
    assert approval_event.signature_request() is None
    broken = payload.model_copy(update={"data": {"signatureRequest": {"id": "sig-1"}}})
    with pytest.raises(ValidationError):
        broken.signature_request()
