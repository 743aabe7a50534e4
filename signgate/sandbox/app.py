"""The sandbox's HTTP surface: every Dfns route it serves, the ``/_local/`` test affordances,
the Dfns error envelope, fault injection and the background tasks.

Request handling for a Dfns path, in order: injected latency, 429 and 5xx (before anything
is read or changed); bearer authentication (401); the organisation's rate limit (429 with
``Retry-After``, :mod:`signgate.sandbox.ratelimit`); ``X-DFNS-NONCE`` when present; the
route's permission (403); on guarded writes (every non-GET except ``/auth/*``) the
``X-DFNS-USERACTION`` token (403/400); body validation (400); the work itself. A
"drop after commit" fault then closes the connection instead of answering.

``/_local/*`` takes no authentication and is never subject to faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signgate.logs import get_logger
from signgate.sandbox.auth import AuthService
from signgate.sandbox.clock import Clock
from signgate.sandbox.config import Behaviour, OrgConfig, SandboxSettings, load_org_config
from signgate.sandbox.console import CONSOLE_PATH, console_router
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.faults import Faults, FaultService, apply_clock_change, clock_wire
from signgate.sandbox.identity import Caller, IdentityService, write_credentials_file
from signgate.sandbox.keys import KeyService
from signgate.sandbox.policies import Actor, PolicyService
from signgate.sandbox.ratelimit import DEFAULT_LIMIT, TRIAL_LIMIT, WINDOW_SECONDS, RateLimiter
from signgate.sandbox.signing import SigningService
from signgate.sandbox.validation import validate
from signgate.sandbox.webhooks import WebhookFaults, WebhookService

_log = get_logger("signgate.sandbox")

LOCAL_PREFIX = "/_local/"
LEGACY_PREFIX = "/public-keys"
_LIMIT_RE = re.compile(r"^\d+$")
_ERROR_NAMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    429: "TooManyRequests",
}

ConnectionAborter = Callable[[Scope], bool]


@dataclass
class Sandbox:
    """Every service of one sandbox process, wired together."""

    settings: SandboxSettings
    org_config: OrgConfig
    behaviour: Behaviour
    db: Database
    clock: Clock
    faults: FaultService
    identity: IdentityService
    auth: AuthService
    keys: KeyService
    webhooks: WebhookService
    policies: PolicyService
    signing: SigningService
    rate_limit: RateLimiter
    base_url: str | None = None
    connection_aborter: ConnectionAborter | None = field(default=None, repr=False)

    def credentials_document(self) -> dict[str, Any]:
        doc = self.identity.credentials_document()
        doc.update(self.keys.credentials_summary())
        doc["dbPath"] = str(self.settings.db_path)
        if self.base_url is not None:
            doc["baseUrl"] = self.base_url
        return doc

    def write_credentials(self) -> None:
        """(Re)write the credentials file (mode 0600)."""
        write_credentials_file(
            self.settings.resolved_credentials_path(), self.credentials_document()
        )

    def apply_webhook_faults(self, faults: Faults) -> None:
        self.webhooks.set_faults(
            WebhookFaults(
                loss_rate=faults.webhookLoss,
                duplicate_rate=faults.webhookDuplicate,
                reorder_window=faults.webhookReorder,
                reorder_hold_seconds=faults.webhookReorderHoldSeconds,
                seed=faults.webhookSeed,
            )
        )

    def seed_policies(self) -> None:
        """Create the org file's policies as the initiator (``@name`` = that user's id)."""
        names = self.identity.user_ids_by_name()
        initiator = actor_of(self.identity.caller_for_user(self.identity.initiator_user_id()))
        for policy in self.org_config.policies:
            self.policies.create_policy(initiator, _substitute_names(policy, names))

    def reset(self) -> None:
        """``/_local/reset``: forget activity, keep the org, identities and keys."""
        with self.db.transaction():
            self.signing.reset()
            self.policies.reset()
            self.webhooks.reset()
            self.auth.reset()
            self.rate_limit.reset()
            faults = self.faults.reset()
            self.seed_policies()
        self.clock.set_scale(1.0)
        self.faults.save_clock(self.clock)
        self.apply_webhook_faults(faults)

    def tick(self) -> int:
        """One round of time-driven work: approval expiry and due transitions."""
        return self.policies.expire_due() + self.signing.process_due()

    def close(self) -> None:
        self.db.close()


def _substitute_names(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@") and value[1:] in names:
        return names[value[1:]]
    if isinstance(value, dict):
        return {k: _substitute_names(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_names(v, names) for v in value]
    return value


def actor_of(caller: Caller) -> Actor:
    """The policy engine's view of a caller."""
    return Actor(
        user_id=caller.user_id,
        is_service_account=caller.is_service_account,
        token_id=caller.token_id,
        permissions=caller.permissions,
    )


def org_rate_limit(org_config: OrgConfig, behaviour: Behaviour) -> int:
    """Calls per minute the org may make: the ``[behaviour]`` (or flag) value, else Dfns's
    figure for the org's kind (1,000; 100 for a trial org)."""
    if behaviour.rate_limit_per_minute is not None:
        return behaviour.rate_limit_per_minute
    return TRIAL_LIMIT if org_config.trial else DEFAULT_LIMIT


def build_sandbox(settings: SandboxSettings, *, http: httpx.AsyncClient | None = None) -> Sandbox:
    """Open (or create) the sandbox's database and wire every service."""
    org_config = load_org_config(settings.config_path)
    behaviour = settings.behaviour(org_config.behaviour)
    db = Database(settings.db_path)
    faults = FaultService(db, defaults=Faults(retryAfterSeconds=behaviour.retry_after_seconds))
    clock = faults.restore_clock()
    if settings.clock_scale is not None:
        clock.set_scale(settings.clock_scale)
        faults.save_clock(clock)
    identity = IdentityService(db, clock)
    auth = AuthService(db, clock, identity, ttl_seconds=behaviour.user_action_ttl_seconds)
    keys = KeyService(db, clock)
    webhook_kwargs: dict[str, Any] = {"delivery_timeout": settings.webhook_delivery_timeout}
    if settings.webhook_retry_schedule is not None:
        webhook_kwargs["retry_schedule"] = settings.webhook_retry_schedule
    webhooks = WebhookService(db, clock, http=http, **webhook_kwargs)
    policies = PolicyService(db, clock, webhooks.publish)
    signing = SigningService(
        db,
        clock,
        keys,
        policies,
        faults,
        webhooks.publish,
        behaviour,
        org_id=lambda: str(identity.org()["id"]),
    )
    sandbox = Sandbox(
        settings=settings,
        org_config=org_config,
        behaviour=behaviour,
        db=db,
        clock=clock,
        faults=faults,
        identity=identity,
        auth=auth,
        keys=keys,
        webhooks=webhooks,
        policies=policies,
        signing=signing,
        rate_limit=RateLimiter(org_rate_limit(org_config, behaviour)),
    )
    if not identity.is_bootstrapped():
        with db.transaction():
            identity.bootstrap(org_config, token_days_valid=behaviour.token_days_valid)
            keys.create_from_config(org_config.keys, org_config.public_keys)
            sandbox.seed_policies()
        _log.info("sandbox.org_created", org_id=identity.org()["id"], config=org_config.source)
    if settings.faults:
        faults.update(dict(settings.faults))
    sandbox.apply_webhook_faults(faults.get())
    sandbox.write_credentials()
    return sandbox


# --- request context ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """An authenticated Dfns call: who, and the parsed JSON body (``None`` if empty)."""

    caller: Caller
    body: Any

    @property
    def actor(self) -> Actor:
        return actor_of(self.caller)


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SandboxError(400, f"body: malformed JSON ({exc})") from None


def _limit(request: Request, behaviour: Behaviour) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return behaviour.list_default_limit
    if not _LIMIT_RE.match(raw):
        raise SandboxError(400, f"query.limit: {raw!r} does not match '^\\d+$'")
    value = int(raw)
    if value < 1:
        raise SandboxError(400, "query.limit: must be at least 1")
    return min(value, behaviour.list_max_limit)


def _optional_limit(request: Request) -> int | None:
    """``limit`` for services that apply their own default and cap (policies, approvals)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return None
    if not _LIMIT_RE.match(raw):
        raise SandboxError(400, f"query.limit: {raw!r} does not match '^\\d+$'")
    return int(raw)


def _page_query(request: Request, behaviour: Behaviour) -> dict[str, Any]:
    """``limit`` and ``pagination_token`` for the key, wallet and signature lists."""
    return {"limit": _limit(request, behaviour), "pagination_token": _pagination_token(request)}


def _pagination_token(request: Request) -> str | None:
    token = request.query_params.get("paginationToken")
    if token is not None and not token:
        raise SandboxError(400, "query.paginationToken: must not be empty")
    return token


def _error_body(path: str, error: SandboxError) -> dict[str, Any]:
    if path.startswith(LEGACY_PREFIX):
        return {
            "serviceName": "signgate-sandbox",
            "message": error.message,
            "causes": [f"{k}: {v}" for k, v in (error.details or {}).items()],
            "shouldTriggerInvestigaton": error.status >= 500,
            "isDfnsError": True,
            "httpStatus": error.status,
            "errorName": _ERROR_NAMES.get(error.status, "InternalServerError"),
        }
    body: dict[str, Any] = {
        "id": str(secrets.randbelow(10**19)),
        "status": error.status,
        "message": error.message,
    }
    if error.details is not None:
        body["details"] = error.details
    if error.code is not None:
        body["code"] = error.code
    return {"error": body}


def error_response(path: str, error: SandboxError) -> JSONResponse:
    return JSONResponse(
        _error_body(path, error), status_code=error.status, headers=error.headers or None
    )


# --- faults (pure ASGI, outermost) ----------------------------------------------------------


class FaultMiddleware:
    """Latency, 429 and 5xx before Dfns routes run; connection drop after a committed write."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(LOCAL_PREFIX) or path == CONSOLE_PATH:
            await self.app(scope, receive, send)
            return
        faults = self.sandbox.faults.get()
        if faults.latencyMs > 0:
            await asyncio.sleep(faults.latencyMs / 1000)
        service = self.sandbox.faults
        if service.roll(faults.rate429):
            error = SandboxError(
                429,
                "Too many requests (sandbox fault injection)",
                headers={"Retry-After": str(faults.retryAfterSeconds)},
            )
            await error_response(path, error)(scope, receive, send)
            return
        if service.roll(faults.errorRate):
            error = SandboxError(
                faults.errorStatus, "unexpected error. Please try your request again."
            )
            await error_response(path, error)(scope, receive, send)
            return
        # Only guarded writes drop: losing a challenge or token exchange tests nothing.
        guarded = scope.get("method", "GET") != "GET" and not path.startswith("/auth/")
        if not guarded or faults.dropAfterCommit <= 0:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 500)
        if status < 400 and service.take("dropAfterCommit", path=path):
            _log.info("sandbox.response_dropped", method=scope.get("method"), path=path)
            await self._drop(scope, send)
            return
        for message in messages:
            await send(message)

    async def _drop(self, scope: Scope, send: Send) -> None:
        aborter = self.sandbox.connection_aborter
        if aborter is not None and aborter(scope):
            # Let the transport report the loss so the server does not answer for us.
            for _ in range(3):
                await asyncio.sleep(0)
            return
        # Without the server's help: promise a body and never send it; the server then
        # closes the connection and the client sees an incomplete response.
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )


# --- the app ------------------------------------------------------------------------------


def create_app(settings: SandboxSettings, *, sandbox: Sandbox | None = None) -> FastAPI:
    """The sandbox ASGI app; ``app.state.sandbox`` holds the wired services."""
    sb = sandbox if sandbox is not None else build_sandbox(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(sb.webhooks.run(), name="sandbox-webhooks"),
            asyncio.create_task(_ticker(sb), name="sandbox-ticker"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="signgate sandbox",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sandbox = sb

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Route not found" if exc.status_code == 404 else str(exc.detail)
        return error_response(request.url.path, SandboxError(exc.status_code, message))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.error("sandbox.unexpected_error", path=request.url.path, exc_info=exc)
        error = SandboxError(500, "unexpected error. Please try your request again.")
        return error_response(request.url.path, error)

    async def call(request: Request, permission: str | None, route_name: str) -> Call:
        caller = sb.auth.authenticate(request.headers.get("authorization"))
        wait = sb.rate_limit.admit(route_name, caller.name)
        if wait is not None:
            limiter = sb.rate_limit
            counted = (
                ""
                if limiter.window_seconds == WINDOW_SECONDS
                else f" ({limiter.limit_per_window} in any {limiter.window_seconds:g} s)"
            )
            raise SandboxError(
                429,
                f"Too many requests: the organisation may make {limiter.limit_per_minute} "
                f"requests per minute{counted}",
                headers={"Retry-After": str(int(wait))},
            )
        nonce = request.headers.get("x-dfns-nonce")
        if nonce is not None:
            sb.auth.check_nonce(nonce)
        if permission is not None and not caller.can(permission):
            raise SandboxError(
                403,
                f"{caller.kind} {caller.user_id} is not authorized to perform operation "
                f"({permission})",
            )
        raw = await request.body()
        if request.method != "GET" and not request.url.path.startswith("/auth/"):
            sb.auth.check_user_action(
                caller,
                request.headers.get("x-dfns-useraction"),
                method=request.method,
                path=request.url.path,
                body=raw,
            )
        return Call(caller=caller, body=_parse_json(raw))

    def route(
        method: str, path: str, permission: str | None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def register(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            route_name = f"{method} {path}"

            async def endpoint(request: Request) -> Response:
                ctx = await call(request, permission, route_name)
                result = await handler(request, ctx, *request.path_params.values())
                if isinstance(result, Response):
                    return result
                return JSONResponse(result)

            # A plain Starlette route: FastAPI's dependency and body machinery has nothing
            # to do for an endpoint that takes the Request, and costs time on every call.
            dfns_route = Route(path, endpoint, methods=[method], name=handler.__name__)
            dfns_route.methods = {method}  # Starlette adds HEAD to GET routes; Dfns has none
            app.router.routes.append(dfns_route)
            return handler

        return register

    def created(request: dict[str, Any]) -> Response:
        # API-NOTES §9.2: Dfns documents 200 + Pending; 202 is here to test clients with it.
        awaiting = request.get("status") == "Pending" and "approvalId" in request
        status = sb.behaviour.pending_response_status if awaiting else 200
        return JSONResponse(request, status_code=status)

    # -- auth ------------------------------------------------------------------------------

    @route("POST", "/auth/action/init", None)
    async def auth_action_init(request: Request, ctx: Call) -> Any:
        validate("auth-action-init.request", ctx.body)
        return sb.auth.init_action(ctx.caller, ctx.body)

    @route("POST", "/auth/action", None)
    async def auth_action(request: Request, ctx: Call) -> Any:
        validate("auth-action.request", ctx.body)
        return sb.auth.complete_action(ctx.caller, ctx.body)

    # -- keys and wallets --------------------------------------------------------------------

    @route("GET", "/keys", "Keys:Read")
    async def list_keys(request: Request, ctx: Call) -> Any:
        return sb.keys.list_keys(**_page_query(request, sb.behaviour))

    @route("GET", "/keys/{keyId}", "Keys:Read")
    async def get_key(request: Request, ctx: Call, key_id: str) -> Any:
        return sb.keys.get_key(key_id)

    @route("GET", "/wallets", "Wallets:Read")
    async def list_wallets(request: Request, ctx: Call) -> Any:
        return sb.keys.list_wallets(**_page_query(request, sb.behaviour))

    @route("GET", "/wallets/{walletId}", "Wallets:Read")
    async def get_wallet(request: Request, ctx: Call, wallet_id: str) -> Any:
        return sb.keys.get_wallet(wallet_id)

    # -- signatures: keys (G3) ---------------------------------------------------------------

    @route("POST", "/keys/{keyId}/signatures", "Keys:Signatures:Create")
    async def create_key_signature(request: Request, ctx: Call, key_id: str) -> Any:
        return created(sb.signing.create_for_key(ctx.caller, ctx.actor, key_id, ctx.body))

    @route("GET", "/keys/{keyId}/signatures", "Keys:Signatures:Read")
    async def list_key_signatures(request: Request, ctx: Call, key_id: str) -> Any:
        return sb.signing.list_for_key(key_id, **_page_query(request, sb.behaviour))

    @route("GET", "/keys/{keyId}/signatures/{signatureId}", "Keys:Signatures:Read")
    async def get_key_signature(
        request: Request,
        ctx: Call,
        key_id: str,
        signature_id: str,
    ) -> Any:
        return sb.signing.get_for_key(key_id, signature_id)

    # -- signatures: wallets (G2) ------------------------------------------------------------

    @route("POST", "/wallets/{walletId}/signatures", "Keys:Signatures:Create")
    async def create_wallet_signature(
        request: Request,
        ctx: Call,
        wallet_id: str,
    ) -> Any:
        return created(sb.signing.create_for_wallet(ctx.caller, ctx.actor, wallet_id, ctx.body))

    @route("GET", "/wallets/{walletId}/signatures", "Keys:Signatures:Read")
    async def list_wallet_signatures(
        request: Request,
        ctx: Call,
        wallet_id: str,
    ) -> Any:
        return sb.signing.list_for_wallet(wallet_id, **_page_query(request, sb.behaviour))

    @route("GET", "/wallets/{walletId}/signatures/{signatureId}", "Keys:Signatures:Read")
    async def get_wallet_signature(
        request: Request,
        ctx: Call,
        wallet_id: str,
        signature_id: str,
    ) -> Any:
        return sb.signing.get_for_wallet(wallet_id, signature_id)

    # -- legacy public keys (G1) ---------------------------------------------------------------

    @route("GET", "/public-keys/{publicKeyId}", "PublicKeys:Read")
    async def get_public_key(request: Request, ctx: Call, public_key_id: str) -> Any:
        return sb.keys.get_public_key(public_key_id, org_id=ctx.caller.org_id)

    @route("POST", "/public-keys/{publicKeyId}/signatures", "Signatures:Create")
    async def create_legacy_signature(
        request: Request,
        ctx: Call,
        public_key_id: str,
    ) -> Any:
        return sb.signing.create_legacy(ctx.caller, public_key_id, ctx.body)

    @route("GET", "/public-keys/{publicKeyId}/signatures", "Signatures:Read")
    async def list_legacy_signatures(request: Request, ctx: Call, public_key_id: str) -> Any:
        return sb.signing.list_legacy(public_key_id, **_page_query(request, sb.behaviour))

    @route("GET", "/public-keys/{publicKeyId}/signatures/{signatureId}", "Signatures:Read")
    async def get_legacy_signature(
        request: Request,
        ctx: Call,
        public_key_id: str,
        signature_id: str,
    ) -> Any:
        return sb.signing.get_legacy(public_key_id, signature_id)

    # -- policies and approvals ------------------------------------------------------------------

    @route("POST", "/v2/policies", "Policies:Create")
    async def create_policy(request: Request, ctx: Call) -> Any:
        return sb.policies.create_policy(ctx.actor, ctx.body)

    @route("GET", "/v2/policies", "Policies:Read")
    async def list_policies(request: Request, ctx: Call) -> Any:
        return sb.policies.list_policies(
            status=request.query_params.get("status"),
            limit=_optional_limit(request),
            pagination_token=_pagination_token(request),
        )

    @route("GET", "/v2/policies/{policyId}", "Policies:Read")
    async def get_policy(request: Request, ctx: Call, policy_id: str) -> Any:
        return sb.policies.get_policy(policy_id)

    @route("PUT", "/v2/policies/{policyId}", "Policies:Update")
    async def update_policy(request: Request, ctx: Call, policy_id: str) -> Any:
        return sb.policies.update_policy(ctx.actor, policy_id, ctx.body)

    @route("DELETE", "/v2/policies/{policyId}", "Policies:Archive")
    async def archive_policy(request: Request, ctx: Call, policy_id: str) -> Any:
        return sb.policies.archive_policy(ctx.actor, policy_id)

    @route("GET", "/v2/policy-approvals", "Policies:Approvals:Read")
    async def list_approvals(request: Request, ctx: Call) -> Any:
        query = request.query_params
        return sb.policies.list_approvals(
            status=query.get("status"),
            initiator_id=query.get("initiatorId"),
            approver_id=query.get("approverId"),
            limit=_optional_limit(request),
            pagination_token=_pagination_token(request),
        )

    @route("GET", "/v2/policy-approvals/{approvalId}", "Policies:Approvals:Read")
    async def get_approval(request: Request, ctx: Call, approval_id: str) -> Any:
        return sb.policies.get_approval(approval_id)

    @route("POST", "/v2/policy-approvals/{approvalId}/decisions", "Policies:Approvals:Approve")
    async def decide(request: Request, ctx: Call, approval_id: str) -> Any:
        return sb.policies.decide(ctx.actor, approval_id, ctx.body)

    # -- webhooks ---------------------------------------------------------------------------------

    @route("POST", "/webhooks", "Webhooks:Create")
    async def create_webhook(request: Request, ctx: Call) -> Any:
        return sb.webhooks.create(ctx.body)

    @route("GET", "/webhooks", "Webhooks:Read")
    async def list_webhooks(request: Request, ctx: Call) -> Any:
        return sb.webhooks.list(
            limit=request.query_params.get("limit"), pagination_token=_pagination_token(request)
        )

    @route("GET", "/webhooks/{webhookId}", "Webhooks:Read")
    async def get_webhook(request: Request, ctx: Call, webhook_id: str) -> Any:
        return sb.webhooks.get(webhook_id)

    @route("PUT", "/webhooks/{webhookId}", "Webhooks:Update")
    async def update_webhook(request: Request, ctx: Call, webhook_id: str) -> Any:
        return sb.webhooks.update(webhook_id, ctx.body)

    @route("DELETE", "/webhooks/{webhookId}", "Webhooks:Delete")
    async def delete_webhook(request: Request, ctx: Call, webhook_id: str) -> Any:
        return sb.webhooks.delete(webhook_id)

    @route("POST", "/webhooks/{webhookId}/ping", "Webhooks:Ping")
    async def ping_webhook(request: Request, ctx: Call, webhook_id: str) -> Any:
        return await sb.webhooks.ping(webhook_id)

    @route("GET", "/webhooks/{webhookId}/events", "Webhooks:Events:Read")
    async def list_webhook_events(request: Request, ctx: Call, webhook_id: str) -> Any:
        query = request.query_params
        return sb.webhooks.list_events(
            webhook_id,
            kind=query.get("kind"),
            delivery_failed=query.get("deliveryFailed"),
            limit=query.get("limit"),
            pagination_token=_pagination_token(request),
        )

    @route("GET", "/webhooks/{webhookId}/events/{webhookEventId}", "Webhooks:Events:Read")
    async def get_webhook_event(
        request: Request,
        ctx: Call,
        webhook_id: str,
        event_id: str,
    ) -> Any:
        return sb.webhooks.get_event(webhook_id, event_id)

    # -- /_local/ ---------------------------------------------------------------------------------

    @app.get("/_local/faults")
    async def get_faults() -> Any:
        return sb.faults.get().wire()

    @app.put("/_local/faults")
    async def put_faults(request: Request) -> Any:
        body = _parse_json(await request.body())
        updated = sb.faults.update(body if body is not None else {})
        sb.apply_webhook_faults(updated)
        return updated.wire()

    @app.get("/_local/clock")
    async def get_clock() -> Any:
        return clock_wire(sb.clock)

    @app.post("/_local/clock")
    async def post_clock(request: Request) -> Any:
        apply_clock_change(sb.clock, _parse_json(await request.body()))
        sb.faults.save_clock(sb.clock)
        sb.webhooks.wake()
        sb.tick()
        return clock_wire(sb.clock)

    @app.get("/_local/rate-limit")
    async def get_rate_limit() -> Any:
        return sb.rate_limit.report()

    @app.put("/_local/rate-limit")
    async def put_rate_limit(request: Request) -> Any:
        body = _parse_json(await request.body())
        if (
            not isinstance(body, dict)
            or "limitPerMinute" not in body
            or not set(body) <= {"limitPerMinute", "windowSeconds"}
        ):
            raise SandboxError(
                400,
                'body: expected {"limitPerMinute": N} (a whole number, 0 turns it off),'
                ' optionally with "windowSeconds": W (1 to 60, default 60)',
            )
        value = body["limitPerMinute"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SandboxError(400, "body.limitPerMinute: must be a whole number >= 0 (0 = off)")
        window = body.get("windowSeconds", WINDOW_SECONDS)
        if isinstance(window, bool) or not isinstance(window, int | float):
            raise SandboxError(400, "body.windowSeconds: must be a number of seconds, 1 to 60")
        try:
            sb.rate_limit.set_limit(value, float(window))
        except ValueError as exc:
            raise SandboxError(400, f"body.{exc}") from exc
        return sb.rate_limit.report()

    @app.post("/_local/reset")
    async def reset() -> Any:
        sb.reset()
        return {"reset": True}

    @app.post("/_local/signatures/{signature_id}/fail")
    async def fail_signature(request: Request, signature_id: str) -> Any:
        body = _parse_json(await request.body()) or {}
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise SandboxError(400, "body.reason: must be a string")
        return sb.signing.force_fail(signature_id, reason)

    @app.get("/_local/webhooks/outbox")
    async def webhook_outbox() -> Any:
        return {"items": sb.webhooks.outbox()}

    app.include_router(console_router(sb))
    return _wrap(app, sb)


def _wrap(app: FastAPI, sandbox: Sandbox) -> FastAPI:
    app.add_middleware(FaultMiddleware, sandbox=sandbox)
    return app


async def _ticker(sandbox: Sandbox) -> None:
    interval = sandbox.settings.tick_seconds
    while True:
        try:
            sandbox.tick()
        except Exception as exc:  # one bad transition must not stop time
            _log.error("sandbox.tick_failed", exc_info=exc)
        await asyncio.sleep(interval)
