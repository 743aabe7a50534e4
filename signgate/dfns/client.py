"""Async Dfns client: signature requests (three API generations), approvals and webhooks.

The client wraps an injected :class:`httpx.AsyncClient` (which owns the base URL, timeouts,
connection pool and transport) and does no retries of its own: the caller's retry policy owns
them, and every signed write can be retried safely because each attempt runs a fresh
user-action flow. Failures raise the tree in :mod:`signgate.dfns.errors`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from signgate.dfns.auth import USER_ACTION_EXTENSION, CredentialSigner, DfnsAuth, needs_user_action
from signgate.dfns.errors import (
    DfnsConnectionError,
    DfnsInvalidRequestError,
    DfnsTimeoutError,
    DfnsUnexpectedResponseError,
    DfnsUserActionError,
    error_from_response,
)
from signgate.dfns.models import (
    Approval,
    ApprovalList,
    CreatedWebhook,
    Key,
    KeySignatureList,
    KeySignatureRequest,
    PublicKey,
    PublicKeySignature,
    SignatureRequestView,
    Wallet,
    WalletSignatureList,
    WalletSignatureRequest,
    Webhook,
    WebhookEvent,
    WebhookEventList,
    WebhookList,
    WireModel,
)
from signgate.dfns.requests import (
    ApprovalDecisionRequest,
    CreateWebhookRequest,
    HashRequest,
    LegacyHashRequest,
    SignatureRequestBody,
    UpdateWebhookRequest,
    to_wire,
)

__all__ = ["DfnsClient", "SigningTarget", "SigningTargetKind", "WebhookPing"]

SigningTargetKind = Literal["key", "wallet", "public-key"]

_M = TypeVar("_M", bound=BaseModel)
_T_co = TypeVar("_T_co", covariant=True)

_MAX_REPORTED_ERRORS = 10


class SigningTarget(BaseModel):
    """What signs: a Keys-API key, a (deprecated) wallet, or a legacy G1 public key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: SigningTargetKind
    id: str = Field(min_length=1)


class WebhookPing(WireModel):
    """Result of ``POST /webhooks/{webhookId}/ping``: the receiver's status, or the error."""

    status: str
    error: str | None = None


class _Page(Protocol[_T_co]):
    @property
    def items(self) -> Sequence[_T_co]: ...

    @property
    def next_page_token(self) -> str | None: ...


class DfnsClient:
    """Typed access to the Dfns endpoints signgate uses.

    ``http`` must have a ``base_url`` (e.g. ``https://api.dfns.io``, or a sandbox URL; a path
    prefix is allowed). ``auth_token`` is the service-account or personal access token;
    ``signer`` signs user actions and is required for every write. ``app_id`` and
    ``send_nonce`` add the G2-era ``X-DFNS-APPID`` / ``X-DFNS-NONCE`` headers.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        auth_token: str | SecretStr,
        signer: CredentialSigner | None = None,
        app_id: str | None = None,
        send_nonce: bool = False,
    ) -> None:
        base_url = http.base_url
        if not base_url.scheme or not base_url.host:
            raise ValueError(
                "the httpx.AsyncClient given to DfnsClient needs a base_url "
                "(e.g. httpx.AsyncClient(base_url='https://api.dfns.io'))"
            )
        self._http = http
        self._auth = DfnsAuth(
            auth_token, base_url=base_url, signer=signer, app_id=app_id, send_nonce=send_nonce
        )

    @property
    def base_url(self) -> httpx.URL:
        """The API root requests are sent to."""
        return self._http.base_url

    def __repr__(self) -> str:
        return f"DfnsClient(base_url={str(self._http.base_url)!r}, signer={self._auth.signer!r})"

    # --- Keys API (G3) --------------------------------------------------------------------

    async def generate_signature(
        self, key_id: str, body: SignatureRequestBody
    ) -> KeySignatureRequest:
        """``POST /keys/{keyId}/signatures`` (user-action signed). 200 and 202 both parse."""
        path = f"/keys/{_seg(key_id, 'key_id')}/signatures"
        return await self._call(KeySignatureRequest, "POST", path, body=body)

    async def get_signature(self, key_id: str, signature_id: str) -> KeySignatureRequest:
        """``GET /keys/{keyId}/signatures/{signatureId}``."""
        path = f"/keys/{_seg(key_id, 'key_id')}/signatures/{_seg(signature_id, 'signature_id')}"
        return await self._call(KeySignatureRequest, "GET", path)

    async def list_signatures(
        self, key_id: str, *, limit: int | None = None, pagination_token: str | None = None
    ) -> KeySignatureList:
        """``GET /keys/{keyId}/signatures``: one page."""
        path = f"/keys/{_seg(key_id, 'key_id')}/signatures"
        params = {"limit": limit, "paginationToken": pagination_token}
        return await self._call(KeySignatureList, "GET", path, params=params)

    def iter_signatures(
        self, key_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[KeySignatureRequest]:
        """Every signature request of a key, following ``nextPageToken`` page by page."""

        def page(token: str | None) -> Awaitable[KeySignatureList]:
            return self.list_signatures(key_id, limit=page_size, pagination_token=token)

        return _iterate(page)

    async def get_key(self, key_id: str) -> Key:
        """``GET /keys/{keyId}``."""
        return await self._call(Key, "GET", f"/keys/{_seg(key_id, 'key_id')}")

    # --- Wallets API (G2, deprecated by Dfns) ---------------------------------------------

    async def generate_wallet_signature(
        self, wallet_id: str, body: SignatureRequestBody
    ) -> WalletSignatureRequest:
        """``POST /wallets/{walletId}/signatures`` (user-action signed)."""
        path = f"/wallets/{_seg(wallet_id, 'wallet_id')}/signatures"
        return await self._call(WalletSignatureRequest, "POST", path, body=body)

    async def get_wallet_signature(
        self, wallet_id: str, signature_id: str
    ) -> WalletSignatureRequest:
        """``GET /wallets/{walletId}/signatures/{signatureId}``."""
        path = (
            f"/wallets/{_seg(wallet_id, 'wallet_id')}"
            f"/signatures/{_seg(signature_id, 'signature_id')}"
        )
        return await self._call(WalletSignatureRequest, "GET", path)

    async def list_wallet_signatures(
        self, wallet_id: str, *, limit: int | None = None, pagination_token: str | None = None
    ) -> WalletSignatureList:
        """``GET /wallets/{walletId}/signatures``: one page."""
        path = f"/wallets/{_seg(wallet_id, 'wallet_id')}/signatures"
        params = {"limit": limit, "paginationToken": pagination_token}
        # Items without walletId inherit it from the path (the list model reads this context).
        return await self._call(
            WalletSignatureList, "GET", path, params=params, context={"wallet_id": wallet_id}
        )

    def iter_wallet_signatures(
        self, wallet_id: str, *, page_size: int | None = None
    ) -> AsyncIterator[WalletSignatureRequest]:
        """Every signature request of a wallet, following ``nextPageToken``."""

        def page(token: str | None) -> Awaitable[WalletSignatureList]:
            return self.list_wallet_signatures(wallet_id, limit=page_size, pagination_token=token)

        return _iterate(page)

    async def get_wallet(self, wallet_id: str) -> Wallet:
        """``GET /wallets/{walletId}``."""
        return await self._call(Wallet, "GET", f"/wallets/{_seg(wallet_id, 'wallet_id')}")

    # --- legacy public keys (G1) ----------------------------------------------------------

    async def create_public_key_signature(
        self, public_key_id: str, body: LegacyHashRequest
    ) -> PublicKeySignature:
        """``POST /public-keys/{publicKeyId}/signatures`` with ``{"hash"}``."""
        path = f"/public-keys/{_seg(public_key_id, 'public_key_id')}/signatures"
        return await self._call(PublicKeySignature, "POST", path, body=body)

    async def get_public_key_signature(
        self, public_key_id: str, signature_id: str
    ) -> PublicKeySignature:
        """``GET /public-keys/{publicKeyId}/signatures/{signatureId}``."""
        path = (
            f"/public-keys/{_seg(public_key_id, 'public_key_id')}"
            f"/signatures/{_seg(signature_id, 'signature_id')}"
        )
        return await self._call(PublicKeySignature, "GET", path)

    async def get_public_key(self, public_key_id: str) -> PublicKey:
        """``GET /public-keys/{publicKeyId}``."""
        path = f"/public-keys/{_seg(public_key_id, 'public_key_id')}"
        return await self._call(PublicKey, "GET", path)

    # --- one entry point across the generations -------------------------------------------

    async def submit(
        self, target: SigningTarget, body: SignatureRequestBody
    ) -> SignatureRequestView:
        """Create a signature request on any generation and return the normalised view.

        A legacy public key only signs hashes: a ``Hash`` body is sent as ``{"hash"}`` and its
        ``externalId``, ``network`` and ``blockchainKind`` are dropped because G1 has no such
        fields (so no idempotency key either). Other kinds, or a ``taprootMerkleRoot``, raise
        :class:`DfnsInvalidRequestError` before anything is sent.
        """
        if target.kind == "key":
            return (await self.generate_signature(target.id, body)).view()
        if target.kind == "wallet":
            return (await self.generate_wallet_signature(target.id, body)).view()
        legacy = _legacy_body(body)
        return (await self.create_public_key_signature(target.id, legacy)).view()

    async def fetch(self, target: SigningTarget, signature_id: str) -> SignatureRequestView:
        """Read a signature request on any generation, as the normalised view."""
        if target.kind == "key":
            return (await self.get_signature(target.id, signature_id)).view()
        if target.kind == "wallet":
            return (await self.get_wallet_signature(target.id, signature_id)).view()
        return (await self.get_public_key_signature(target.id, signature_id)).view()

    # --- policy approvals -----------------------------------------------------------------

    async def list_approvals(
        self,
        *,
        status: str | None = None,
        initiator_id: str | None = None,
        approver_id: str | None = None,
        limit: int | None = None,
        pagination_token: str | None = None,
    ) -> ApprovalList:
        """``GET /v2/policy-approvals``; ``status`` is ``Pending|Approved|Denied|Expired``."""
        params = {
            "status": status,
            "initiatorId": initiator_id,
            "approverId": approver_id,
            "limit": limit,
            "paginationToken": pagination_token,
        }
        return await self._call(ApprovalList, "GET", "/v2/policy-approvals", params=params)

    async def get_approval(self, approval_id: str) -> Approval:
        """``GET /v2/policy-approvals/{approvalId}``."""
        path = f"/v2/policy-approvals/{_seg(approval_id, 'approval_id')}"
        return await self._call(Approval, "GET", path)

    async def create_approval_decision(
        self, approval_id: str, body: ApprovalDecisionRequest
    ) -> Approval:
        """``POST /v2/policy-approvals/{approvalId}/decisions`` (user-action signed)."""
        path = f"/v2/policy-approvals/{_seg(approval_id, 'approval_id')}/decisions"
        return await self._call(Approval, "POST", path, body=body)

    # --- webhooks -------------------------------------------------------------------------

    async def create_webhook(self, body: CreateWebhookRequest) -> CreatedWebhook:
        """``POST /webhooks``; the response is the only place the signing secret appears."""
        return await self._call(CreatedWebhook, "POST", "/webhooks", body=body)

    async def list_webhooks(
        self, *, limit: int | None = None, pagination_token: str | None = None
    ) -> WebhookList:
        """``GET /webhooks``: one page."""
        params = {"limit": limit, "paginationToken": pagination_token}
        return await self._call(WebhookList, "GET", "/webhooks", params=params)

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """``GET /webhooks/{webhookId}``."""
        return await self._call(Webhook, "GET", f"/webhooks/{_seg(webhook_id, 'webhook_id')}")

    async def update_webhook(self, webhook_id: str, body: UpdateWebhookRequest) -> Webhook:
        """``PUT /webhooks/{webhookId}`` (user-action signed)."""
        path = f"/webhooks/{_seg(webhook_id, 'webhook_id')}"
        return await self._call(Webhook, "PUT", path, body=body)

    async def delete_webhook(self, webhook_id: str) -> None:
        """``DELETE /webhooks/{webhookId}`` (user-action signed); any 2xx means deleted."""
        path = f"/webhooks/{_seg(webhook_id, 'webhook_id')}"
        await self._send("DELETE", path)

    async def ping_webhook(self, webhook_id: str) -> WebhookPing:
        """``POST /webhooks/{webhookId}/ping`` (user-action signed): a test delivery."""
        path = f"/webhooks/{_seg(webhook_id, 'webhook_id')}/ping"
        return await self._call(WebhookPing, "POST", path)

    async def list_webhook_events(
        self,
        webhook_id: str,
        *,
        kind: str | None = None,
        delivery_failed: bool | None = None,
        limit: int | None = None,
        pagination_token: str | None = None,
    ) -> WebhookEventList:
        """``GET /webhooks/{webhookId}/events`` (Dfns keeps events for 31 days)."""
        path = f"/webhooks/{_seg(webhook_id, 'webhook_id')}/events"
        params = {
            "kind": kind,
            "deliveryFailed": None if delivery_failed is None else str(delivery_failed).lower(),
            "limit": limit,
            "paginationToken": pagination_token,
        }
        return await self._call(WebhookEventList, "GET", path, params=params)

    async def get_webhook_event(self, webhook_id: str, event_id: str) -> WebhookEvent:
        """``GET /webhooks/{webhookId}/events/{webhookEventId}``."""
        path = f"/webhooks/{_seg(webhook_id, 'webhook_id')}/events/{_seg(event_id, 'event_id')}"
        return await self._call(WebhookEvent, "GET", path)

    # --- transport ------------------------------------------------------------------------

    async def _call(
        self,
        model: type[_M],
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str | int | None] | None = None,
        context: dict[str, Any] | None = None,
    ) -> _M:
        response = await self._send(method, path, body=body, params=params)
        try:
            return model.model_validate_json(response.content, context=context)
        except ValidationError as exc:
            problems = _describe(exc)
            raise DfnsUnexpectedResponseError(
                f"Dfns {method} {path} returned HTTP {response.status_code} that does not match "
                f"{model.__name__}: {problems}",
                status=response.status_code,
                validation_error=problems,
                method=method,
                path=path,
            ) from None

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str | int | None] | None = None,
    ) -> httpx.Response:
        user_action = needs_user_action(method, path)
        if user_action and self._auth.signer is None:
            raise DfnsUserActionError(
                f"{method} {path} needs a user action, but DfnsClient has no credential signer "
                "(pass signer=CredentialSigner(...))",
                stage="no_signer",
            )
        content: bytes | None = None
        headers: dict[str, str] = {}
        if body is not None:
            # Serialised once: these exact bytes are sent and signed as userActionPayload.
            content = json.dumps(to_wire(body), separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8"
            )
            headers["Content-Type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        request = self._http.build_request(
            method,
            path,
            content=content,
            headers=headers,
            params=query or None,
            extensions={USER_ACTION_EXTENSION: True} if user_action else None,
        )
        try:
            response = await self._http.send(request, auth=self._auth)
        except httpx.TimeoutException as exc:
            raise DfnsTimeoutError(
                f"Dfns {method} {path} timed out ({type(exc).__name__})", method=method, path=path
            ) from exc
        except httpx.RequestError as exc:
            raise DfnsConnectionError(
                f"Dfns {method} {path} failed: {type(exc).__name__}: {exc}",
                method=method,
                path=path,
            ) from exc
        if not response.is_success:
            raise error_from_response(response)
        return response


async def _iterate(fetch: Callable[[str | None], Awaitable[_Page[_T_co]]]) -> AsyncIterator[_T_co]:
    token: str | None = None
    seen: set[str] = set()
    while True:
        page = await fetch(token)
        for item in page.items:
            yield item
        token = page.next_page_token
        if not token:
            return
        if token in seen:
            # A server that hands back a token twice would otherwise loop forever.
            raise DfnsUnexpectedResponseError(
                "Dfns returned a pagination token it had already returned", status=200
            )
        seen.add(token)


def _seg(value: str, name: str) -> str:
    if not value:
        raise DfnsInvalidRequestError(f"{name} must not be empty")
    encoded = quote(value, safe="")
    # "." and ".." would be removed from the path by URL normalisation.
    if encoded in {".", ".."}:
        encoded = encoded.replace(".", "%2E")
    return encoded


def _legacy_body(body: SignatureRequestBody) -> LegacyHashRequest:
    if not isinstance(body, HashRequest):
        raise DfnsInvalidRequestError(
            f"legacy public keys sign only Hash requests, not {body.kind}; "
            "use a key or wallet target"
        )
    if body.taproot_merkle_root is not None:
        raise DfnsInvalidRequestError("legacy public keys cannot apply a taprootMerkleRoot")
    return LegacyHashRequest(hash=body.hash)


def _describe(exc: ValidationError) -> str:
    # Input values are left out on purpose: a response may carry secrets (webhook secret).
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
        for err in errors[:_MAX_REPORTED_ERRORS]
    ]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"... {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)
