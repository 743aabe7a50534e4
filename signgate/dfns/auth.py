"""Dfns authentication: bearer headers and user-action signing as one ``httpx.Auth`` flow.

A write that Dfns gates behind a user action costs three HTTP calls, all made inside
:meth:`DfnsAuth.auth_flow` so that callers (and retries) see one request:

1. ``POST /auth/action/init`` with the exact method, path and body of the write;
2. sign the returned challenge locally with the credential key (:class:`CredentialSigner`);
3. ``POST /auth/action`` with the assertion, which returns a single-use token;

then the write itself is sent with ``X-DFNS-USERACTION``. Nothing is cached: every write gets a
fresh challenge and token.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from signgate.dfns.errors import DfnsUserActionError, error_from_response

__all__ = [
    "USER_ACTION_EXTENSION",
    "CredentialAlgorithm",
    "CredentialSigner",
    "DfnsAuth",
    "b64url",
    "needs_user_action",
]

USER_ACTION_EXTENSION = "dfns_user_action"
"""``request.extensions`` key; a truthy value asks :class:`DfnsAuth` to sign the request."""

CredentialAlgorithm = Literal["Ed25519", "ECDSA-P256", "ECDSA-secp256k1", "RSA"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MIN_RSA_BITS = 2048
# Headers that describe the original body or carry per-request secrets; never copied onto the
# init/complete calls.
_NOT_COPIED = frozenset(
    {"content-length", "content-type", "transfer-encoding", "host", "x-dfns-useraction"}
)


def b64url(data: bytes) -> str:
    """Base64url without padding, the encoding Dfns uses for challenges and assertions."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def needs_user_action(method: str, path: str) -> bool:
    """Whether Dfns requires ``X-DFNS-USERACTION`` for this call.

    Every state-changing call does, except the ``/auth/*`` family (login, the user-action
    endpoints themselves, ...). ``path`` is relative to the API root.
    """
    if method.upper() in _READ_METHODS:
        return False
    return not (path == "/auth" or path.startswith("/auth/"))


class CredentialSigner:
    """Signs user-action challenges with a Dfns Key credential (service account or PAT).

    Accepts an unencrypted PEM private key: Ed25519, ECDSA P-256, ECDSA secp256k1, or RSA
    (2048 bits or more). ``credential_id`` is the ``credId`` Dfns shows next to the token.
    """

    __slots__ = ("_algorithm", "_app_origin", "_credential_id", "_key")

    def __init__(
        self,
        credential_id: str,
        private_key_pem: str | bytes,
        app_origin: str = "https://app.dfns.io",
    ) -> None:
        if not credential_id:
            raise ValueError("credential_id must not be empty")
        data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # Suppress the cause: parser messages are not needed and must not risk key material.
            raise ValueError(
                "credential private key is unreadable: expected an unencrypted PEM private key"
            ) from None
        self._key = key
        self._algorithm = _algorithm_of(key)
        self._credential_id = credential_id
        self._app_origin = app_origin

    @property
    def credential_id(self) -> str:
        """The Dfns ``credId`` this key belongs to."""
        return self._credential_id

    @property
    def algorithm(self) -> CredentialAlgorithm:
        """The key's algorithm family."""
        return self._algorithm

    @property
    def app_origin(self) -> str:
        """The ``origin`` written into clientData."""
        return self._app_origin

    def public_key_pem(self) -> str:
        """The matching SPKI public key, as registered with Dfns."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def sign_challenge(self, challenge: str) -> dict[str, Any]:
        """Return the ``firstFactor`` Key assertion for a user-action challenge."""
        client_data = json.dumps(
            {
                "type": "key.get",
                "challenge": challenge,
                "origin": self._app_origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()
        signature = self._sign(client_data)
        return {
            "kind": "Key",
            "credentialAssertion": {
                "credId": self._credential_id,
                "clientData": b64url(client_data),
                "signature": b64url(signature),
            },
        }

    def _sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise ValueError(f"unsupported credential key type {type(key).__name__}")

    def __repr__(self) -> str:
        return (
            f"CredentialSigner(credential_id={self._credential_id!r}, "
            f"algorithm={self._algorithm!r}, app_origin={self._app_origin!r})"
        )


def _algorithm_of(key: object) -> CredentialAlgorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ECDSA-P256"
        if isinstance(key.curve, ec.SECP256K1):
            return "ECDSA-secp256k1"
        raise ValueError(f"unsupported credential curve {key.curve.name}: use P-256 or secp256k1")
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise ValueError(
                f"credential RSA key is {key.key_size} bits; at least {_MIN_RSA_BITS} required"
            )
        return "RSA"
    raise ValueError(
        f"unsupported credential key type {type(key).__name__}: "
        "use Ed25519, ECDSA P-256, ECDSA secp256k1 or RSA"
    )


class _AllowedCredential(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class _AllowCredentials(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: list[_AllowedCredential] = Field(default_factory=list)


class _Challenge(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    challenge: str = Field(min_length=1)
    challenge_identifier: str = Field(alias="challengeIdentifier", min_length=1)
    allow_credentials: _AllowCredentials = Field(alias="allowCredentials")


class _UserActionToken(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    user_action: str = Field(alias="userAction", min_length=1)


_M = TypeVar("_M", bound=BaseModel)


class DfnsAuth(httpx.Auth):
    """Adds Dfns headers to every request and runs user-action signing where asked.

    Every request gets ``Authorization: Bearer``; with ``app_id`` also ``X-DFNS-APPID``; with
    ``send_nonce`` a fresh ``X-DFNS-NONCE`` (the G2-era headers). A request whose
    ``extensions[USER_ACTION_EXTENSION]`` is truthy is signed with ``signer`` first.
    ``base_url`` is the API root: its path prefix is stripped from ``userActionHttpPath`` and
    the ``/auth/action*`` calls are made under it.
    """

    requires_request_body = True
    requires_response_body = True

    def __init__(
        self,
        auth_token: str | SecretStr,
        *,
        base_url: httpx.URL | str,
        signer: CredentialSigner | None = None,
        app_id: str | None = None,
        send_nonce: bool = False,
    ) -> None:
        token = auth_token if isinstance(auth_token, SecretStr) else SecretStr(auth_token)
        if not token.get_secret_value():
            raise ValueError("auth_token must not be empty")
        self._token = token
        self._base_url = httpx.URL(base_url)
        self._base_path = self._base_url.raw_path.split(b"?", 1)[0].rstrip(b"/")
        self._signer = signer
        self._app_id = app_id
        self._send_nonce = send_nonce

    @property
    def signer(self) -> CredentialSigner | None:
        """The credential used for user actions, if any."""
        return self._signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Authenticate ``request``; sign a user action first when the request asks for it."""
        self._authenticate(request)
        if request.extensions.get(USER_ACTION_EXTENSION):
            token = yield from self._user_action(request)
            request.headers["X-DFNS-USERACTION"] = token
        yield request

    def _authenticate(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        if self._app_id:
            request.headers["X-DFNS-APPID"] = self._app_id
        if self._send_nonce:
            request.headers["X-DFNS-NONCE"] = _nonce()

    def _user_action(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, str]:
        signer = self._signer
        if signer is None:
            raise DfnsUserActionError(
                f"{request.method} {request.url.path} needs a user action, "
                "but no credential signer is configured",
                stage="no_signer",
            )
        try:
            payload = request.content.decode("utf-8")
        except UnicodeDecodeError:
            raise DfnsUserActionError(
                f"{request.method} {request.url.path}: a signed body must be UTF-8 JSON",
                stage="init",
            ) from None
        init_body = {
            "userActionPayload": payload,
            "userActionHttpMethod": request.method,
            "userActionHttpPath": self._action_path(request),
            "userActionServerKind": "Api",
        }
        response = yield self._side_request(request, "/auth/action/init", init_body)
        challenge = _parse(response, _Challenge, stage="init")

        allowed = {c.id for c in challenge.allow_credentials.key}
        if signer.credential_id not in allowed:
            raise DfnsUserActionError(
                f"credential {signer.credential_id!r} is not among the Key credentials Dfns "
                f"allows for this user action ({len(allowed)} allowed)",
                stage="credential",
            )
        try:
            assertion = signer.sign_challenge(challenge.challenge)
        except Exception as exc:
            raise DfnsUserActionError(
                f"signing the user-action challenge failed ({type(exc).__name__})",
                stage="sign",
            ) from exc

        complete_body = {
            "challengeIdentifier": challenge.challenge_identifier,
            "firstFactor": assertion,
        }
        response = yield self._side_request(request, "/auth/action", complete_body)
        return _parse(response, _UserActionToken, stage="complete").user_action

    def _action_path(self, request: httpx.Request) -> str:
        path = request.url.raw_path.split(b"?", 1)[0]
        if self._base_path and path.startswith(self._base_path + b"/"):
            path = path[len(self._base_path) :]
        return path.decode("ascii")

    def _side_request(
        self, original: httpx.Request, path: str, body: dict[str, Any]
    ) -> httpx.Request:
        headers = httpx.Headers(
            [(k, v) for k, v in original.headers.multi_items() if k.lower() not in _NOT_COPIED]
        )
        headers["Content-Type"] = "application/json"
        if self._send_nonce:
            headers["X-DFNS-NONCE"] = _nonce()
        # Keep the caller's timeouts; requests built here bypass the client's defaults.
        extensions = {k: v for k, v in original.extensions.items() if k != USER_ACTION_EXTENSION}
        return httpx.Request(
            "POST",
            original.url.copy_with(raw_path=self._base_path + path.encode("ascii")),
            headers=headers,
            content=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
            extensions=extensions,
        )

    def __repr__(self) -> str:
        return (
            f"DfnsAuth(base_url={str(self._base_url)!r}, signer={self._signer!r}, "
            f"app_id={self._app_id!r}, send_nonce={self._send_nonce!r})"
        )


def _parse(response: httpx.Response, model: type[_M], *, stage: Literal["init", "complete"]) -> _M:
    step = "/auth/action/init" if stage == "init" else "/auth/action"
    if not response.is_success:
        api_error = error_from_response(response)
        raise DfnsUserActionError(
            f"Dfns refused the user-action {stage} step ({step}): HTTP {api_error.status}: "
            f"{api_error.message}",
            stage=stage,
            api_error=api_error,
        ) from api_error
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # Input values are left out: the body may carry a token.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False, include_context=False)
        )
        raise DfnsUserActionError(
            f"unexpected response from {step} (HTTP {response.status_code}): {problems}",
            stage=stage,
        ) from None


def _nonce() -> str:
    date = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = json.dumps({"uuid": str(uuid.uuid4()), "date": date}, separators=(",", ":"))
    return b64url(payload.encode())
