"""Dfns response objects signgate reads (tolerant), and the normalised signature view.

Wire models keep Dfns's camelCase names as aliases, accept fields they do not know
(``extra="allow"``: Dfns adds fields such as ``details`` without notice) and keep
enumerations that Dfns may extend as plain strings. Shapes follow Dfns's OpenAPI spec
1.578.2; the legacy ``/public-keys`` objects follow the old docs.

Three API generations return signature requests in three shapes (``KeySignatureRequest``,
``WalletSignatureRequest``, ``PublicKeySignature``). Each has ``.view()``, which returns one
:class:`SignatureRequestView`: snake_case, frozen, with a :class:`SignatureStatus` that maps
every generation's vocabulary onto one set (legacy ``Executed`` is ``Signed``) and keeps the
raw value. Pagination tokens are opaque strings: pass ``next_page_token`` back unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "TERMINAL_STATUSES",
    "Approval",
    "ApprovalDecision",
    "ApprovalList",
    "CreatedWebhook",
    "Key",
    "KeySignatureList",
    "KeySignatureRequest",
    "KeyStore",
    "KeyWalletRef",
    "PolicyEvaluation",
    "PublicKey",
    "PublicKeySignature",
    "Requester",
    "Signature",
    "SignatureGeneration",
    "SignatureRequestView",
    "SignatureStatus",
    "Wallet",
    "WalletSignatureList",
    "WalletSignatureRequest",
    "WalletSigningKey",
    "Webhook",
    "WebhookEvent",
    "WebhookEventList",
    "WebhookEventPayload",
    "WebhookList",
    "WireModel",
    "normalize_status",
]


class WireModel(BaseModel):
    """Base of every object read from Dfns: camelCase aliases, unknown fields kept."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


# --- status ---------------------------------------------------------------------------------


class SignatureStatus(StrEnum):
    """Status of a signature request, the same for every API generation.

    ``Signed`` is terminal for signing purposes but not final: Dfns may later move the request
    to ``Confirmed`` when its indexer sees the signed transaction on-chain. ``UNKNOWN`` stands
    for any value Dfns adds after spec 1.578.2; the raw value is kept beside it.
    """

    PENDING = "Pending"
    EXECUTING = "Executing"
    SIGNED = "Signed"
    CONFIRMED = "Confirmed"
    FAILED = "Failed"
    REJECTED = "Rejected"
    UNKNOWN = "Unknown"


TERMINAL_STATUSES: Final[frozenset[SignatureStatus]] = frozenset(
    {
        SignatureStatus.SIGNED,
        SignatureStatus.CONFIRMED,
        SignatureStatus.FAILED,
        SignatureStatus.REJECTED,
    }
)
"""Statuses after which no signature will be produced any more (``Signed`` may still confirm)."""

SignatureGeneration = Literal["keys", "wallets", "public-keys"]
"""Which Dfns API produced a signature request: G3 Keys, G2 Wallets, G1 public keys."""

_CURRENT_STATUSES: Final[dict[str, SignatureStatus]] = {
    s.value: s for s in SignatureStatus if s is not SignatureStatus.UNKNOWN
}
# G1 said "Executed" where later generations say "Signed"; it had no Executing/Confirmed.
_LEGACY_STATUSES: Final[dict[str, SignatureStatus]] = {
    "Pending": SignatureStatus.PENDING,
    "Executed": SignatureStatus.SIGNED,
    "Rejected": SignatureStatus.REJECTED,
    "Failed": SignatureStatus.FAILED,
}


def normalize_status(raw: str, generation: SignatureGeneration) -> SignatureStatus:
    """Map a raw Dfns status of ``generation`` onto :class:`SignatureStatus`.

    Matching is exact (Dfns's casing); anything not in that generation's vocabulary is
    ``UNKNOWN``.
    """
    table = _LEGACY_STATUSES if generation == "public-keys" else _CURRENT_STATUSES
    return table.get(raw, SignatureStatus.UNKNOWN)


# --- signature requests ---------------------------------------------------------------------


class Signature(WireModel):
    """One signature: ``r``/``s`` (0x-hex), ``recid`` for ECDSA, ``encoded`` chain-formatted."""

    r: str
    s: str
    recid: int | None = None
    encoded: str | None = None


class Requester(WireModel):
    """Who asked for the signature (``appId`` only in the G2 era)."""

    user_id: str
    token_id: str | None = None
    app_id: str | None = None


def _aware(value: datetime | None) -> datetime | None:
    # Dfns writes UTC ("...Z"); a zone-less value is read as UTC so comparisons never mix kinds.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class SignatureRequestView(BaseModel):
    """One signature request, normalised across API generations (our own model, not Dfns's).

    It crosses Temporal boundaries, so it is frozen, snake_case, and ignores fields it does
    not know when read back from an older or newer history. Datetimes are timezone-aware.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    generation: SignatureGeneration
    id: str
    key_id: str | None = None
    wallet_id: str | None = None
    public_key_id: str | None = None
    status: SignatureStatus
    raw_status: str
    signature: Signature | None = None
    signatures: list[Signature] = []
    signed_data: str | None = None
    approval_id: str | None = None
    date_requested: datetime | None = None
    date_signed: datetime | None = None
    date_policy_resolved: datetime | None = None
    date_confirmed: datetime | None = None
    reason: str | None = None
    tx_hash: str | None = None
    fee: str | None = None
    network: str | None = None
    external_id: str | None = None
    request_body: dict[str, Any] = {}

    @field_validator(
        "date_requested", "date_signed", "date_policy_resolved", "date_confirmed", mode="after"
    )
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        return _aware(value)

    @property
    def is_terminal(self) -> bool:
        """True once the request will not change except ``Signed`` -> ``Confirmed``."""
        return self.status in TERMINAL_STATUSES


class _SignatureRequestFields(WireModel):
    """Fields shared by the G3 and G2 SignatureRequest objects."""

    id: str
    requester: Requester
    # The echo of what was sent: kept as a dict so a kind newer than this client still reads.
    request_body: dict[str, Any]
    status: str
    signature: Signature | None = None
    signatures: list[Signature] | None = None
    signed_data: str | None = None
    tx_hash: str | None = None
    fee: str | None = None
    approval_id: str | None = None
    reason: str | None = None
    external_id: str | None = None
    date_requested: datetime
    date_signed: datetime | None = None
    date_policy_resolved: datetime | None = None
    date_confirmed: datetime | None = None

    def _view(
        self,
        generation: SignatureGeneration,
        *,
        key_id: str | None,
        wallet_id: str | None,
        network: str | None,
    ) -> SignatureRequestView:
        return SignatureRequestView(
            generation=generation,
            id=self.id,
            key_id=key_id,
            wallet_id=wallet_id,
            status=normalize_status(self.status, generation),
            raw_status=self.status,
            signature=self.signature,
            signatures=list(self.signatures or []),
            signed_data=self.signed_data,
            approval_id=self.approval_id,
            date_requested=self.date_requested,
            date_signed=self.date_signed,
            date_policy_resolved=self.date_policy_resolved,
            date_confirmed=self.date_confirmed,
            reason=self.reason,
            tx_hash=self.tx_hash,
            fee=self.fee,
            network=network,
            external_id=self.external_id,
            request_body=self.request_body,
        )


class KeySignatureRequest(_SignatureRequestFields):
    """SignatureRequest of the Keys API (``/keys/{keyId}/signatures``, G3)."""

    key_id: str
    network: str | None = None

    def view(self) -> SignatureRequestView:
        """The generation-independent view of this request."""
        extra = self.model_extra or {}
        wallet_id = extra.get("walletId")
        return self._view(
            "keys",
            key_id=self.key_id,
            wallet_id=wallet_id if isinstance(wallet_id, str) else None,
            network=self.network,
        )


class WalletSignatureRequest(_SignatureRequestFields):
    """SignatureRequest of the deprecated Wallets API (``/wallets/{walletId}/signatures``, G2)."""

    wallet_id: str
    network: str
    key_id: str | None = None

    def view(self) -> SignatureRequestView:
        """The generation-independent view of this request."""
        return self._view(
            "wallets", key_id=self.key_id, wallet_id=self.wallet_id, network=self.network
        )


class PublicKeySignature(WireModel):
    """Signature object of the legacy public-keys API (``/public-keys/{id}/signatures``, G1).

    Status is ``Pending | Executed | Rejected | Failed``; ``r``/``s`` are empty strings until
    the signature is executed.
    """

    id: str
    org_id: str | None = None
    public_key_id: str
    hash: str
    status: str
    r: str | None = None
    s: str | None = None
    recid: int | None = None
    initiator: dict[str, Any] | None = None
    date_created: datetime

    def view(self) -> SignatureRequestView:
        """The generation-independent view; legacy ``Executed`` becomes ``Signed``."""
        signature = None
        if self.status == "Executed" and self.r and self.s:
            signature = Signature(r=self.r, s=self.s, recid=self.recid)
        return SignatureRequestView(
            generation="public-keys",
            id=self.id,
            public_key_id=self.public_key_id,
            status=normalize_status(self.status, "public-keys"),
            raw_status=self.status,
            signature=signature,
            date_requested=self.date_created,
            request_body={"hash": self.hash},
        )


class KeySignatureList(WireModel):
    """A page of ``GET /keys/{keyId}/signatures``."""

    key_id: str
    items: list[KeySignatureRequest]
    next_page_token: str | None = None


class WalletSignatureList(WireModel):
    """A page of ``GET /wallets/{walletId}/signatures``.

    The old docs put ``walletId`` on the page and on every item; spec 1.578.2 shows ``keyId``
    on the page instead. Items missing ``walletId`` take it from the page, or from
    ``model_validate(data, context={"wallet_id": ...})`` when the caller knows it from the path.
    """

    wallet_id: str | None = None
    key_id: str | None = None
    items: list[WalletSignatureRequest]
    next_page_token: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _items_inherit_wallet_id(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            return data
        context = info.context if isinstance(info.context, dict) else {}
        wallet_id = data.get("walletId", data.get("wallet_id", context.get("wallet_id")))
        if not isinstance(wallet_id, str):
            return data
        items = [
            {**item, "walletId": wallet_id}
            if isinstance(item, dict) and "walletId" not in item and "wallet_id" not in item
            else item
            for item in data["items"]
        ]
        return {**data, "items": items}


# --- keys, wallets, legacy public keys ------------------------------------------------------


class KeyStore(WireModel):
    """Where a key lives (``Mpc`` or ``Hsm``)."""

    id: str
    kind: str
    key_id: str | None = None


class KeyWalletRef(WireModel):
    """A wallet that uses a key."""

    id: str
    network: str


class Key(WireModel):
    """A Dfns key (``GET /keys/{keyId}``)."""

    id: str
    scheme: str
    curve: str
    public_key: str
    status: str
    custodial: bool | None = None
    name: str | None = None
    store: KeyStore | None = None
    wallets: list[KeyWalletRef] = []
    imported: bool | None = None
    exported: bool | None = None
    date_created: datetime | None = None
    date_exported: datetime | None = None
    date_deleted: datetime | None = None


class WalletSigningKey(WireModel):
    """The key behind a wallet; ``id`` is what the Keys API calls ``keyId``."""

    scheme: str
    curve: str
    public_key: str
    id: str | None = None
    delegated_to: str | None = None


class Wallet(WireModel):
    """A Dfns wallet (``GET /wallets/{walletId}``)."""

    id: str
    network: str
    address: str | None = None
    signing_key: WalletSigningKey
    status: str
    tags: list[str] = []
    external_id: str | None = None
    name: str | None = None
    custodial: bool | None = None
    validator_id: str | None = None
    date_created: datetime | None = None
    date_deleted: datetime | None = None

    @property
    def key_id(self) -> str | None:
        """The id of the wallet's signing key, for the Keys API."""
        return self.signing_key.id


class PublicKey(WireModel):
    """A legacy public key (``GET /public-keys/{id}``)."""

    id: str
    public_key: str
    scheme: str | None = None
    curve: str | None = None


# --- policy approvals -----------------------------------------------------------------------


class ApprovalDecision(WireModel):
    """One approver's decision."""

    user_id: str
    date: datetime
    value: str
    reason: str | None = None


class PolicyEvaluation(WireModel):
    """Whether one policy triggered on the activity."""

    policy_id: str
    triggered: bool
    reason: str | None = None


class Approval(WireModel):
    """A policy approval (``GET /v2/policy-approvals/{approvalId}``).

    ``status`` is ``Pending | Approved | Denied | Expired`` in spec 1.578.2. ``activity`` is
    kept as a dict: it is a union of many activity kinds, most of no concern here.
    """

    id: str
    initiator_id: str
    status: str
    expiration_date: datetime | None = None
    date_created: datetime | None = None
    date_updated: datetime
    date_resolved: datetime | None = None
    activity: dict[str, Any]
    policy_evaluations: list[PolicyEvaluation] = []
    decisions: list[ApprovalDecision] = []

    @property
    def signature_request_id(self) -> str | None:
        """Id of the signature request this approval gates, when it gates one."""
        request = self.activity.get("signatureRequest")
        if isinstance(request, dict):
            request_id = request.get("id")
            if isinstance(request_id, str):
                return request_id
        return None


class ApprovalList(WireModel):
    """A page of ``GET /v2/policy-approvals``."""

    items: list[Approval]
    next_page_token: str | None = None


# --- webhooks -------------------------------------------------------------------------------


class Webhook(WireModel):
    """A webhook subscription (``GET /webhooks/{webhookId}``)."""

    id: str
    url: str
    events: list[str]
    status: str
    description: str | None = None
    date_created: datetime
    date_updated: datetime


class CreatedWebhook(Webhook):
    """The ``POST /webhooks`` response: the only one that carries the HMAC ``secret``.

    The secret is a :class:`~pydantic.SecretStr`, masked in ``repr``, ``str`` and dumps; use
    ``secret.get_secret_value()`` where it is stored.
    """

    secret: SecretStr


class WebhookList(WireModel):
    """A page of ``GET /webhooks``."""

    items: list[Webhook]
    next_page_token: str | None = None


class WebhookEvent(WireModel):
    """A stored delivery attempt (``GET /webhooks/{webhookId}/events[/{eventId}]``).

    ``status`` is the HTTP status the receiver answered, as a string (e.g. ``"200"``);
    ``deliveryFailed`` and ``nextAttemptDate`` come from the old docs.
    """

    id: str
    kind: str
    date: datetime
    data: dict[str, Any]
    status: str | None = None
    error: str | None = None
    timestamp_sent: int
    delivery_failed: bool | None = None
    next_attempt_date: datetime | None = None


class WebhookEventList(WireModel):
    """A page of ``GET /webhooks/{webhookId}/events``."""

    items: list[WebhookEvent]
    next_page_token: str | None = None


class WebhookEventPayload(WireModel):
    """The body Dfns POSTs to a webhook URL (verify its HMAC on the raw bytes first).

    Every attempt has a new ``id``; retries point at the previous attempt with ``retryOf``.
    """

    id: str
    kind: str
    date: datetime
    data: dict[str, Any]
    timestamp_sent: int
    delivery_attempt: int
    retry_of: str | None = None

    def signature_request(self) -> KeySignatureRequest | None:
        """``data.signatureRequest`` of a ``wallet.signature.*`` event, parsed; else ``None``.

        Raises :class:`pydantic.ValidationError` if it is present but malformed.
        """
        request = self.data.get("signatureRequest")
        if request is None:
            return None
        return KeySignatureRequest.model_validate(request)
