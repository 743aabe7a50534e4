"""What a verified Dfns webhook event means for signgate.

:func:`parse_notice` turns a verified payload into one of:

* :class:`SignatureNotice` (``wallet.signature.*``): the request's id, ``externalId`` and
  status, ready to become a :class:`~signgate.contracts.StatusEvent`; for a signed request,
  also the request itself as a read would return it (the workflow takes it only if its
  signature verifies);
* :class:`ApprovalNotice` (``policy.approval.*``): the approval's id, status and decisions,
  and the ``externalId`` of the signature request it gates, ready to become an
  :class:`~signgate.contracts.ApprovalEvent`;
* :class:`IgnoredNotice`: a Dfns kind signgate does not act on (answered 200, logged).

A kind Dfns does not define raises :class:`~signgate.webhook.verify.WebhookRejected`
(``unknown-kind``); an envelope or ``data`` without what its kind promises raises
``invalid-event``. Only the fields routing needs are read from ``data``, tolerantly: a
field Dfns adds, or one of another API generation, never turns an event into an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from signgate.contracts import ApprovalDecisionInfo, ApprovalEvent, StatusEvent
from signgate.dfns.models import (
    KeySignatureRequest,
    SignatureRequestView,
    SignatureStatus,
    WalletSignatureRequest,
    WebhookEventPayload,
    normalize_status,
)
from signgate.dfns.requests import WEBHOOK_EVENT_KINDS, WebhookEventKind
from signgate.webhook.verify import Rejection, WebhookRejected

__all__ = [
    "PING_KIND",
    "SUBSCRIBED_EVENTS",
    "ApprovalNotice",
    "IgnoredNotice",
    "Notice",
    "SignatureNotice",
    "parse_notice",
]

SUBSCRIBED_EVENTS: Final[tuple[WebhookEventKind, ...]] = (
    "wallet.signature.requested",
    "wallet.signature.signed",
    "wallet.signature.failed",
    "wallet.signature.rejected",
    "policy.approval.pending",
    "policy.approval.resolved",
)
"""The kinds ``signgate webhook register`` subscribes to."""

PING_KIND: Final = "webhook.ping"
"""The test event the sandbox's ``POST /webhooks/{id}/ping`` sends."""

# Kinds the Dfns Python SDK and docs name beyond spec 1.578.2 (API-NOTES §4.2): a webhook
# subscribed to "*" may carry them, and they are Dfns's, so they are not "unknown".
_NEWER_DFNS_KINDS: Final = frozenset(
    {
        "wallet.blockchain_event.transfer.included",
        "wallet.blockchain_event.misc.confirmed",
        "wallet.activated",
        "wallet.offer.withdrawn",
        "vault.created",
        "vault.updated",
        "vault.tags.modified",
        "vault.event.created",
        "address_watch.blockchain_event.transfer.confirmed",
        "address_watch.blockchain_event.misc.confirmed",
        "payout.action.required",
        "allocation.action.created",
        "allocation.action.completed",
        "allocation.action.failed",
        "swap.requested",
        "swap.rejected",
        "swap.completed",
        "swap.failed",
        "webhook.event.retry.triggered",
    }
)
_KNOWN_KINDS: Final = frozenset(WEBHOOK_EVENT_KINDS) | _NEWER_DFNS_KINDS | {PING_KIND}

# When data.signatureRequest.status is missing or new, the kind still says where it went.
_STATUS_OF_KIND: Final[dict[str, SignatureStatus]] = {
    "wallet.signature.requested": SignatureStatus.PENDING,
    "wallet.signature.signed": SignatureStatus.SIGNED,
    "wallet.signature.failed": SignatureStatus.FAILED,
    "wallet.signature.rejected": SignatureStatus.REJECTED,
}
# A signed request carries its signatures: the workflow may take it without a read. Only
# Signed: a signature proves a Signed request, not a Confirmed one (nor its txHash).
_CARRIED_STATUSES: Final = frozenset({SignatureStatus.SIGNED})
ApprovalStatus = Literal["Pending", "Approved", "Denied", "Expired"]
_APPROVAL_STATUSES: Final[frozenset[str]] = frozenset(get_args(ApprovalStatus))


class _Ref(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class _SignatureRequestRef(_Ref):
    id: str = Field(min_length=1, max_length=128)
    status: str | None = None
    external_id: str | None = None


class _DecisionRef(_Ref):
    user_id: str
    value: str
    date: datetime | None = None
    reason: str | None = None


class _ApprovalRef(_Ref):
    id: str = Field(min_length=1, max_length=128)
    status: str
    decisions: list[_DecisionRef] = []
    activity: dict[str, Any] = {}
    quorum: int | None = Field(default=None, ge=1)
    initiator_id: str | None = None
    expiration_date: datetime | None = None
    date_resolved: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Envelope:
    event_id: str
    kind: str
    attempt: int
    date: datetime


@dataclass(frozen=True, slots=True)
class SignatureNotice:
    """A ``wallet.signature.*`` event: request ``signature_id`` is now ``status``."""

    event_id: str
    kind: str
    attempt: int
    date: datetime
    external_id: str | None
    signature_id: str
    status: SignatureStatus
    raw_status: str
    view: SignatureRequestView | None = None
    """The request itself, when the event carries it signed and it reads as Dfns's object."""

    @property
    def dedupe_key(self) -> tuple[str, ...]:
        """Same request, same status (and same signatures, when carried): the same news,
        whichever attempt carried it. A copy with other signatures is other news: it must
        not silence the genuine one, which the workflow checks on its own."""
        key = ("status", self.signature_id, str(self.status))
        view = self.view
        if view is None:
            return key
        signatures = [view.signature] if view.signature is not None else []
        signatures.extend(view.signatures)
        return (*key, *(f"{sig.r}:{sig.s}:{sig.recid}:{sig.encoded}" for sig in signatures))

    @property
    def worth_delivering(self) -> bool:
        """Whether the status can move a workflow: ``Pending`` never does (the submit
        already returned it) and an unknown status carries nothing to act on."""
        return self.status not in (SignatureStatus.PENDING, SignatureStatus.UNKNOWN)

    def status_event(self, approval: ApprovalEvent | None = None) -> StatusEvent:
        """The hint for the workflow, carrying ``approval`` when one was held for it (raises
        ``ValueError`` for an ``Unknown`` status)."""
        return StatusEvent(
            signature_id=self.signature_id,
            status=self.status,
            external_id=self.external_id,
            source="webhook",
            event_id=self.event_id,
            occurred_at=self.date,
            view=self.view,
            approval=approval,
        )


@dataclass(frozen=True, slots=True)
class ApprovalNotice:
    """A ``policy.approval.*`` event about the approval gating a signature request."""

    event_id: str
    kind: str
    attempt: int
    date: datetime
    external_id: str | None
    event: ApprovalEvent

    @property
    def dedupe_key(self) -> tuple[str, ...]:
        """Same approval, same status, same decisions: nothing new to report."""
        decisions = sorted(f"{d.user_id}={d.value}" for d in self.event.decisions)
        return ("approval", self.event.approval_id, self.event.status, *decisions)


@dataclass(frozen=True, slots=True)
class IgnoredNotice:
    """A verified event signgate has nothing to do with; ``reason`` says why."""

    event_id: str
    kind: str
    attempt: int
    reason: str


Notice = SignatureNotice | ApprovalNotice | IgnoredNotice


def parse_notice(payload: dict[str, Any]) -> Notice:
    """Classify a verified payload; raises :class:`WebhookRejected` (400 or 422)."""
    envelope = _envelope(payload)
    kind = envelope.kind
    data = payload.get("data")
    assert isinstance(data, dict)  # the envelope model checked it
    if kind.startswith("wallet.signature."):
        return _signature_notice(envelope, data)
    if kind in ("policy.approval.pending", "policy.approval.resolved"):
        return _approval_notice(envelope, data)
    if kind == PING_KIND:
        return _ignored(envelope, "a test event")
    return _ignored(envelope, "signgate does not act on this kind")


def _envelope(payload: dict[str, Any]) -> _Envelope:
    kind = payload.get("kind")
    if isinstance(kind, str) and kind and kind not in _KNOWN_KINDS:
        raise WebhookRejected(
            Rejection.UNKNOWN_KIND, f"kind {kind[:80]!r} is not a Dfns webhook event kind"
        )
    try:
        event = WebhookEventPayload.model_validate(payload)
    except ValidationError as exc:
        raise WebhookRejected(Rejection.INVALID_EVENT, _describe(exc, "")) from None
    if event.kind not in _KNOWN_KINDS:
        raise WebhookRejected(Rejection.INVALID_EVENT, "kind must be a non-empty string")
    date = event.date if event.date.tzinfo is not None else event.date.replace(tzinfo=UTC)
    return _Envelope(event.id, event.kind, event.delivery_attempt, date)


def _signature_notice(envelope: _Envelope, data: dict[str, Any]) -> Notice:
    raw = data.get("signatureRequest")
    if not isinstance(raw, dict):
        raise WebhookRejected(
            Rejection.INVALID_EVENT, f"a {envelope.kind} event needs data.signatureRequest"
        )
    try:
        request = _SignatureRequestRef.model_validate(raw)
    except ValidationError as exc:
        raise WebhookRejected(
            Rejection.INVALID_EVENT, _describe(exc, "data.signatureRequest.")
        ) from None
    status = SignatureStatus.UNKNOWN
    if request.status is not None:
        # Every generation that sends webhooks (G2, G3) shares the Keys vocabulary.
        status = normalize_status(request.status, "keys")
    if status is SignatureStatus.UNKNOWN:
        status = _STATUS_OF_KIND.get(envelope.kind, SignatureStatus.UNKNOWN)
    return SignatureNotice(
        event_id=envelope.event_id,
        kind=envelope.kind,
        attempt=envelope.attempt,
        date=envelope.date,
        external_id=request.external_id,
        signature_id=request.id,
        status=status,
        raw_status=request.status or "",
        view=_signed_view(raw, request, status),
    )


def _signed_view(
    raw: dict[str, Any], request: _SignatureRequestRef, status: SignatureStatus
) -> SignatureRequestView | None:
    """The signed request the event carries, as a read would see it; ``None`` when it does
    not carry one whole (the event is then a hint only, and the workflow reads Dfns)."""
    if status not in _CARRIED_STATUSES or request.status is None:
        return None
    model: type[KeySignatureRequest | WalletSignatureRequest]
    model = WalletSignatureRequest if "walletId" in raw else KeySignatureRequest
    try:
        view = model.model_validate(raw).view()
    except ValidationError:
        return None
    if view.status is not status or (view.signature is None and not view.signatures):
        return None
    # As the read activity keeps it: the workflow holds the request body already.
    return view.model_copy(update={"request_body": {}})


def _approval_notice(envelope: _Envelope, data: dict[str, Any]) -> Notice:
    raw = data.get("approval")
    if not isinstance(raw, dict):
        # Older Dfns pages show data: {activityId} only: nothing to route by.
        return _ignored(envelope, "the event carries no approval object")
    try:
        approval = _ApprovalRef.model_validate(raw)
    except ValidationError as exc:
        raise WebhookRejected(Rejection.INVALID_EVENT, _describe(exc, "data.approval.")) from None
    request = approval.activity.get("signatureRequest")
    if not isinstance(request, dict):
        kind = approval.activity.get("kind")
        return _ignored(envelope, f"the approval gates no signature request (activity {kind})")
    if approval.status not in _APPROVAL_STATUSES:
        return _ignored(envelope, f"approval status {approval.status[:40]!r} is not known")
    signature_id = request.get("id")
    external_id = request.get("externalId")
    event = ApprovalEvent(
        approval_id=approval.id,
        status=cast(ApprovalStatus, approval.status),
        decisions=[
            ApprovalDecisionInfo(user_id=d.user_id, value=d.value, date=d.date, reason=d.reason)
            for d in approval.decisions
        ],
        quorum=approval.quorum,
        initiator_id=approval.initiator_id,
        expiration_date=_aware(approval.expiration_date),
        # Only a resolved approval is final; a pending one's date means nothing yet.
        date_resolved=_aware(approval.date_resolved) if approval.status != "Pending" else None,
        signature_id=signature_id if isinstance(signature_id, str) else None,
        source="webhook",
        event_id=envelope.event_id,
        occurred_at=envelope.date,
    )
    return ApprovalNotice(
        event_id=envelope.event_id,
        kind=envelope.kind,
        attempt=envelope.attempt,
        date=envelope.date,
        external_id=external_id if isinstance(external_id, str) else None,
        event=event,
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _ignored(envelope: _Envelope, reason: str) -> IgnoredNotice:
    return IgnoredNotice(envelope.event_id, envelope.kind, envelope.attempt, reason)


def _describe(exc: ValidationError, prefix: str) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = prefix + ".".join(str(part) for part in first["loc"])
    return f"{where or 'event'}: {first['msg']}"
