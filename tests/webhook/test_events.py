"""What a verified event means: status hints, approval progress, or nothing for us."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from signgate.dfns.models import SignatureStatus
from signgate.webhook.events import (
    SUBSCRIBED_EVENTS,
    ApprovalNotice,
    IgnoredNotice,
    SignatureNotice,
    parse_notice,
)
from signgate.webhook.verify import Rejection, WebhookRejected
from tests.webhook.support import EXTERNAL_ID, approval, event, signature_request


def test_a_signed_event_becomes_a_status_hint() -> None:
    payload = event("wallet.signature.signed", attempt=2, retryOf="whe-previous")
    notice = parse_notice(payload)
    assert isinstance(notice, SignatureNotice)
    assert notice.worth_delivering
    hint = notice.status_event()
    assert hint.signature_id == "sig-1"
    assert hint.status is SignatureStatus.SIGNED
    assert hint.external_id == EXTERNAL_ID
    assert hint.source == "webhook"
    assert hint.event_id == payload["id"]
    assert hint.occurred_at == datetime(2025, 1, 1, 0, 0, 6, tzinfo=UTC)
    assert notice.attempt == 2


def _signed_request(**fields: Any) -> dict[str, Any]:
    request = signature_request("Signed")
    request["signature"] = {"r": "0x" + "11" * 32, "s": "0x" + "22" * 32, "recid": 1}
    request.update(fields)
    return request


def test_a_signed_event_carries_the_request_as_a_read_would_see_it() -> None:
    notice = parse_notice(event(data={"signatureRequest": _signed_request()}))
    assert isinstance(notice, SignatureNotice) and notice.view is not None
    view = notice.view
    assert (view.generation, view.id, view.key_id) == ("keys", "sig-1", "key-1")
    assert view.status is SignatureStatus.SIGNED and view.signature is not None
    assert view.request_body == {}, "the echoed body stays out of history, as after a read"
    assert notice.status_event().view == view


def test_a_wallets_api_request_is_carried_as_one() -> None:
    wallet = _signed_request(walletId="wa-1", network="Ethereum")
    del wallet["keyId"]
    notice = parse_notice(event(data={"signatureRequest": wallet}))
    assert isinstance(notice, SignatureNotice) and notice.view is not None
    assert (notice.view.generation, notice.view.wallet_id) == ("wallets", "wa-1")


@pytest.mark.parametrize(
    "request_body",
    [
        signature_request("Signed"),  # no signature
        _signed_request(dateRequested="not a date"),  # not Dfns's object
        {k: v for k, v in _signed_request().items() if k != "requester"},
    ],
)
def test_an_event_without_a_whole_signed_request_is_a_hint_only(
    request_body: dict[str, Any],
) -> None:
    notice = parse_notice(event(data={"signatureRequest": request_body}))
    assert isinstance(notice, SignatureNotice) and notice.worth_delivering
    assert notice.view is None and notice.status_event().view is None


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("wallet.signature.failed", "Failed"),
        # A signature proves Signed, not Confirmed (nor a txHash): a hint only.
        ("wallet.signature.signed", "Confirmed"),
    ],
)
def test_only_a_signed_request_is_carried(kind: str, status: str) -> None:
    request = _signed_request(status=status)
    notice = parse_notice(event(kind, {"signatureRequest": request}))
    assert isinstance(notice, SignatureNotice) and notice.view is None


def test_copies_with_other_signatures_are_not_duplicates() -> None:
    one = parse_notice(event(data={"signatureRequest": _signed_request()}))
    again = parse_notice(event(data={"signatureRequest": _signed_request()}, attempt=2))
    other_sig = {"r": "0x" + "33" * 32, "s": "0x" + "22" * 32, "recid": 1}
    other = parse_notice(event(data={"signatureRequest": _signed_request(signature=other_sig)}))
    other_recid = {"r": "0x" + "11" * 32, "s": "0x" + "22" * 32, "recid": 0}
    recid = parse_notice(event(data={"signatureRequest": _signed_request(signature=other_recid)}))
    assert isinstance(one, SignatureNotice) and isinstance(again, SignatureNotice)
    assert isinstance(other, SignatureNotice) and isinstance(recid, SignatureNotice)
    assert one.dedupe_key == again.dedupe_key
    assert one.dedupe_key != other.dedupe_key
    assert one.dedupe_key != recid.dedupe_key


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("wallet.signature.rejected", SignatureStatus.REJECTED),
        ("wallet.signature.failed", SignatureStatus.FAILED),
    ],
)
def test_terminal_kinds_carry_their_status(kind: str, status: SignatureStatus) -> None:
    notice = parse_notice(event(kind, {"signatureRequest": signature_request(str(status))}))
    assert isinstance(notice, SignatureNotice)
    assert notice.status_event().status is status


def test_the_kind_stands_in_for_a_missing_or_new_status() -> None:
    request = signature_request()
    del request["status"]
    notice = parse_notice(event("wallet.signature.signed", {"signatureRequest": request}))
    assert isinstance(notice, SignatureNotice) and notice.status is SignatureStatus.SIGNED
    request["status"] = "Teleported"
    notice = parse_notice(event("wallet.signature.rejected", {"signatureRequest": request}))
    assert isinstance(notice, SignatureNotice) and notice.status is SignatureStatus.REJECTED
    assert notice.raw_status == "Teleported"


def test_a_requested_event_moves_nothing() -> None:
    notice = parse_notice(
        event("wallet.signature.requested", {"signatureRequest": signature_request("Pending")})
    )
    assert isinstance(notice, SignatureNotice)
    assert not notice.worth_delivering


def test_duplicates_share_a_key_whatever_the_attempt() -> None:
    first = parse_notice(event(attempt=1))
    again = parse_notice(event(attempt=3))
    other = parse_notice(event(data={"signatureRequest": signature_request("Failed")}))
    assert isinstance(first, SignatureNotice) and isinstance(again, SignatureNotice)
    assert isinstance(other, SignatureNotice)
    assert first.event_id != again.event_id
    assert first.dedupe_key == again.dedupe_key != other.dedupe_key


def test_an_approval_event_reports_decisions() -> None:
    decisions = [
        {"userId": "us-alice", "date": "2025-01-01T00:00:04.000Z", "value": "Approved"},
        {"userId": "us-bob", "date": "2025-01-01T00:00:05.000Z", "value": "Denied", "reason": "no"},
    ]
    notice = parse_notice(
        event("policy.approval.resolved", {"approval": approval("Denied", decisions=decisions)})
    )
    assert isinstance(notice, ApprovalNotice)
    assert notice.external_id == EXTERNAL_ID
    assert notice.event.approval_id == "ap-1"
    assert notice.event.status == "Denied"
    assert notice.event.signature_id == "sig-1"
    assert [(d.user_id, d.value, d.reason) for d in notice.event.decisions] == [
        ("us-alice", "Approved", None),
        ("us-bob", "Denied", "no"),
    ]
    assert notice.event.quorum is None
    pending = parse_notice(event("policy.approval.pending", {"approval": approval("Pending")}))
    assert isinstance(pending, ApprovalNotice)
    assert pending.dedupe_key != notice.dedupe_key


def test_a_resolved_approval_event_carries_the_whole_approval() -> None:
    raw = approval("Approved")
    raw.update(dateResolved="2025-01-01T00:00:05.000Z", expirationDate="2025-01-02T00:00:00.000Z")
    notice = parse_notice(event("policy.approval.resolved", {"approval": raw}))
    assert isinstance(notice, ApprovalNotice)
    assert notice.event.initiator_id == "us-engine"
    assert notice.event.date_resolved == datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert notice.event.expiration_date == datetime(2025, 1, 2, tzinfo=UTC)
    # A pending approval's dates say nothing final, whatever the event carries.
    raw["status"] = "Pending"
    pending = parse_notice(event("policy.approval.pending", {"approval": raw}))
    assert isinstance(pending, ApprovalNotice)
    assert pending.event.date_resolved is None
    assert pending.event.expiration_date == datetime(2025, 1, 2, tzinfo=UTC)


def test_approvals_that_gate_no_signature_request_are_ignored() -> None:
    raw = approval()
    raw["activity"] = {"kind": "Policies:Modify", "changeRequest": {"id": "cr-1"}}
    notice = parse_notice(event("policy.approval.pending", {"approval": raw}))
    assert isinstance(notice, IgnoredNotice)
    assert "Policies:Modify" in notice.reason
    old_shape = parse_notice(event("policy.approval.resolved", {"activityId": "sig-1"}))
    assert isinstance(old_shape, IgnoredNotice)


def test_dfns_kinds_we_do_not_act_on_are_ignored() -> None:
    for kind in ("key.created", "policy.triggered", "wallet.transfer.confirmed", "swap.failed"):
        notice = parse_notice(event(kind, {"whatever": 1}))
        assert isinstance(notice, IgnoredNotice)
        assert notice.kind == kind


def test_the_sandbox_ping_is_ignored() -> None:
    notice = parse_notice(event("webhook.ping", {"webhookId": "wh-1", "message": "hi"}))
    assert isinstance(notice, IgnoredNotice)


def test_unknown_kind_is_422() -> None:
    with pytest.raises(WebhookRejected) as info:
        parse_notice(event("wallet.signature.teleported"))
    assert info.value.reason is Rejection.UNKNOWN_KIND
    assert info.value.status == 422
    assert "wallet.signature.teleported" in info.value.message


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p.pop("kind"), "kind"),
        (lambda p: p.pop("id"), "id"),
        (lambda p: p.pop("deliveryAttempt"), "deliveryAttempt"),
        (lambda p: p.update(data=[1]), "data"),
        (lambda p: p.update(date="yesterday"), "date"),
        (lambda p: p.update(data={}), "data.signatureRequest"),
        (lambda p: p["data"]["signatureRequest"].pop("id"), "data.signatureRequest.id"),
    ],
)
def test_an_envelope_without_required_fields_is_400(mutate: object, where: str) -> None:
    payload = event()
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(WebhookRejected) as info:
        parse_notice(payload)
    assert info.value.reason is Rejection.INVALID_EVENT
    assert info.value.status == 400
    assert where in info.value.message


def test_the_registration_subscribes_to_what_the_receiver_acts_on() -> None:
    acted_on = set()
    for kind in SUBSCRIBED_EVENTS:
        notice = parse_notice(event(kind))
        assert not isinstance(notice, IgnoredNotice)
        acted_on.add(kind)
    assert acted_on == {
        "wallet.signature.requested",
        "wallet.signature.signed",
        "wallet.signature.failed",
        "wallet.signature.rejected",
        "policy.approval.pending",
        "policy.approval.resolved",
    }
