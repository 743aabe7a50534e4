"""The rules of ``workflows.state``, as plain functions: no Temporal server, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signgate.contracts import (
    ApprovalEvent,
    ApprovalInfo,
    CallbackDelivery,
    DenialResult,
    PollingPolicy,
    SignatureWorkflowInput,
    SignatureWorkflowState,
    SigningTarget,
    StatusEvent,
    VerificationResult,
)
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus
from signgate.dfns.requests import HashRequest, TransactionRequest
from workflows.state import FINAL_STATUSES, RequestMismatch, RequestTracker, next_interval

S = SignatureStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SID = "sig-1"
EXT = "sg-ext"


def _tracker(**overrides: Any) -> RequestTracker:
    values: dict[str, Any] = {
        "target": SigningTarget(kind="key", id="key-1"),
        "request": HashRequest(hash="ab" * 32),
    }
    values.update(overrides)
    inp = SignatureWorkflowInput.model_validate(values)
    state = SignatureWorkflowState(idempotency_key="k", external_id=EXT, started_at=T0)
    return RequestTracker(inp, state)


def _view(
    status: SignatureStatus,
    *,
    sid: str = SID,
    ext: str | None = EXT,
    approval: str | None = None,
    signed: bool = False,
) -> SignatureRequestView:
    return SignatureRequestView(
        generation="keys",
        id=sid,
        status=status,
        raw_status=str(status),
        external_id=ext,
        approval_id=approval,
        signature=Signature(r="0x01", s="0x02", recid=0) if signed else None,
    )


def _at(tracker: RequestTracker, *statuses: SignatureStatus) -> RequestTracker:
    for status in statuses:
        tracker.apply_read(_view(status), T0)
    return tracker


# --- reads ------------------------------------------------------------------------------


def test_the_first_read_records_the_id_and_moves() -> None:
    tracker = _tracker()
    read = tracker.apply_read(_view(S.PENDING), T0)
    assert (read.moved, read.first) == (True, True)
    assert tracker.state.signature_id == SID and tracker.state.status is S.PENDING
    assert tracker.state.status_since == T0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([S.PENDING, S.EXECUTING, S.SIGNED, S.CONFIRMED], S.CONFIRMED),
        ([S.PENDING, S.SIGNED, S.EXECUTING], S.SIGNED),  # a stale read after a newer one
        ([S.PENDING, S.REJECTED, S.SIGNED], S.REJECTED),  # nothing after a final status
        ([S.PENDING, S.FAILED, S.CONFIRMED], S.FAILED),  # a second final status is ignored
        ([S.PENDING, S.UNKNOWN], S.PENDING),  # Unknown moves nothing
    ],
)
def test_statuses_only_move_forward(path: list[SignatureStatus], expected: SignatureStatus) -> None:
    assert _at(_tracker(), *path).state.status is expected


def test_a_repeated_status_is_not_a_move_but_refreshes_the_snapshot() -> None:
    tracker = _at(_tracker(), S.SIGNED)
    read = tracker.apply_read(_view(S.SIGNED, approval="ap-9"), T0 + timedelta(hours=1))
    assert not read.moved
    assert tracker.state.approval_id == "ap-9"
    assert tracker.state.status_since == T0


def test_an_unknown_status_is_reported_and_kept_only_as_a_first_snapshot() -> None:
    tracker = _tracker()
    read = tracker.apply_read(_view(S.UNKNOWN), T0)
    assert read.unknown_status == "Unknown" and not read.moved
    assert tracker.state.status is None and tracker.state.snapshot is not None


@pytest.mark.parametrize(
    "view", [_view(S.SIGNED, sid="sig-other"), _view(S.SIGNED, ext="sg-another")]
)
def test_a_read_of_another_request_is_a_mismatch(view: SignatureRequestView) -> None:
    tracker = _at(_tracker(), S.PENDING)
    with pytest.raises(RequestMismatch):
        tracker.apply_read(view, T0)
    assert tracker.state.status is S.PENDING


def test_polls_and_their_failures_are_counted() -> None:
    tracker = _tracker()
    tracker.approval_changed = True
    tracker.record_poll("boom")
    tracker.record_poll(None)
    st = tracker.state
    assert (st.polls, st.poll_failures, st.last_poll_error) == (2, 1, None)
    assert not tracker.approval_changed


# --- hints ------------------------------------------------------------------------------


def test_a_hint_ahead_of_the_status_is_applied_once() -> None:
    tracker = _at(_tracker(), S.PENDING)
    first = tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED))
    duplicate = tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED))
    assert first.applied and not duplicate.applied
    assert tracker.status_hinted() and tracker.wake_pending()
    assert (tracker.state.events_applied, tracker.state.events_ignored) == (1, 1)


def test_reordered_hints_keep_the_furthest() -> None:
    tracker = _at(_tracker(), S.PENDING)
    assert tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED)).applied
    assert not tracker.hint(StatusEvent(signature_id=SID, status=S.EXECUTING)).applied
    assert tracker.state.hint_rank == 3


def test_a_stale_hint_is_ignored() -> None:
    tracker = _at(_tracker(), S.SIGNED)
    ack = tracker.hint(StatusEvent(signature_id=SID, status=S.EXECUTING))
    assert not ack.applied and "stale" in ack.reason
    assert not tracker.wake_pending()


@pytest.mark.parametrize(
    "event",
    [
        StatusEvent(signature_id="sig-other", status=S.SIGNED),
        StatusEvent(signature_id=SID, external_id="sg-another", status=S.SIGNED),
    ],
)
def test_a_foreign_hint_is_refused_with_a_reason(event: StatusEvent) -> None:
    tracker = _at(_tracker(), S.PENDING)
    assert tracker.foreign(event) is not None
    ack = tracker.hint(event)
    assert not ack.applied and "not this workflow's request" in ack.reason


def test_a_hint_that_ran_ahead_of_dfns_is_dropped_after_the_read() -> None:
    tracker = _at(_tracker(), S.PENDING)
    tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED))
    tracker.apply_read(_view(S.EXECUTING), T0)
    assert tracker.drop_stale_hint()
    assert not tracker.status_hinted() and not tracker.drop_stale_hint()


def _carried(status: SignatureStatus = S.SIGNED, **view: Any) -> StatusEvent:
    copy = _view(status, signed=True).model_copy(update={"key_id": "key-1", **view})
    return StatusEvent(signature_id=SID, status=status, external_id=EXT, view=copy)


def test_a_carried_signed_copy_is_held_for_one_check() -> None:
    tracker = _at(_tracker(), S.PENDING)
    assert tracker.hint(_carried()).applied
    view = tracker.take_carried()
    assert view is not None and view.status is S.SIGNED
    assert tracker.take_carried() is None, "taken once: a refused copy leaves a read"


@pytest.mark.parametrize(
    "update",
    [{"key_id": "key-other"}, {"generation": "wallets"}, {"key_id": None}],
)
def test_a_copy_on_another_target_is_not_held(update: dict[str, Any]) -> None:
    tracker = _at(_tracker(), S.PENDING)
    assert tracker.hint(_carried(**update)).applied, "the hint still wakes the workflow"
    assert tracker.take_carried() is None


def test_a_copy_on_a_wallet_target_must_name_the_wallet() -> None:
    tracker = _at(_tracker(target=SigningTarget(kind="wallet", id="wa-1")), S.PENDING)
    tracker.hint(_carried(generation="wallets", wallet_id="wa-1"))
    assert tracker.take_carried() is not None
    tracker = _at(_tracker(target=SigningTarget(kind="wallet", id="wa-1")), S.PENDING)
    tracker.hint(_carried(generation="wallets", wallet_id="wa-2"))
    assert tracker.take_carried() is None


def test_a_copy_of_a_request_not_yet_known_by_id_is_only_a_hint() -> None:
    unknown = _tracker()  # the submit's outcome not known: no signature id yet
    assert unknown.hint(_carried()).applied
    assert unknown.take_carried() is None
    other = _at(_tracker(), S.PENDING)
    other.state.signature_id = "sig-adopted"
    other.state.carried = _carried().view
    assert other.take_carried() is None


def test_a_copy_behind_what_dfns_said_is_not_taken() -> None:
    tracker = _at(_tracker(), S.PENDING)
    tracker.hint(_carried())
    tracker.apply_read(_view(S.SIGNED, signed=True), T0)
    assert tracker.take_carried() is None


def test_a_taken_copy_counts_and_settles_the_approval_wake() -> None:
    tracker = _at(_tracker(), S.PENDING)
    tracker.approval_changed = True
    tracker.hint(_carried())
    view = tracker.take_carried()
    assert view is not None
    tracker.apply_read(view, T0)
    result = VerificationResult(status="verified", method="ecdsa", detail="ok")
    tracker.took_carried(result, view)
    assert tracker.state.views_taken == 1 and not tracker.approval_changed
    assert tracker.verification_for_snapshot() == result
    assert not tracker.status_hinted()


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"id": "sig-other"}, "signature_id"),
        ({"status": S.CONFIRMED, "raw_status": "Confirmed"}, "status"),
        ({"external_id": "sg-another"}, "external_id"),
        ({"signature": None}, "signatures"),
    ],
)
def test_a_status_event_refuses_a_copy_that_is_not_its_own(
    update: dict[str, Any], message: str
) -> None:
    copy = _view(S.SIGNED, signed=True).model_copy(update=update)
    with pytest.raises(ValueError, match=message):
        StatusEvent(signature_id=SID, status=S.SIGNED, external_id=EXT, view=copy)


def test_a_status_event_carries_no_confirmed_copy() -> None:
    """A signature proves Signed, not Confirmed nor a txHash: whoever sends the event."""
    copy = _view(S.CONFIRMED, signed=True)
    with pytest.raises(ValueError, match="only a Signed request"):
        StatusEvent(signature_id=SID, status=S.CONFIRMED, external_id=EXT, view=copy)


# --- approvals --------------------------------------------------------------------------


def _approval(status: str, *users: str, **extra: Any) -> ApprovalEvent:
    decisions = [{"user_id": u, "value": "Approved"} for u in users]
    return ApprovalEvent.model_validate(
        {"approval_id": "ap-1", "status": status, "decisions": decisions, **extra}
    )


def test_decisions_merge_and_a_resolution_wakes() -> None:
    tracker = _tracker()
    assert tracker.approval_event(_approval("Pending", "us-a", quorum=2))
    assert not tracker.approval_changed
    assert tracker.approval_event(_approval("Approved", "us-b", date_resolved=T0))
    approval = tracker.state.approval
    assert approval is not None
    assert [d.user_id for d in approval.decisions] == ["us-a", "us-b"]
    assert approval.quorum == 2  # kept from the earlier event
    assert tracker.approval_changed and tracker.wake_pending() and not tracker.status_hinted()
    assert tracker.approval_known_resolved()


def test_a_resolved_approval_never_goes_back_to_pending() -> None:
    tracker = _tracker()
    tracker.approval_event(_approval("Denied", "us-a"))
    assert not tracker.approval_event(_approval("Pending", "us-b"))
    assert tracker.state.approval is not None and tracker.state.approval.status == "Denied"
    assert not tracker.approval_known_resolved()  # no dateResolved: read it to be sure


def test_approval_events_of_another_approval_or_request_are_ignored() -> None:
    tracker = _tracker()
    tracker.apply_read(_view(S.PENDING, approval="ap-1"), T0)
    other_approval = ApprovalEvent(approval_id="ap-2", status="Approved")
    other_request = ApprovalEvent(approval_id="ap-1", signature_id="sig-x", status="Approved")
    assert not tracker.approval_event(other_approval)
    assert not tracker.approval_event(other_request)
    assert tracker.state.events_ignored == 2 and tracker.state.approval is None


def test_a_status_event_carrying_the_resolved_approval_applies_both() -> None:
    tracker = _at(_tracker(), S.PENDING)
    resolved = _approval("Approved", "us-a", "us-b", date_resolved=T0)
    ack = tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED, approval=resolved))
    assert ack.applied and tracker.status_hinted()
    approval = tracker.state.approval
    assert approval is not None and approval.status == "Approved"
    assert [d.user_id for d in approval.decisions] == ["us-a", "us-b"]
    assert tracker.approval_known_resolved() and tracker.state.events_applied == 2


def test_a_stale_status_event_still_brings_its_approval() -> None:
    tracker = _at(_tracker(), S.PENDING, S.SIGNED)
    resolved = _approval("Approved", "us-a", date_resolved=T0)
    ack = tracker.hint(StatusEvent(signature_id=SID, status=S.SIGNED, approval=resolved))
    assert not ack.applied
    assert tracker.state.approval is not None and tracker.approval_known_resolved()


def test_a_foreign_status_event_brings_no_approval() -> None:
    tracker = _at(_tracker(), S.PENDING)
    resolved = _approval("Approved", "us-a")
    tracker.hint(StatusEvent(signature_id="sig-other", status=S.SIGNED, approval=resolved))
    assert tracker.state.approval is None


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        (_approval("Pending", "us-a"), "only a resolved approval"),
        (_approval("Approved", signature_id="sig-other"), "approval.signature_id"),
    ],
)
def test_a_status_event_refuses_an_approval_that_is_not_its_own(
    approval: ApprovalEvent, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        StatusEvent(signature_id=SID, status=S.SIGNED, approval=approval)


# --- when to stop -----------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_final_statuses_finish(status: SignatureStatus) -> None:
    assert _at(_tracker(), status).finished()


@pytest.mark.parametrize("status", [None, S.PENDING, S.EXECUTING])
def test_open_statuses_do_not_finish(status: SignatureStatus | None) -> None:
    tracker = _tracker()
    if status is not None:
        _at(tracker, status)
    assert not tracker.finished()


def test_signed_finishes_unless_confirmed_is_awaited() -> None:
    assert _at(_tracker(), S.SIGNED).finished()
    waiting = _at(
        _tracker(request=TransactionRequest(transaction="0x02"), wait_for_confirmed=True),
        S.SIGNED,
    )
    assert not waiting.finished()
    waiting.stop_handled = True  # past the deadline: Signed is reported as it is
    assert waiting.finished()


def test_the_deadline_cuts_the_wait_short_and_is_acted_on_once() -> None:
    tracker = _tracker(deadline=T0 + timedelta(minutes=10))
    assert tracker.wait_limit(timedelta(hours=1), T0) == timedelta(minutes=10)
    assert not tracker.stop_due(T0)
    later = T0 + timedelta(minutes=10)
    assert tracker.deadline_reached(later) and tracker.stop_due(later)
    assert tracker.stop_reason() == "deadline passed"
    tracker.stop_handled = True
    assert not tracker.stop_due(later)
    assert tracker.wait_limit(timedelta(hours=1), later) == timedelta(hours=1)


def test_a_cancel_is_due_without_a_deadline() -> None:
    tracker = _tracker()
    tracker.state.cancel_requested = True
    assert tracker.stop_due(T0) and tracker.stop_reason() == "cancelled"


def test_after_a_denial_a_request_still_pending_ends_the_wait() -> None:
    tracker = _at(_tracker(), S.PENDING)
    tracker.state.denial = DenialResult(approval_id="ap-1", denied=False, detail="forbidden")
    assert tracker.done_after_denial()
    denied = _at(_tracker(), S.PENDING)
    denied.state.denial = DenialResult(approval_id="ap-1", denied=True, detail="denied")
    assert not denied.done_after_denial()  # wait to read Rejected
    _at(denied, S.REJECTED)
    assert denied.done_after_denial()


# --- verdicts ---------------------------------------------------------------------------

_DENIED = DenialResult(approval_id="ap-1", denied=True, detail="denied by the engine")
_NOT_DENIED = DenialResult(approval_id="ap-1", denied=False, detail="already Approved")


@pytest.mark.parametrize(
    ("status", "stop", "denial", "expected"),
    [
        # No deadline, no cancel: Dfns decides.
        (S.SIGNED, None, None, ("signed", None)),
        (S.CONFIRMED, None, None, ("confirmed", None)),
        (S.FAILED, None, None, ("failed", None)),
        (S.REJECTED, None, None, ("rejected", None)),
        # The deadline on each status.
        (None, "deadline", None, ("expired", "deadline")),
        (S.PENDING, "deadline", _DENIED, ("expired", "deadline")),
        (S.PENDING, "deadline", _NOT_DENIED, ("expired", "deadline")),
        (S.REJECTED, "deadline", _DENIED, ("expired", "deadline")),
        (S.EXECUTING, "deadline", None, ("expired", "deadline")),
        (S.SIGNED, "deadline", None, ("signed", None)),
        (S.CONFIRMED, "deadline", None, ("confirmed", None)),
        (S.FAILED, "deadline", None, ("failed", None)),
        (S.REJECTED, "deadline", None, ("rejected", None)),  # rejected by people first
        # A cancel on each status.
        (S.PENDING, "cancel", _DENIED, ("cancelled", None)),
        (S.PENDING, "cancel", _NOT_DENIED, ("cancelled", None)),
        (S.REJECTED, "cancel", _DENIED, ("cancelled", None)),
        (S.EXECUTING, "cancel", None, ("cancelled", None)),
        (S.SIGNED, "cancel", None, ("signed", None)),
        (S.CONFIRMED, "cancel", None, ("confirmed", None)),
        (S.FAILED, "cancel", None, ("failed", None)),
        (S.REJECTED, "cancel", None, ("rejected", None)),
    ],
)
def test_verdicts(
    status: SignatureStatus | None,
    stop: str | None,
    denial: DenialResult | None,
    expected: tuple[str, str | None],
) -> None:
    tracker = _tracker()
    if status is not None:
        _at(tracker, status)
    tracker.state.deadline_passed = stop == "deadline"
    tracker.state.cancel_requested = stop == "cancel"
    tracker.state.denial = denial
    assert tracker.verdict() == expected


def test_an_expired_approval_is_an_approval_timeout() -> None:
    tracker = _at(_tracker(), S.PENDING, S.REJECTED)
    tracker.state.approval = ApprovalInfo(id="ap-1", status="Expired")
    assert tracker.verdict() == ("expired", "approval_timeout")


def test_notes_say_what_is_unusual() -> None:
    tracker = _at(
        _tracker(
            request=TransactionRequest(transaction="0x02"),
            wait_for_confirmed=True,
            deliveries=[CallbackDelivery(url="http://127.0.0.1:9/cb")],
        ),
        S.SIGNED,
    )
    tracker.state.deadline_passed = True
    tracker.state.verification = VerificationResult(
        status="unverifiable", method="none", detail="no key"
    )
    notes = tracker.notes("signed", ["earlier"])
    assert notes[0] == "earlier"
    text = " | ".join(notes)
    assert "not delivered" in text and "not Confirmed" in text and "already being signed" in text
    assert not tracker.deliverable()


def test_a_failed_denial_on_a_pending_request_is_explained() -> None:
    tracker = _at(_tracker(), S.PENDING)
    tracker.state.cancel_requested = True
    tracker.state.denial = _NOT_DENIED
    notes = tracker.notes("cancelled", [])
    assert any("own approval not denied" in n for n in notes)
    assert any("may yet be signed" in n for n in notes)


def test_the_outcome_carries_what_dfns_said() -> None:
    tracker = _tracker()
    tracker.apply_read(_view(S.SIGNED, approval="ap-1", signed=True), T0)
    outcome = tracker.outcome(workflow_id="wf", request_kind="Hash", now=T0, notes=[])
    assert outcome.kind == "signed" and outcome.dfns_status is S.SIGNED
    assert outcome.signature == Signature(r="0x01", s="0x02", recid=0)
    assert (outcome.signature_id, outcome.approval_id, outcome.external_id) == (SID, "ap-1", EXT)
    assert outcome.finished_at == T0 and outcome.notes == []


# --- verification and polling -----------------------------------------------------------


def test_a_verdict_is_reused_only_for_the_same_signatures() -> None:
    tracker = _tracker()
    view = _view(S.SIGNED, signed=True)
    tracker.apply_read(view, T0)
    assert tracker.verification_for_snapshot() is None
    verdict = VerificationResult(status="verified", method="ecdsa", detail="ok")
    tracker.record_verification(verdict, view)
    assert tracker.verification_for_snapshot() == verdict
    tracker.state.snapshot = _view(S.SIGNED)  # different (no) signatures
    assert tracker.verification_for_snapshot() is None


def test_the_poll_interval_backs_off_to_its_cap_and_resets_on_change() -> None:
    policy = PollingPolicy(
        initial_interval=timedelta(seconds=5),
        max_interval=timedelta(seconds=30),
        backoff_coefficient=2,
    )
    interval = policy.initial_interval
    seen = []
    for _ in range(4):
        interval = next_interval(policy, interval, changed=False)
        seen.append(interval.total_seconds())
    assert seen == [10, 20, 30, 30]
    assert next_interval(policy, interval, changed=True) == policy.initial_interval
