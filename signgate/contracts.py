"""Pydantic models that cross Temporal boundaries: workflow inputs and outcomes, events, state.

Every workflow, activity, signal, update and query takes one model and returns one, so a
field can be added without breaking running workflows. Models a caller builds (inputs,
events, delivery specs) refuse unknown fields, so a typo fails at the caller instead of
being silently ignored; models the engine writes and reads back from history (state,
snapshots, outcomes) ignore unknown fields, so an older worker can still read a newer
history.

What never appears here: tokens, credential keys, webhook or callback secrets. Inputs name
secrets (``CallbackDelivery.secret_name``), the worker holds the values.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from signgate.dfns.client import SigningTarget
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus
from signgate.dfns.requests import HashRequest, SignatureRequestBody, TransactionRequest
from signgate.ids import validate_business_key

__all__ = [
    "RECONCILED_STATUSES",
    "STATUS_RANK",
    "ApprovalDecisionInfo",
    "ApprovalEvent",
    "ApprovalInfo",
    "BuildTransferInput",
    "BuiltTransfer",
    "CallbackDelivery",
    "CallbackInput",
    "DeliveryReceipt",
    "DeliverySpec",
    "DenialResult",
    "DenyApprovalInput",
    "DescribeApprovalInput",
    "EventAck",
    "InputModel",
    "LedgerDelivery",
    "LedgerInput",
    "OutcomeKind",
    "PayoutInput",
    "PayoutOutcome",
    "PendingApprovalsInput",
    "PendingApprovalsPage",
    "PollingPolicy",
    "ReadAndVerifyInput",
    "ReadAndVerifyResult",
    "ReconcilerInput",
    "ReconcilerProgress",
    "ReconcilerSwept",
    "ReconcilerSweptInput",
    "RecordModel",
    "SignatureOutcome",
    "SignatureProgress",
    "SignatureWorkflowInput",
    "SignatureWorkflowState",
    "SigningTarget",
    "StatusEvent",
    "SubmitInput",
    "SubmitResolution",
    "VerificationResult",
    "VerifyCarriedInput",
    "VerifyInput",
    "WaitingRequest",
    "WaitingRequestsInput",
    "WaitingRequestsPage",
    "status_rank",
]


class InputModel(BaseModel):
    """Base of models callers build: unknown fields refused, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordModel(BaseModel):
    """Base of models the engine writes and reads back: unknown fields ignored."""

    model_config = ConfigDict(extra="ignore")


# --- status order ---------------------------------------------------------------------------

STATUS_RANK: Final[dict[SignatureStatus, int]] = {
    SignatureStatus.PENDING: 1,
    SignatureStatus.EXECUTING: 2,
    SignatureStatus.SIGNED: 3,
    SignatureStatus.CONFIRMED: 4,
    SignatureStatus.FAILED: 4,
    SignatureStatus.REJECTED: 4,
}
"""Statuses only move to a higher rank; ``Unknown`` has no rank and never moves anything."""


def status_rank(status: SignatureStatus | None) -> int:
    """Rank of ``status`` in :data:`STATUS_RANK`; 0 for none yet or ``Unknown``."""
    return 0 if status is None else STATUS_RANK.get(status, 0)


# --- input ----------------------------------------------------------------------------------

OutcomeKind = Literal["signed", "confirmed", "rejected", "failed", "expired", "cancelled"]
"""What became of a request: Dfns's terminal status, or the engine's deadline/cancel."""

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class PollingPolicy(InputModel):
    """How often the workflow asks Dfns when no webhook arrives.

    The interval starts at ``initial_interval`` and is multiplied by ``backoff_coefficient``
    after every poll that finds nothing new, up to ``max_interval``. A status change resets
    it. ``continue_as_new_after_polls`` starts a fresh run after that many polls in one
    run, in addition to the server's own suggestion (history length or size).

    ``reconciled``: the task queue's reconciler notices what moves, so a poll that falls due
    first asks whether a full sweep ran since the wait began; when one did, nothing moved
    and the poll is skipped (no Dfns call). ``jitter`` spreads each wait by up to that
    fraction either way, so requests submitted together do not fall due together.

    ``local_reads``: the engine runs without a Dfns budget (org limit 0), so a read of the
    request runs as a local activity inside the workflow task that wants it (a webhook's
    signal reads and records in one task) instead of an activity task on the budgeted reads
    queue, whose pace only the Temporal server can keep across workers. The starter sets it
    from its settings; workers that keep a budget refuse it (``worker.activate_patch``,
    recorded in history as the patch :data:`signgate.ids.BUDGET_QUEUES_READS_PATCH`).
    """

    initial_interval: timedelta = Field(default=timedelta(seconds=5), ge=timedelta(seconds=1))
    max_interval: timedelta = Field(default=timedelta(hours=1), ge=timedelta(seconds=1))
    backoff_coefficient: float = Field(default=2.0, ge=1.0, le=10.0)
    continue_as_new_after_polls: int | None = Field(default=None, ge=1)
    reconciled: bool = False
    jitter: float = Field(default=0.0, ge=0.0, le=0.5)
    local_reads: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_interval < self.initial_interval:
            raise ValueError("max_interval must not be shorter than initial_interval")
        return self


class CallbackDelivery(InputModel):
    """POST the outcome to ``url`` with an HMAC-SHA256 signature header, until it answers 2xx.

    ``secret_name`` names a callback secret configured on the worker; the secret itself
    never enters workflow history. ``on`` limits the outcomes delivered (all by default).
    """

    kind: Literal["callback"] = "callback"
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
    secret_name: SecretName = "default"  # noqa: S105 - the name of a secret, not a secret
    on: list[OutcomeKind] | None = None


class LedgerDelivery(InputModel):
    """Append the outcome to a ledger (SQLite by default), once, however often retried.

    ``ledger`` names a ledger configured on the worker. ``on`` as for callbacks.
    """

    kind: Literal["ledger"] = "ledger"
    ledger: SecretName = "default"
    on: list[OutcomeKind] | None = None


DeliverySpec = Annotated[CallbackDelivery | LedgerDelivery, Field(discriminator="kind")]
"""One downstream delivery; the ``kind`` says which."""


class SignatureWorkflowInput(InputModel):
    """Input of ``SignatureWorkflow``: one signature request, start to verified result.

    * ``target``: the key, wallet or legacy public key that signs.
    * ``request``: the body, any kind the Dfns client supports; leave ``external_id`` unset,
      the engine derives it from ``idempotency_key``.
    * ``idempotency_key``: defaults to the workflow id (the business key).
    * ``deadline``: past it, the engine denies its own pending approval and reports
      ``expired``.
    * ``wait_for_confirmed``: for ``Transaction`` requests, wait past ``Signed`` until Dfns
      reports ``Confirmed``.
    * ``deliver_unverifiable``: hand downstream a signature of a kind signgate cannot check
      (PSBT, BIP-322, ...). Off by default: such results are reported, not delivered.
    * ``notify_parent``: signal the parent workflow (``batch_item_settled``, a
      :class:`BatchItemResult`) when this request ends, however it ends: how a
      ``PayoutBatchWorkflow`` learns of its children across its own continue-as-new.
    * ``state``: set only by the engine when it continues as new.
    """

    target: SigningTarget
    request: SignatureRequestBody
    idempotency_key: IdempotencyKey | None = None
    deadline: AwareDatetime | None = None
    wait_for_confirmed: bool = False
    polling: PollingPolicy = PollingPolicy()
    deliveries: list[DeliverySpec] = []
    deliver_unverifiable: bool = False
    notify_parent: bool = False
    state: SignatureWorkflowState | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def problems(self) -> list[str]:
        """Why this input cannot be sent, in words; empty when it can."""
        found: list[str] = []
        if self.request.external_id is not None:
            found.append(
                "request.external_id must be left unset: the engine derives it from "
                "idempotency_key so that every retry sends the same one"
            )
        if self.target.kind == "public-key":
            if not isinstance(self.request, HashRequest):
                found.append(
                    f"a legacy public-key target signs only Hash requests, not {self.request.kind}"
                )
            elif self.request.taproot_merkle_root is not None:
                found.append("a legacy public-key target cannot apply a taprootMerkleRoot")
        if self.wait_for_confirmed and not isinstance(self.request, TransactionRequest):
            found.append(
                "wait_for_confirmed needs a Transaction request: only transactions are confirmed"
            )
        if self.idempotency_key is not None:
            try:
                validate_business_key(self.idempotency_key)
            except ValueError as exc:
                found.append(f"idempotency_key: {exc}")
        return found


class SubmitResolution(InputModel):
    """The caller's word on a legacy submit whose outcome is unknown (``resolve_submit``).

    ``signature_id``: the request found at Dfns for this hash, to adopt. ``resubmit``: no
    such request exists, submit again. Exactly one of the two.
    """

    signature_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    resubmit: bool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.signature_id is None) == (not self.resubmit):
            raise ValueError("give either signature_id (the request at Dfns) or resubmit=true")
        return self


# --- events ---------------------------------------------------------------------------------

EventSource = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ApprovalDecisionInfo(RecordModel):
    """One approver's decision as known to the engine."""

    user_id: str
    value: str
    date: datetime | None = None
    reason: str | None = None


class ApprovalEvent(InputModel):
    """Approval progress (``policy.approval.*`` webhooks): decisions so far, quorum.

    ``date_resolved`` (with ``initiator_id`` and ``expiration_date``) is set when the event
    carried the whole resolved approval, as Dfns's ``policy.approval.resolved`` does: the
    workflow then need not read the approval again for its outcome.
    """

    approval_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    status: Literal["Pending", "Approved", "Denied", "Expired"]
    decisions: list[ApprovalDecisionInfo] = []
    quorum: int | None = Field(default=None, ge=1)
    initiator_id: str | None = None
    expiration_date: AwareDatetime | None = None
    date_resolved: AwareDatetime | None = None
    signature_id: str | None = None
    source: EventSource = "webhook"
    event_id: str | None = None
    occurred_at: AwareDatetime | None = None


class StatusEvent(InputModel):
    """A status change someone else saw (a webhook, an operator): a hint, not the truth.

    A hint that moves the status forward wakes the workflow, which then reads the request
    from Dfns; stale and duplicate hints are ignored.

    ``view`` is the request as the event carried it, when it is ``Signed`` and carries its
    signatures (Dfns's ``wallet.signature.signed`` carries the whole request). The workflow
    takes it in place of a read only when it proves itself: this workflow's request, on its
    target, with a signature that verifies over the workflow's own request under the key's
    public key. Anything else leaves the event a hint, and the workflow reads Dfns as it
    would without.

    ``approval`` is the request's resolved approval, when the sender held that news back to
    send it with this event (the webhook receiver does, for ``webhook_approval_hold_seconds``):
    one signal for both, applied as if each had come on its own.
    """

    signature_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    status: SignatureStatus
    external_id: str | None = None
    source: EventSource = "webhook"
    event_id: str | None = None
    occurred_at: AwareDatetime | None = None
    view: SignatureRequestView | None = None
    approval: ApprovalEvent | None = None

    @field_validator("status")
    @classmethod
    def _known(cls, value: SignatureStatus) -> SignatureStatus:
        if value is SignatureStatus.UNKNOWN:
            raise ValueError("a status event must carry a known status")
        return value

    @model_validator(mode="after")
    def _approval_matches(self) -> Self:
        approval = self.approval
        if approval is None:
            return self
        if approval.status == "Pending":
            raise ValueError("only a resolved approval travels with a status event")
        if approval.signature_id is not None and approval.signature_id != self.signature_id:
            raise ValueError(
                f"approval.signature_id {approval.signature_id!r} is not the event's "
                f"signature_id {self.signature_id!r}"
            )
        return self

    @model_validator(mode="after")
    def _view_matches(self) -> Self:
        view = self.view
        if view is None:
            return self
        if view.id != self.signature_id:
            raise ValueError(
                f"view.id {view.id!r} is not the event's signature_id {self.signature_id!r}"
            )
        if view.status is not self.status:
            raise ValueError(
                f"view.status {str(view.status)!r} is not the event's status {str(self.status)!r}"
            )
        if view.external_id != self.external_id:
            raise ValueError("view.external_id must be the event's external_id")
        if view.status is not SignatureStatus.SIGNED:
            # A signature proves a Signed request, not a Confirmed one (nor its txHash).
            raise ValueError("only a Signed request is carried as a view: leave it out")
        if view.signature is None and not view.signatures:
            raise ValueError("a view is carried only with its signatures: leave it out")
        return self


class EventAck(RecordModel):
    """Answer of the status-event update: whether the hint moved anything."""

    applied: bool
    reason: str
    status: SignatureStatus | None = None


# --- records --------------------------------------------------------------------------------


class ApprovalInfo(RecordModel):
    """A policy approval as the engine knows it."""

    id: str
    status: str
    decisions: list[ApprovalDecisionInfo] = []
    quorum: int | None = None
    initiator_id: str | None = None
    expiration_date: datetime | None = None
    date_resolved: datetime | None = None


class DenialResult(RecordModel):
    """What happened when the engine denied its own pending approval."""

    approval_id: str
    denied: bool
    approval_status: str | None = None
    detail: str


class VerificationResult(RecordModel):
    """The check of a returned signature against the key's public key (fetched from Dfns).

    ``status``: ``verified`` (real cryptography said yes), ``unverifiable`` (a kind signgate
    cannot check; ``detail`` says why) or ``invalid`` (it does not verify: never delivered).
    """

    status: Literal["verified", "unverifiable", "invalid"]
    method: str
    detail: str
    scheme: str | None = None
    curve: str | None = None
    public_key: str | None = None
    digest: str | None = None
    key_id: str | None = None


class DeliveryReceipt(RecordModel):
    """One downstream delivery done: what and where, and whether it was new."""

    kind: Literal["callback", "ledger"]
    target: str
    idempotency_key: str
    first_time: bool
    detail: str


class SignatureWorkflowState(RecordModel):
    """Everything the workflow knows; carried across continue-as-new and shown by the query."""

    run: int = 1
    idempotency_key: str
    external_id: str
    started_at: datetime
    signature_id: str | None = None
    status: SignatureStatus | None = None
    status_since: datetime | None = None
    snapshot: SignatureRequestView | None = None
    approval: ApprovalInfo | None = None
    polls: int = 0
    poll_failures: int = 0
    polls_skipped: int = 0
    last_poll_error: str | None = None
    events_applied: int = 0
    events_ignored: int = 0
    hint_rank: int = 0
    carried: SignatureRequestView | None = None
    """A signed request a hint carried, not yet checked (see :class:`StatusEvent`)."""
    views_taken: int = 0
    """Reads saved: signed requests taken from an event whose signature verified."""
    next_interval: timedelta | None = None
    verification: VerificationResult | None = None
    verified_signatures: list[str] | None = None
    deadline_passed: bool = False
    cancel_requested: bool = False
    denial: DenialResult | None = None

    @property
    def approval_id(self) -> str | None:
        """The approval gating the request, when a policy triggered one."""
        if self.snapshot is not None and self.snapshot.approval_id:
            return self.snapshot.approval_id
        return self.approval.id if self.approval is not None else None


class SignatureProgress(RecordModel):
    """Answer of the ``state`` query.

    ``as_of`` is the workflow's clock at its last activation (a query cannot read the
    current time); ``time_in_status`` is measured up to then, ``status_since`` lets a
    caller measure it with its own clock.
    """

    status: SignatureStatus | None
    signature_id: str | None
    approval_id: str | None
    approval: ApprovalInfo | None
    as_of: datetime
    status_since: datetime
    time_in_status: timedelta
    polls: int
    poll_failures: int
    polls_skipped: int = 0
    views_taken: int = 0
    """Signed requests taken from a webhook's verified copy instead of a read of Dfns."""
    events_applied: int
    events_ignored: int
    run: int
    next_poll_in: timedelta | None
    deadline_passed: bool
    cancel_requested: bool
    submit_unknown: str | None = None
    """Why the submit's outcome is unknown, while the workflow waits for ``resolve_submit``."""


class SignatureOutcome(RecordModel):
    """Output of ``SignatureWorkflow``, and the payload every delivery receives.

    ``kind`` is the verdict. ``dfns_status`` is what Dfns last said (``Rejected`` for an
    expired or cancelled request whose approval the engine denied). ``verification`` is set
    whenever a signature came back; a signature that did not verify never produces an
    outcome (the workflow fails instead). ``notes`` explains anything unusual in words.
    """

    kind: OutcomeKind
    workflow_id: str
    idempotency_key: str
    external_id: str
    target: SigningTarget
    request_kind: str
    signature_id: str | None = None
    dfns_status: SignatureStatus | None = None
    raw_status: str | None = None
    signature: Signature | None = None
    signatures: list[Signature] = []
    signed_data: str | None = None
    tx_hash: str | None = None
    network: str | None = None
    key_id: str | None = None
    wallet_id: str | None = None
    approval_id: str | None = None
    approval: ApprovalInfo | None = None
    reason: str | None = None
    date_requested: datetime | None = None
    date_policy_resolved: datetime | None = None
    date_signed: datetime | None = None
    date_confirmed: datetime | None = None
    finished_at: datetime
    verification: VerificationResult | None = None
    expiry: Literal["deadline", "approval_timeout"] | None = None
    denial: DenialResult | None = None
    cancel_requested: bool = False
    deadline_passed: bool = False
    polls: int = 0
    notes: list[str] = []
    deliveries: list[DeliveryReceipt] = []


# --- activity inputs ------------------------------------------------------------------------


class SubmitInput(InputModel):
    """Create the signature request (``request.external_id`` already set)."""

    target: SigningTarget
    request: SignatureRequestBody


class DenyApprovalInput(InputModel):
    """Deny the engine's own pending approval (the initiator may deny its own activity)."""

    approval_id: str
    reason: Annotated[str, StringConstraints(max_length=1000)]


class DescribeApprovalInput(InputModel):
    """Read one approval."""

    approval_id: str


class VerifyInput(InputModel):
    """Check ``snapshot``'s signature over ``request`` against ``target``'s public key."""

    target: SigningTarget
    request: SignatureRequestBody
    snapshot: SignatureRequestView


class ReadAndVerifyInput(InputModel):
    """Read one signature request and, when it carries signatures, verify them.

    One activity instead of a read and then a verification: the read that finds a request
    signed is usually the last thing a workflow does before it finishes.
    """

    target: SigningTarget
    signature_id: str
    external_id: str | None = None
    request: SignatureRequestBody
    verify: bool = True
    """False once the workflow holds a verification: later reads (waiting for Confirmed)
    do not check the same signature again."""


class VerifyCarriedInput(InputModel):
    """Check a view an event carried, with no Dfns call unless ``read_key`` allows one.

    ``read_key``: on a worker that has not read the target's public key yet, read it (one
    call, then cached); false where Dfns reads must go through the budget's lane.
    """

    target: SigningTarget
    request: SignatureRequestBody
    snapshot: SignatureRequestView
    read_key: bool = False


class ReadAndVerifyResult(RecordModel):
    """The request as read; ``verification`` of its signatures when it carried any and they
    could be checked (``None``: no signatures, or the key could not be read this time)."""

    view: SignatureRequestView
    verification: VerificationResult | None = None


class CallbackInput(InputModel):
    """POST ``payload`` to ``spec.url``; ``idempotency_key`` lets the receiver drop repeats."""

    spec: CallbackDelivery
    idempotency_key: str
    event: str
    payload: dict[str, Any]


class LedgerInput(InputModel):
    """Append one record to ``spec.ledger``; a repeated ``idempotency_key`` is a no-op."""

    spec: LedgerDelivery
    idempotency_key: str
    workflow_id: str
    record_kind: Literal["signature", "payout", "batch"]
    outcome: str
    signature_id: str | None = None
    payload: dict[str, Any]


# --- payout ---------------------------------------------------------------------------------

EvmAddress = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
HexData = Annotated[str, StringConstraints(pattern=r"^0x([0-9a-fA-F]{2})*$")]
Uint = Annotated[int, Field(ge=0)]


class BuildTransferInput(InputModel):
    """An EIP-1559 transfer to serialise, unsigned."""

    chain_id: Annotated[int, Field(ge=1)]
    nonce: Uint
    to: EvmAddress
    value_wei: Uint
    gas_limit: Annotated[int, Field(ge=21000)] = 21000
    max_fee_per_gas: Uint
    max_priority_fee_per_gas: Uint
    data: HexData = "0x"


class BuiltTransfer(RecordModel):
    """The unsigned transaction (0x-hex) and what it does, for the record."""

    unsigned_transaction: str
    signing_hash: str
    to: str
    value_wei: int
    chain_id: int
    nonce: int


class PayoutInput(InputModel):
    """Input of ``PayoutWorkflow``: pay ``value_wei`` to ``to`` from an EVM key or wallet.

    The workflow id is the payout's business key. ``callback`` is notified with the payout's
    outcome; ``ledger`` records it.
    """

    source: SigningTarget
    transfer: BuildTransferInput
    network: str | None = "EthereumSepolia"
    deadline: AwareDatetime | None = None
    wait_for_confirmed: bool = False
    polling: PollingPolicy = PollingPolicy()
    ledger: LedgerDelivery = LedgerDelivery()
    callback: CallbackDelivery | None = None

    @field_validator("source")
    @classmethod
    def _not_legacy(cls, value: SigningTarget) -> SigningTarget:
        if value.kind == "public-key":
            raise ValueError("a payout signs a transaction: use a key or wallet, not a public key")
        return value


class PayoutOutcome(RecordModel):
    """Output of ``PayoutWorkflow``."""

    payout_id: str
    kind: OutcomeKind
    transfer: BuiltTransfer
    signature: SignatureOutcome
    signed_transaction: str | None = None
    tx_hash: str | None = None
    recorded: DeliveryReceipt | None = None
    notified: DeliveryReceipt | None = None


BusinessKey = Annotated[str, AfterValidator(validate_business_key)]
"""A workflow id a person can type: 1..200 printable ASCII characters, no spaces."""


class BatchPayout(InputModel):
    """One row of a payout batch: pay ``value_wei`` to ``to`` with this ``nonce``.

    ``id`` is the payout's business key and its signature workflow's id: a payout id that
    already has a workflow (in this batch or any other) is never paid again. Fields left unset
    take the batch's defaults.
    """

    id: BusinessKey
    to: EvmAddress
    value_wei: Uint
    nonce: Uint
    source: SigningTarget | None = None
    """The key or wallet paying this row, if not the batch's."""
    chain_id: Annotated[int, Field(ge=1)] | None = None
    max_fee_per_gas: Uint | None = None
    max_priority_fee_per_gas: Uint | None = None
    deadline: AwareDatetime | None = None


class PayoutBatchInput(InputModel):
    """Input of ``PayoutBatchWorkflow``: many payouts from one source, each signed by its own
    child ``SignatureWorkflow``.

    * ``concurrency``: at most this many payouts waiting at Dfns at once.
    * ``payouts_per_run``: the batch continues as new after starting this many, so its
      history stays bounded however long the batch (children carry on and report to the
      next run).
    * ``deliveries``: run by each payout's signature workflow with its own outcome;
      ``summary``: where the batch's summary goes once every payout has ended.
    * ``state``: set only by the engine when it continues as new.
    """

    source: SigningTarget | None = None
    """The key or wallet paying every row that names none."""
    payouts: Annotated[list[BatchPayout], Field(min_length=1, max_length=10_000)]
    chain_id: Annotated[int, Field(ge=1)] = 11155111
    network: str | None = "EthereumSepolia"
    max_fee_per_gas: Uint = 2 * 10**9
    max_priority_fee_per_gas: Uint = 10**9
    deadline: AwareDatetime | None = None
    polling: PollingPolicy = PollingPolicy()
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 50
    payouts_per_run: Annotated[int, Field(ge=1, le=2000)] = 250
    deliveries: list[DeliverySpec] = [LedgerDelivery()]
    summary: list[DeliverySpec] = []
    state: BatchState | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for payout in self.payouts:
            source = payout.source or self.source
            if source is None:
                raise ValueError(
                    f"payout {payout.id!r} has no source: give the batch a source or the row one"
                )
            if source.kind == "public-key":
                raise ValueError(
                    f"payout {payout.id!r}: a payout signs a transaction; use a key or wallet, "
                    "not a public key"
                )
        seen: set[str] = set()
        repeated: set[str] = set()
        for payout in self.payouts:
            (repeated if payout.id in seen else seen).add(payout.id)
        if repeated:
            names = sorted(repeated)
            raise ValueError(
                f"payout ids must be unique within a batch; repeated: {', '.join(names[:5])}"
                + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            )
        return self


class BatchItemResult(RecordModel):
    """How one payout of a batch ended: an outcome ``kind``, or ``error`` (the workflow
    failed, or the payout was never started)."""

    payout_id: str
    kind: OutcomeKind | None = None
    signature_id: str | None = None
    tx_hash: str | None = None
    error: str | None = None
    error_type: str | None = None


class BatchState(RecordModel):
    """What a batch carries across continue-as-new."""

    next_index: int = 0
    in_flight: dict[str, datetime] = {}
    """Payouts started and not yet ended, with when they started."""
    results: list[BatchItemResult] = []
    run: int = 1
    cancel_requested: bool = False


class BatchProgress(RecordModel):
    """Answer of the batch's ``batch_progress`` query."""

    total: int
    not_started: int
    in_flight: int
    ended: int
    by_outcome: dict[str, int]
    """Ended payouts by outcome kind, plus ``error`` and ``not_started`` (after a cancel)."""
    waiting_longest: list[tuple[str, datetime]]
    """Up to ten payouts in flight, oldest first, with when they started."""
    run: int
    cancel_requested: bool


class PayoutBatchOutcome(RecordModel):
    """Output of ``PayoutBatchWorkflow``: the summary and every payout's result."""

    batch_id: str
    total: int
    by_outcome: dict[str, int]
    results: list[BatchItemResult]
    cancelled: bool
    deliveries: list[DeliveryReceipt] = []


# --- reconciler -----------------------------------------------------------------------------


RECONCILED_STATUSES: tuple[SignatureStatus, ...] = (
    SignatureStatus.PENDING,
    SignatureStatus.EXECUTING,
)
"""The statuses whose moves the reconciler's sweeps notice: a request in one of them waits at
Dfns (for its approval, or for the signer) and is listed and woken; any other waits on polls."""


class ReconcilerInput(InputModel):
    """Input of ``ReconcilerWorkflow``: sweeps at most every ``interval``, paced to a budget.

    A sweep reads ``page_size`` approvals a call, at most ``calls_per_minute`` calls a minute
    (``None``: unpaced), so a sweep of many pages takes longer instead of costing more.
    ``sweeps``, ``woken`` and ``last_ok_sweep_started_at`` are carried across continue-as-new.
    """

    interval: timedelta = Field(default=timedelta(seconds=15), ge=timedelta(seconds=1))
    page_size: int = Field(default=100, ge=1, le=100)
    calls_per_minute: float | None = Field(default=None, gt=0)
    sweeps_per_run: int = Field(default=20, ge=1, le=1000)
    sweeps: int = Field(default=0, ge=0)
    woken: int = Field(default=0, ge=0)
    last_ok_sweep_started_at: datetime | None = None


class PendingApprovalsInput(InputModel):
    """One page of ``GET /v2/policy-approvals?status=Pending`` (``token``: the next page)."""

    page_size: int = Field(default=100, ge=1, le=100)
    token: str | None = None


class PendingApprovalsPage(RecordModel):
    """The signature requests gated by the pending approvals of one page."""

    signature_ids: list[str]
    next_token: str | None = None


class WaitingRequestsInput(InputModel):
    r"""One page of the running ``SignatureWorkflow``\ s of ``task_queue`` waiting at Dfns."""

    task_queue: str = Field(min_length=1)
    page_size: int = Field(default=1000, ge=1, le=1000)
    token: str | None = None
    """The visibility page token, base64."""


class WaitingRequest(RecordModel):
    """A request waiting at Dfns, as the visibility index shows it."""

    workflow_id: str
    signature_id: str
    status: SignatureStatus


class WaitingRequestsPage(RecordModel):
    """One page of waiting requests."""

    requests: list[WaitingRequest]
    next_token: str | None = None


class ReconcilerProgress(RecordModel):
    """Answer of the reconciler's ``reconciler_progress`` query."""

    sweeps: int
    woken: int
    last_sweep_at: datetime | None
    last_waiting: int
    last_pending: int
    last_error: str | None
    last_ok_sweep_started_at: datetime | None = None


class ReconcilerSweptInput(InputModel):
    """Has the reconciler of ``task_queue`` finished a full sweep that started after ``since``?"""

    task_queue: str = Field(min_length=1)
    since: datetime


class ReconcilerSwept(RecordModel):
    """The answer: ``swept`` when such a sweep finished; ``why`` when it is not known."""

    swept: bool
    why: str | None = None


SignatureWorkflowInput.model_rebuild()
PayoutBatchInput.model_rebuild()
