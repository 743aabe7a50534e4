"""The rules of one signature request's life, with no Temporal in them.

:class:`RequestTracker` holds what a ``SignatureWorkflow`` knows (the
:class:`~signgate.contracts.SignatureWorkflowState` it carries across continue-as-new, plus
two flags of the current run) and decides, from what Dfns said, what hints said and what
the caller asked:

* **status**: only what Dfns returned is recorded, and only forward
  (:data:`~signgate.contracts.STATUS_RANK`); a stale read, a second terminal status or an
  ``Unknown`` changes nothing; a read of another request is a :class:`RequestMismatch`;
* **hints** (webhook status events): foreign ones are refused, stale and duplicate ones
  ignored; a hint ahead of the recorded status asks the workflow to read the request now,
  or, when it carries the signed request on this workflow's target, to check that copy's
  signature instead (the workflow applies it only if it verifies);
* **approvals**: decisions merge by user, a resolved approval never goes back to Pending,
  events of another approval or request are ignored;
* **when to stop**: settled at a final status, or at ``Signed`` unless the caller waits for
  ``Confirmed``; past the deadline or on cancel the engine denies its own approval once;
* **the verdict and the outcome** handed to the caller and to every delivery.

Time comes in as an argument (the workflow passes ``workflow.now()``), so every rule is a
plain function of its inputs and is tested without a Temporal server
(``tests/workflows/test_state.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from signgate.contracts import (
    ApprovalEvent,
    ApprovalInfo,
    DenialResult,
    EventAck,
    OutcomeKind,
    PollingPolicy,
    SignatureOutcome,
    SignatureWorkflowInput,
    SignatureWorkflowState,
    SigningTarget,
    StatusEvent,
    VerificationResult,
    status_rank,
)
from signgate.dfns.models import SignatureRequestView, SignatureStatus
from signgate.dfns.requests import TransactionRequest

__all__ = [
    "FINAL_STATUSES",
    "Read",
    "RequestMismatch",
    "RequestTracker",
    "jittered",
    "next_interval",
]

FINAL_STATUSES = frozenset(
    {SignatureStatus.CONFIRMED, SignatureStatus.FAILED, SignatureStatus.REJECTED}
)
_APPROVAL_ORDER = {"Pending": 0, "Approved": 1, "Denied": 1, "Expired": 1}
Expiry = Literal["deadline", "approval_timeout"]


class RequestMismatch(Exception):
    """Dfns returned a request that is not this workflow's (another id or externalId)."""


@dataclass(frozen=True)
class Read:
    """What one read from Dfns changed."""

    moved: bool
    """The status moved forward."""
    first: bool
    """This read told the workflow its request's id."""
    unknown_status: str | None = None
    """Dfns's raw status when it is not one the engine knows (nothing was recorded)."""


def transfer_request(
    source: SigningTarget, unsigned_transaction: str, network: str | None
) -> TransactionRequest:
    """The Dfns body that signs a built EVM transfer from ``source``.

    A wallet carries its network (a second, different one would be refused); a key takes
    ``network``, or plain ``blockchainKind: Evm`` when none is given.
    """
    if source.kind == "wallet":
        return TransactionRequest(transaction=unsigned_transaction)
    if network is not None:
        return TransactionRequest(transaction=unsigned_transaction, network=network)
    return TransactionRequest(transaction=unsigned_transaction, blockchain_kind="Evm")


def next_interval(policy: PollingPolicy, interval: timedelta, *, changed: bool) -> timedelta:
    """The wait before the next poll: back to the start on progress, else backed off."""
    if changed:
        return policy.initial_interval
    return min(interval * policy.backoff_coefficient, policy.max_interval)


def jittered(interval: timedelta, jitter: float, draw: float) -> timedelta:
    """``interval`` spread by up to ``jitter`` of itself either way; ``draw`` is in [0, 1)."""
    return interval * (1 - jitter + 2 * jitter * draw)


def signature_key(view: SignatureRequestView) -> list[str]:
    """The signatures ``view`` carries, as comparable strings."""
    sigs = [view.signature] if view.signature is not None else []
    sigs.extend(view.signatures)
    return [f"{s.r}:{s.s}:{s.recid}:{s.encoded}" for s in sigs]


class RequestTracker:
    """Everything one run knows about its request, and the rules that change it."""

    def __init__(self, input: SignatureWorkflowInput, state: SignatureWorkflowState) -> None:
        self.input = input
        self.state = state
        self.approval_changed = False
        """A resolved approval arrived since the last read (this run only)."""
        self.stop_handled = False
        """The deadline or cancel was acted on (this run only: a new run checks again)."""

    # --- reads from Dfns ----------------------------------------------------------------

    def apply_read(self, view: SignatureRequestView, now: datetime) -> Read:
        """Record what Dfns said about the request."""
        st = self.state
        if st.signature_id is not None and view.id != st.signature_id:
            raise RequestMismatch(
                f"Dfns returned signature request {view.id}, expected {st.signature_id}"
            )
        if view.external_id is not None and view.external_id != st.external_id:
            raise RequestMismatch(
                f"Dfns request {view.id} carries externalId {view.external_id!r}, "
                f"expected {st.external_id!r}"
            )
        first = st.signature_id is None
        st.signature_id = view.id
        new_rank, old_rank = status_rank(view.status), status_rank(st.status)
        if new_rank == 0:
            if st.snapshot is None:
                st.snapshot = view
            return Read(moved=False, first=first, unknown_status=view.raw_status)
        if new_rank < old_rank or (new_rank == old_rank and view.status != st.status):
            # A stale read, or a second terminal status: statuses only move forward.
            return Read(moved=False, first=first)
        moved = new_rank > old_rank
        st.snapshot = view
        if moved:
            st.status = view.status
            st.status_since = now
        return Read(moved=moved, first=first)

    def record_poll(self, error: str | None) -> None:
        """Count one poll, and its failure when it failed."""
        st = self.state
        st.polls += 1
        self.approval_changed = False
        if error is not None:
            st.poll_failures += 1
        st.last_poll_error = error

    def drop_stale_hint(self) -> bool:
        """After a read: a hint ahead of what Dfns shows is dropped; True when one was."""
        st = self.state
        if st.hint_rank > status_rank(st.status):
            st.hint_rank = status_rank(st.status)
            return True
        return False

    def record_verification(self, result: VerificationResult, view: SignatureRequestView) -> None:
        """Keep a verdict, keyed by the signatures it checked."""
        self.state.verification = result
        self.state.verified_signatures = signature_key(view)

    def verification_for_snapshot(self) -> VerificationResult | None:
        """The verdict on exactly the signatures of the current snapshot, if there is one."""
        st = self.state
        if st.snapshot is None or st.verification is None:
            return None
        if st.verified_signatures != signature_key(st.snapshot):
            return None
        return st.verification

    # --- hints --------------------------------------------------------------------------

    def foreign(self, event: StatusEvent) -> str | None:
        """Why ``event`` is not about this workflow's request, or ``None`` when it is."""
        st = self.state
        if st.signature_id is not None and event.signature_id != st.signature_id:
            return f"signature id {event.signature_id!r} is not this workflow's request"
        if event.external_id is not None and event.external_id != st.external_id:
            return f"externalId {event.external_id!r} is not this workflow's request"
        return None

    def hint(self, event: StatusEvent) -> EventAck:
        """Take a status hint: ``applied`` when it should make the workflow read now.

        A resolved approval the event carries is merged first, as its own signal would be.
        """
        st = self.state
        reason = self.foreign(event)
        if reason is None and event.approval is not None:
            self.approval_event(event.approval)
        if reason is None and status_rank(event.status) <= max(
            status_rank(st.status), st.hint_rank
        ):
            reason = "stale or duplicate: the status is already there"
        if reason is not None:
            st.events_ignored += 1
            return EventAck(applied=False, reason=reason, status=st.status)
        st.hint_rank = status_rank(event.status)
        st.events_applied += 1
        st.carried = event.view if self._carried_is_ours(event) else None
        return EventAck(
            applied=True, reason="the workflow will read the request now", status=st.status
        )

    def _carried_is_ours(self, event: StatusEvent) -> bool:
        """Whether the view ``event`` carries is on this workflow's target and generation."""
        view, target = event.view, self.input.target
        if view is None:
            return False
        if target.kind == "key":
            return view.generation == "keys" and view.key_id == target.id
        if target.kind == "wallet":
            return view.generation == "wallets" and view.wallet_id == target.id
        return False

    def take_carried(self) -> SignatureRequestView | None:
        """The signed request the latest hint carried, if it is still ahead of the reads."""
        st = self.state
        view, st.carried = st.carried, None
        if view is None or status_rank(view.status) <= status_rank(st.status):
            return None
        # Only a copy of the request the workflow already knows by id: one that came while
        # the submit's outcome was unknown is a hint, never a read (it could be another's).
        if st.signature_id is None or view.id != st.signature_id:
            return None
        if view.external_id is not None and view.external_id != st.external_id:
            return None
        return view

    def took_carried(self, result: VerificationResult, view: SignatureRequestView) -> None:
        """A carried view verified and was applied: it stands for a read."""
        self.record_verification(result, view)
        self.state.views_taken += 1
        self.approval_changed = False

    def status_hinted(self) -> bool:
        """A hint says the request is further along than the workflow has read."""
        return self.state.hint_rank > status_rank(self.state.status)

    def wake_pending(self) -> bool:
        """Something arrived that the wait should wake for."""
        return self.approval_changed or self.status_hinted()

    def approval_event(self, event: ApprovalEvent) -> bool:
        """Merge approval progress; True when it was applied."""
        st = self.state
        if st.approval_id is not None and event.approval_id != st.approval_id:
            st.events_ignored += 1
            return False
        if (
            event.signature_id is not None
            and st.signature_id is not None
            and event.signature_id != st.signature_id
        ):
            st.events_ignored += 1
            return False
        current = st.approval
        if current is not None and _APPROVAL_ORDER.get(current.status, 0) > _APPROVAL_ORDER.get(
            event.status, 0
        ):
            st.events_ignored += 1
            return False
        decisions = {d.user_id: d for d in (current.decisions if current else [])}
        decisions.update({d.user_id: d for d in event.decisions})
        st.approval = ApprovalInfo(
            id=event.approval_id,
            status=event.status,
            decisions=list(decisions.values()),
            quorum=event.quorum if event.quorum is not None or current is None else current.quorum,
            initiator_id=event.initiator_id or (current.initiator_id if current else None),
            expiration_date=event.expiration_date or (current.expiration_date if current else None),
            date_resolved=event.date_resolved or (current.date_resolved if current else None),
        )
        st.events_applied += 1
        if event.status != "Pending":
            self.approval_changed = True
        return True

    def approval_known_resolved(self) -> bool:
        """The approval is resolved and was carried in full (nothing left to read)."""
        st = self.state
        known = st.approval
        return (
            known is not None
            and known.id == st.approval_id
            and known.status != "Pending"
            and known.date_resolved is not None
        )

    # --- when to stop -------------------------------------------------------------------

    def finished(self) -> bool:
        """The request is settled: nothing more to wait for."""
        status = self.state.status
        if status in FINAL_STATUSES:
            return True
        if status is SignatureStatus.SIGNED:
            return not self.input.wait_for_confirmed or self.stop_handled
        return False

    def deadline_reached(self, now: datetime) -> bool:
        """The caller's deadline has passed."""
        deadline = self.input.deadline
        return deadline is not None and now >= deadline

    def stop_due(self, now: datetime) -> bool:
        """The deadline passed or a cancel came, and neither was acted on yet."""
        return not self.stop_handled and (self.state.cancel_requested or self.deadline_reached(now))

    def wait_limit(self, interval: timedelta, now: datetime) -> timedelta:
        """How long the next wait may last: the poll interval, cut short by the deadline."""
        deadline = self.input.deadline
        if deadline is None or self.stop_handled:
            return interval
        return min(interval, deadline - now)

    def stop_reason(self) -> str:
        """Why the engine stops waiting: in words, for the denial's reason."""
        return "cancelled" if self.state.cancel_requested else "deadline passed"

    def nothing_to_deny(self) -> DenialResult:
        """The denial when a stopped request is Pending with no approval to deny."""
        return DenialResult(
            approval_id="",
            denied=False,
            detail="the request is Pending without an approval id; nothing to deny",
        )

    def done_after_denial(self) -> bool:
        """After denying and reading again: nothing more to wait for."""
        st = self.state
        denial = st.denial
        if denial is not None and not denial.denied and st.status is SignatureStatus.PENDING:
            return True
        return self.finished()

    # --- the outcome --------------------------------------------------------------------

    def verdict(self) -> tuple[OutcomeKind, Expiry | None]:
        """What became of the request, and why it expired when it did."""
        st = self.state
        status = st.status
        if status is SignatureStatus.CONFIRMED:
            return "confirmed", None
        if status is SignatureStatus.SIGNED:
            return "signed", None
        if status is SignatureStatus.FAILED:
            return "failed", None
        stopped_by_us = st.denial is not None and (
            st.denial.denied or status is SignatureStatus.PENDING or status is None
        )
        if status is SignatureStatus.REJECTED and not stopped_by_us:
            if st.approval is not None and st.approval.status == "Expired":
                return "expired", "approval_timeout"
            return "rejected", None
        if st.cancel_requested:
            return "cancelled", None
        if st.deadline_passed:
            return "expired", "deadline"
        return "rejected", None

    def notes(self, kind: OutcomeKind, earlier: list[str]) -> list[str]:
        """The outcome's notes: ``earlier`` ones, then what the state says is unusual."""
        st, inp = self.state, self.input
        notes = list(earlier)
        verification = st.verification
        if verification is not None and verification.status == "unverifiable":
            if inp.deliver_unverifiable:
                notes.append(
                    f"signature not verified ({verification.detail}); delivered because "
                    "deliver_unverifiable is set"
                )
            elif inp.deliveries:
                notes.append(
                    f"signature not verified ({verification.detail}); not delivered "
                    "(set deliver_unverifiable to deliver it anyway)"
                )
        if st.denial is not None and not st.denial.denied:
            notes.append(f"own approval not denied: {st.denial.detail}")
            if st.status is SignatureStatus.PENDING:
                notes.append("the request is still Pending at Dfns and may yet be signed")
        if st.status is SignatureStatus.SIGNED and inp.wait_for_confirmed:
            notes.append("stopped waiting for Confirmed: the signature is Signed, not Confirmed")
        if st.deadline_passed and kind in ("signed", "confirmed", "failed"):
            notes.append("the deadline passed while the request was already being signed")
        if st.cancel_requested and kind in ("signed", "confirmed", "failed"):
            notes.append("cancellation came after the request was approved; reported as is")
        return notes

    def outcome(
        self, *, workflow_id: str, request_kind: str, now: datetime, notes: list[str]
    ) -> SignatureOutcome:
        """The outcome handed to the caller and to every delivery."""
        st = self.state
        snap = st.snapshot
        kind, expiry = self.verdict()
        return SignatureOutcome(
            kind=kind,
            workflow_id=workflow_id,
            idempotency_key=st.idempotency_key,
            external_id=st.external_id,
            target=self.input.target,
            request_kind=request_kind,
            signature_id=st.signature_id,
            dfns_status=st.status,
            raw_status=snap.raw_status if snap else None,
            signature=snap.signature if snap else None,
            signatures=list(snap.signatures) if snap else [],
            signed_data=snap.signed_data if snap else None,
            tx_hash=snap.tx_hash if snap else None,
            network=snap.network if snap else None,
            key_id=snap.key_id if snap else None,
            wallet_id=snap.wallet_id if snap else None,
            approval_id=st.approval_id,
            approval=st.approval,
            reason=snap.reason if snap else None,
            date_requested=snap.date_requested if snap else None,
            date_policy_resolved=snap.date_policy_resolved if snap else None,
            date_signed=snap.date_signed if snap else None,
            date_confirmed=snap.date_confirmed if snap else None,
            finished_at=now,
            verification=st.verification,
            expiry=expiry,
            denial=st.denial,
            cancel_requested=st.cancel_requested,
            deadline_passed=st.deadline_passed,
            polls=st.polls,
            notes=self.notes(kind, notes),
        )

    def deliverable(self) -> bool:
        """Whether the outcome may go to the deliveries (an unverifiable signature may not,
        unless the caller said so)."""
        verification = self.state.verification
        return not (
            verification is not None
            and verification.status == "unverifiable"
            and not self.input.deliver_unverifiable
        )
