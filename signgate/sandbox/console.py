"""The approval console: a web page where a person approves or denies pending approvals.

``GET /console`` serves one self-contained page (``console.html``: inline CSS and JS, no
external assets, nothing from the network). It polls ``GET /_local/console/approvals``
and renders every Pending approval with its request decoded (key, kind, hash or message,
EIP-712 domain and fields, EVM transaction recipient and value), the initiator, the
policies, each group's approvals against its quorum and the expiry, plus the approvals
resolved most recently. An approver is picked from ``GET /_local/console/users``.

``POST /_local/console/approvals/{approvalId}/decisions`` with ``{"user", "value",
"reason"?}`` decides *as that user*, through the same code path as the Dfns API: the
user's bearer token is authenticated, the ``Policies:Approvals:Approve`` permission is
checked, a User Action Signing challenge is minted for
``POST /v2/policy-approvals/{id}/decisions``, an assertion is signed with the user's
credential key and verified, the user-action token is checked against the request, and
only then does :meth:`PolicyService.decide` apply the approval rules (eligibility, one
decision per user, initiator may only deny, ...). Refusals come back in the Dfns error
envelope with user ids replaced by user names.

This is a local development tool: it acts for ANY user of the org, because the sandbox
keeps every credential key. It must never be reachable from another machine. The sandbox
binds 127.0.0.1 by default, and the console answers only requests whose ``Host`` is a
loopback name or address; decisions additionally need the ``X-Signgate-Console`` header
and a same-origin ``Origin`` (when sent), so a web page on another origin cannot post one.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from signgate import crypto
from signgate.logs import get_logger
from signgate.sandbox.clock import isoformat
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.identity import b64url, permission_allows
from signgate.sandbox.policies import Actor, PolicyService
from signgate.sandbox.validation import validate

if TYPE_CHECKING:
    from signgate.sandbox.app import Sandbox

_log = get_logger("signgate.sandbox.console")

CONSOLE_PATH = "/console"
API_PREFIX = "/_local/console"
CONSOLE_HEADER = "X-Signgate-Console"
DECIDE_PERMISSION = "Policies:Approvals:Approve"
PENDING_SHOWN = 100
RESOLVED_SHOWN = 10
# Long hex strings and nested values are cut for display; the full value stays in the API.
_HEX_SHOWN = 130
_VALUE_SHOWN = 160
_EIP712_FIELDS_SHOWN = 6
_TX_TYPES = {0: "legacy", 1: "EIP-2930", 2: "EIP-1559", 4: "EIP-7702"}
_LOOPBACK_NAMES = ("localhost",)


def console_router(sandbox: Sandbox) -> APIRouter:
    """The console's page and JSON endpoints, bound to one sandbox."""
    router = APIRouter()
    directory = _Directory(sandbox)

    @router.get(CONSOLE_PATH, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        _check_loopback(request)
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(
            _page_template().replace("{{nonce}}", nonce),
            headers={
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; "
                    f"style-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self' data:; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                ),
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    @router.get(f"{API_PREFIX}/users", include_in_schema=False)
    async def users(request: Request) -> JSONResponse:
        _check_loopback(request)
        org = sandbox.identity.org()
        return _json({"org": {"id": org["id"], "name": org["name"]}, "users": directory.users()})

    @router.get(f"{API_PREFIX}/approvals", include_in_schema=False)
    async def approvals(request: Request) -> JSONResponse:
        _check_loopback(request)
        return _json(approvals_view(sandbox, directory))

    @router.post(f"{API_PREFIX}/approvals/{{approval_id}}/decisions", include_in_schema=False)
    async def decide(request: Request, approval_id: str) -> JSONResponse:
        _check_loopback(request)
        _check_same_origin(request)
        user, value, reason = _decision_input(await request.body())
        origin = str(request.base_url).rstrip("/")
        try:
            approval = decide_as(sandbox, directory, user, approval_id, value, reason, origin)
        except SandboxError as exc:
            raise SandboxError(
                exc.status,
                directory.humanize(exc.message),
                details=exc.details,
                code=exc.code,
                headers=exc.headers,
            ) from None
        view = ApprovalViews(sandbox, directory).approval(approval)
        return _json({"user": directory.resolve(user).name, **view})

    return router


def _json(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@functools.cache
def _page_template() -> str:
    return resources.files("signgate.sandbox").joinpath("console.html").read_text("utf-8")


# --- who may call --------------------------------------------------------------------------


def _is_loopback_host(host: str) -> bool:
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_loopback(request: Request) -> None:
    # Guards against DNS rebinding too: a foreign page reaching us under its own host name
    # sends that name in Host.
    host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    if not _is_loopback_host(host):
        raise SandboxError(403, "the approval console answers only on a loopback address")


def _check_same_origin(request: Request) -> None:
    if request.headers.get(CONSOLE_HEADER.lower()) != "1":
        raise SandboxError(403, f"console decisions need the {CONSOLE_HEADER}: 1 header")
    origin = request.headers.get("origin")
    if origin is None:
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc.lower() != host.lower():
        raise SandboxError(403, "console decisions must come from the console's own origin")


def _decision_input(raw: bytes) -> tuple[str, str, str | None]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise SandboxError(400, f"body: malformed JSON ({exc})") from None
    if not isinstance(body, dict):
        raise SandboxError(400, 'body: expected {"user", "value", "reason"?}')
    unknown = sorted(set(body) - {"user", "value", "reason"})
    if unknown:
        raise SandboxError(400, f"body.{unknown[0]}: unknown field")
    user, value, reason = body.get("user"), body.get("value"), body.get("reason")
    if not isinstance(user, str) or not user:
        raise SandboxError(400, "body.user: a user name or id is required")
    if value not in ("Approved", "Denied"):
        raise SandboxError(400, "body.value: must be 'Approved' or 'Denied'")
    if reason is not None and not isinstance(reason, str):
        raise SandboxError(400, "body.reason: must be a string")
    return user, str(value), reason or None


# --- the org's users ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleUser:
    """A user or service account as the console shows it (no secrets)."""

    user_id: str
    name: str
    username: str
    is_service_account: bool
    is_initiator: bool
    can_decide: bool

    def wire(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "name": self.name,
            "username": self.username,
            "kind": "ServiceAccount" if self.is_service_account else "User",
            "isInitiator": self.is_initiator,
            "canDecide": self.can_decide,
        }


class _Directory:
    """The org's identities by id and name; they never change after the org is created."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._users: list[ConsoleUser] | None = None

    def all(self) -> list[ConsoleUser]:
        if self._users is None:
            document = self._sandbox.identity.credentials_document()
            initiator = self._sandbox.identity.initiator_user_id()
            found = [
                ConsoleUser(
                    user_id=str(raw["userId"]),
                    name=name,
                    username=str(raw["username"]),
                    is_service_account=bool(raw["isServiceAccount"]),
                    is_initiator=raw["userId"] == initiator,
                    can_decide=permission_allows(frozenset(raw["permissions"]), DECIDE_PERMISSION),
                )
                for name, raw in document["identities"].items()
            ]
            # People first: they are who the console is for; the initiator may only deny.
            self._users = sorted(found, key=lambda u: (u.is_service_account, u.name))
        return list(self._users)

    def users(self) -> list[dict[str, Any]]:
        return [user.wire() for user in self.all()]

    def by_id(self, user_id: str) -> ConsoleUser:
        for user in self.all():
            if user.user_id == user_id:
                return user
        return ConsoleUser(user_id, user_id, user_id, False, False, False)

    def name(self, user_id: str) -> str:
        return self.by_id(user_id).name

    def resolve(self, name_or_id: str) -> ConsoleUser:
        for user in self.all():
            if name_or_id in (user.name, user.user_id):
                return user
        raise SandboxError(400, f"body.user: {name_or_id!r} is not a user of this org")

    def humanize(self, message: str) -> str:
        """``user us-… has already decided`` -> ``user bob has already decided``."""
        for user in self.all():
            message = message.replace(user.user_id, user.name)
        return message


# --- deciding as a user --------------------------------------------------------------------


def decide_as(
    sandbox: Sandbox,
    directory: _Directory,
    user: str,
    approval_id: str,
    value: str,
    reason: str | None,
    origin: str,
) -> dict[str, Any]:
    """Decide on ``approval_id`` as ``user`` (name or id) through User Action Signing.

    Every check a ``POST /v2/policy-approvals/{id}/decisions`` over HTTP meets is run here
    by the same services, in the same order: bearer token, permission, challenge and
    signed assertion, user-action token bound to method, path and payload, then the
    policy engine's decision rules.
    """
    person = directory.resolve(user)
    identity = sandbox.identity.credentials_document()["identities"][person.name]
    caller = sandbox.auth.authenticate(f"Bearer {identity['authToken']}")
    if not caller.can(DECIDE_PERMISSION):
        raise SandboxError(
            403,
            f"{caller.kind} {caller.user_id} is not authorized to perform operation "
            f"({DECIDE_PERMISSION})",
        )
    body: dict[str, Any] = {"value": value}
    if reason is not None:
        body["reason"] = reason
    payload = json.dumps(body, separators=(",", ":"))
    path = f"/v2/policy-approvals/{approval_id}/decisions"
    init = {
        "userActionPayload": payload,
        "userActionHttpMethod": "POST",
        "userActionHttpPath": path,
        "userActionServerKind": "Api",
    }
    validate("auth-action-init.request", init)
    challenge = sandbox.auth.init_action(caller, init)
    client_data = json.dumps(
        {
            "type": "key.get",
            "challenge": challenge["challenge"],
            "origin": origin,
            "crossOrigin": False,
        },
        separators=(",", ":"),
    ).encode()
    signature = sign_client_data(str(identity["privateKeyPem"]), client_data)
    complete = {
        "challengeIdentifier": challenge["challengeIdentifier"],
        "firstFactor": {
            "kind": "Key",
            "credentialAssertion": {
                "credId": identity["credId"],
                "clientData": b64url(client_data),
                "signature": b64url(signature),
            },
        },
    }
    validate("auth-action.request", complete)
    token = sandbox.auth.complete_action(caller, complete)["userAction"]
    sandbox.auth.check_user_action(
        caller, str(token), method="POST", path=path, body=payload.encode()
    )
    actor = Actor(
        user_id=caller.user_id,
        is_service_account=caller.is_service_account,
        token_id=caller.token_id,
        permissions=caller.permissions,
    )
    approval = sandbox.policies.decide(actor, approval_id, body)
    _log.info(
        "sandbox.console.decided",
        approval_id=approval_id,
        user=person.name,
        value=value,
        status=approval["status"],
    )
    return approval


def sign_client_data(private_key_pem: str, client_data: bytes) -> bytes:
    """A Key credential's signature over the clientData bytes (SHA-256 where it applies)."""
    key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(client_data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(client_data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(client_data, padding.PKCS1v15(), hashes.SHA256())
    raise SandboxError(500, f"unsupported credential key type {type(key).__name__}")


# --- what the page shows ---------------------------------------------------------------------


def approvals_view(sandbox: Sandbox, directory: _Directory) -> dict[str, Any]:
    """``GET /_local/console/approvals``: Pending approvals and the latest resolved ones."""
    policies = sandbox.policies
    pending: list[dict[str, Any]] = []
    token: str | None = None
    truncated = False
    while len(pending) < PENDING_SHOWN:
        page = policies.list_approvals(status="Pending", limit=100, pagination_token=token)
        pending.extend(page["items"])
        token = page.get("nextPageToken")
        if token is None:
            break
    if len(pending) > PENDING_SHOWN or token is not None:
        truncated = True
        pending = pending[:PENDING_SHOWN]
    resolved: list[dict[str, Any]] = []
    for status in ("Approved", "Denied", "Expired"):
        resolved.extend(policies.list_approvals(status=status, limit=RESOLVED_SHOWN)["items"])
    resolved.sort(key=lambda a: str(a.get("dateResolved") or a["dateUpdated"]), reverse=True)
    views = ApprovalViews(sandbox, directory)
    return {
        "now": isoformat(sandbox.clock.now()),
        "pending": [views.approval(a) for a in pending],
        "pendingTruncated": truncated,
        "resolved": [views.approval(a) for a in resolved[:RESOLVED_SHOWN]],
    }


class ApprovalViews:
    """Turns stored approvals into what the page renders; caches lookups for one answer."""

    def __init__(self, sandbox: Sandbox, directory: _Directory) -> None:
        self._sandbox = sandbox
        self._directory = directory
        self._now_ts = sandbox.clock.now_ts()
        self._keys: dict[str, dict[str, Any] | None] = {}
        self._wallets: dict[str, dict[str, Any] | None] = {}
        self._policy_names: dict[str, str | None] = {}

    def approval(self, approval: Mapping[str, Any]) -> dict[str, Any]:
        """One approval: request decoded, initiator, policies, group progress, expiry."""
        directory = self._directory
        initiator_id = str(approval["initiatorId"])
        groups = self._groups(str(approval["id"]))
        policy_ids = [
            str(e["policyId"]) for e in approval.get("policyEvaluations") or [] if e["triggered"]
        ]
        for group in groups:
            if group.get("policyId") and group["policyId"] not in policy_ids:
                policy_ids.append(str(group["policyId"]))
        expiration = approval.get("expirationDate")
        return {
            "id": approval["id"],
            "status": approval["status"],
            "dateCreated": approval["dateCreated"],
            "dateResolved": approval.get("dateResolved"),
            "expirationDate": expiration,
            "expiresInSeconds": (
                round(_timestamp(str(expiration)) - self._now_ts, 1) if expiration else None
            ),
            "ageSeconds": round(self._now_ts - _timestamp(str(approval["dateCreated"])), 1),
            "initiator": {"userId": initiator_id, "name": directory.name(initiator_id)},
            "request": self._request(approval["activity"].get("signatureRequest") or {}),
            "policies": [{"id": pid, "name": self._policy_name(pid)} for pid in policy_ids],
            "groups": [self._group(group, approval) for group in groups],
            "decisions": [
                {
                    "userId": d["userId"],
                    "name": directory.name(str(d["userId"])),
                    "value": d["value"],
                    "reason": d.get("reason"),
                    "date": d["date"],
                }
                for d in approval.get("decisions") or []
            ],
        }

    def _groups(self, approval_id: str) -> list[dict[str, Any]]:
        return self._sandbox.policies.approval_groups(approval_id)

    def _group(self, group: Mapping[str, Any], approval: Mapping[str, Any]) -> dict[str, Any]:
        directory = self._directory
        initiator_id = str(approval["initiatorId"])
        counted = [
            directory.name(str(d["userId"]))
            for d in approval.get("decisions") or []
            if d["value"] == "Approved"
            and PolicyService.counts_toward(
                group,
                str(d["userId"]),
                is_service_account=directory.by_id(str(d["userId"])).is_service_account,
                initiator_id=initiator_id,
            )
        ]
        listed = ((group.get("approvers") or {}).get("userId") or {}).get("in")
        return {
            "name": group.get("name"),
            "policyId": group.get("policyId"),
            "policyName": self._policy_name(str(group.get("policyId") or "")),
            "quorum": int(group["quorum"]),
            "approvals": len(counted),
            "approvedBy": counted,
            "approvers": [directory.name(str(u)) for u in listed] if listed else None,
            "initiatorCanApprove": bool(group.get("initiatorCanApprove")),
        }

    def _policy_name(self, policy_id: str) -> str | None:
        if not policy_id:
            return None
        if policy_id not in self._policy_names:
            try:
                self._policy_names[policy_id] = str(
                    self._sandbox.policies.get_policy(policy_id)["name"]
                )
            except SandboxError:
                self._policy_names[policy_id] = None
        return self._policy_names[policy_id]

    def _key(self, key_id: str) -> dict[str, Any] | None:
        if key_id not in self._keys:
            try:
                self._keys[key_id] = self._sandbox.keys.get_key(key_id)
            except SandboxError:
                self._keys[key_id] = None
        return self._keys[key_id]

    def _wallet(self, wallet_id: str) -> dict[str, Any] | None:
        if wallet_id not in self._wallets:
            try:
                self._wallets[wallet_id] = self._sandbox.keys.get_wallet(wallet_id)
            except SandboxError:
                self._wallets[wallet_id] = None
        return self._wallets[wallet_id]

    def _request(self, wire: Mapping[str, Any]) -> dict[str, Any]:
        body = wire.get("requestBody") or {}
        key_id = str(wire.get("keyId") or "")
        key = self._key(key_id) if key_id else None
        wallet_id = wire.get("walletId")
        wallet = self._wallet(str(wallet_id)) if wallet_id else None
        return {
            "signatureId": wire.get("id"),
            "status": wire.get("status"),
            "kind": body.get("kind"),
            "keyId": key_id or None,
            "keyName": key.get("name") if key else None,
            "scheme": f"{key['scheme']} {key['curve']}" if key else None,
            "walletId": wallet_id,
            "walletName": wallet.get("name") if wallet else None,
            "walletAddress": wallet.get("address") if wallet else None,
            "network": wire.get("network"),
            "externalId": wire.get("externalId"),
            "requester": (wire.get("requester") or {}).get("userId"),
            "summary": [{"label": k, "value": v} for k, v in summarize_body(body)],
        }


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# --- decoding a signature request body -----------------------------------------------------


def summarize_body(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Label/value rows that tell a person what a signature request asks to sign."""
    kind = body.get("kind")
    if kind == "Hash":
        rows = [("Hash", str(body.get("hash")))]
        if "taprootMerkleRoot" in body:
            root = str(body["taprootMerkleRoot"])
            rows.append(("Taproot merkle root", root or "(none: key-path spend, BIP-86)"))
        return rows
    if kind == "Message":
        return _message_rows(str(body.get("message", "")))
    if kind == "Eip712":
        return _eip712_rows(body)
    if kind == "Transaction":
        return _transaction_rows(body.get("transaction"))
    return [("Body", _short(json.dumps(body, separators=(",", ":"), sort_keys=True)))]


def _short(text: str, limit: int = _VALUE_SHOWN) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _hex_bytes(value: str) -> bytes | None:
    digits = value[2:] if value[:2].lower() == "0x" else value
    try:
        return bytes.fromhex(digits)
    except ValueError:
        return None


def _short_hex(value: str) -> str:
    if len(value) <= _HEX_SHOWN:
        return value
    raw = _hex_bytes(value)
    size = f" ({len(raw)} bytes)" if raw is not None else ""
    return f"{value[:_HEX_SHOWN]}…{size}"


def _message_rows(message: str) -> list[tuple[str, str]]:
    rows = [("Message (hex)", _short_hex(message))]
    raw = _hex_bytes(message)
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable():
            rows.append(("Message (text)", _short(text)))
    return rows


def _display(value: Any) -> str:
    if isinstance(value, str):
        return _short(value)
    return _short(json.dumps(value, separators=(",", ":"), sort_keys=True))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _primary_type(types: Mapping[str, Any]) -> str | None:
    referenced = {
        str(field.get("type", "")).split("[", 1)[0]
        for fields in types.values()
        if isinstance(fields, list)
        for field in fields
        if isinstance(field, dict)
    }
    candidates = [t for t in types if t != "EIP712Domain" and t not in referenced]
    return candidates[0] if len(candidates) == 1 else None


def _eip712_rows(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    domain, types, message = (_mapping(body.get(k)) for k in ("domain", "types", "message"))
    rows: list[tuple[str, str]] = []
    for field, label in (
        ("name", "Domain name"),
        ("version", "Domain version"),
        ("chainId", "Domain chain id"),
        ("verifyingContract", "Verifying contract"),
    ):
        if field in domain:
            rows.append((label, _display(domain[field])))
    primary = body.get("primaryType") or _primary_type(types)
    rows.append(("Primary type", str(primary) if primary else "(cannot tell)"))
    fields = list(message.items())
    for name, value in fields[:_EIP712_FIELDS_SHOWN]:
        rows.append((f"message.{name}", _display(value)))
    if len(fields) > _EIP712_FIELDS_SHOWN:
        rows.append(("message", f"… {len(fields) - _EIP712_FIELDS_SHOWN} more fields"))
    try:
        typed = {k: body[k] for k in ("types", "domain", "message", "primaryType") if k in body}
        rows.append(("EIP-712 digest", "0x" + crypto.eip712_hash(typed).hex()))
    except (ValueError, TypeError, KeyError) as exc:
        rows.append(("EIP-712 digest", _short(f"cannot compute: {exc}")))
    return rows


def _ether(wei: int) -> str:
    text = f"{Decimal(wei).scaleb(-18).normalize():f}"
    return f"{text} ETH"


def _transaction_rows(transaction: Any) -> list[tuple[str, str]]:
    raw = _hex_bytes(transaction) if isinstance(transaction, str) else None
    if raw is None:
        return [("Transaction", _display(transaction))]
    try:
        summary = crypto.evm_transaction_summary(raw)
    except (ValueError, TypeError) as exc:
        return [
            ("Transaction", _short_hex(str(transaction))),
            ("Decoded", _short(f"not an unsigned EVM transaction: {exc}")),
        ]
    data = summary["data"]
    data_bytes = (len(data) - 2) // 2
    return [
        ("Transaction type", _TX_TYPES.get(summary["type"], str(summary["type"]))),
        ("Chain id", str(summary["chain_id"]) if summary["chain_id"] is not None else "(none)"),
        ("To", summary["to"] or "(contract creation)"),
        ("Value", f"{summary['value']} wei ({_ether(summary['value'])})"),
        ("Nonce", str(summary["nonce"])),
        ("Gas limit", str(summary["gas_limit"])),
        ("Data", "(none)" if data_bytes == 0 else f"{data_bytes} bytes: {_short_hex(data)}"),
    ]
