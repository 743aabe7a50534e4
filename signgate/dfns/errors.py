"""Errors raised by :mod:`signgate.dfns`.

Every exception the client raises on purpose derives from :class:`DfnsError`::

    DfnsError
    ├── DfnsTransportError            the request never produced an HTTP response
    │   ├── DfnsConnectionError       connect/read/write failure, protocol error
    │   └── DfnsTimeoutError          connect/read/write/pool timeout
    ├── DfnsAPIError                  Dfns answered with a non-2xx status
    │   ├── DfnsBadRequestError       400
    │   ├── DfnsUnauthorizedError     401
    │   ├── DfnsForbiddenError        403
    │   ├── DfnsNotFoundError         404
    │   ├── DfnsConflictError         409 (``duplicate_id`` / ``duplicate_external_id``)
    │   ├── DfnsRateLimitError        429 (``retry_after`` seconds, when the server sent one)
    │   └── DfnsServerError           5xx
    ├── DfnsUnexpectedResponseError   a 2xx whose body is not JSON or does not match the model
    ├── DfnsUserActionError           the user-action signing flow could not produce a token
    └── DfnsInvalidRequestError       refused before sending (also a ValueError)

Any other non-2xx status (402, 422, ...) is a plain :class:`DfnsAPIError`.

Dfns has used several error envelopes over time; :func:`error_from_response` reads all of them:

* current: ``{"error": {"id", "status", "message", "details", "code"?}}``
* older:   ``{"error": {"message"}}``
* legacy G1: ``{"serviceName", "message", "causes", "httpStatus", "errorName", ...}``
* bare:    ``{"message", "details"?, "code"?}``
* anything else, including non-JSON bodies, keeps the (truncated) text as the message.

Messages name the method, path and status, never headers; the values of the request's
``Authorization`` and ``X-DFNS-USERACTION`` headers are additionally scrubbed from anything taken
from the response body, so a server that echoes a token cannot leak it through an exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

__all__ = [
    "DfnsAPIError",
    "DfnsBadRequestError",
    "DfnsConflictError",
    "DfnsConnectionError",
    "DfnsError",
    "DfnsForbiddenError",
    "DfnsInvalidRequestError",
    "DfnsNotFoundError",
    "DfnsRateLimitError",
    "DfnsServerError",
    "DfnsTimeoutError",
    "DfnsTransportError",
    "DfnsUnauthorizedError",
    "DfnsUnexpectedResponseError",
    "DfnsUserActionError",
    "UserActionStage",
    "error_from_response",
    "parse_retry_after",
]

_MAX_TEXT = 500
_REDACTED = "[redacted]"
_SECRET_HEADERS = ("authorization", "x-dfns-useraction")


class DfnsError(Exception):
    """Base class of every error raised by the Dfns client."""


class DfnsTransportError(DfnsError):
    """The request did not complete at the HTTP level; it may or may not have reached Dfns."""

    def __init__(self, message: str, *, method: str | None = None, path: str | None = None):
        super().__init__(message)
        self.method = method
        self.path = path


class DfnsConnectionError(DfnsTransportError):
    """Connecting, sending or receiving failed (DNS, refused, reset, protocol error)."""


class DfnsTimeoutError(DfnsTransportError):
    """A connect, read, write or pool timeout elapsed."""


class DfnsAPIError(DfnsError):
    """Dfns answered with a non-2xx status.

    ``message`` is Dfns's own message; ``error_id`` is the id to quote to Dfns support;
    ``code`` is a machine-readable code when the envelope has one; ``details`` is the
    envelope's details object; ``body`` is the parsed JSON body, or the text when not JSON.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_id: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        body: Any = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        where = f"{method} {path} " if method and path else ""
        super().__init__(f"Dfns {where}returned HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.error_id = error_id
        self.code = code
        self.details = details
        self.body = body
        self.method = method
        self.path = path


class DfnsBadRequestError(DfnsAPIError):
    """400: the request was invalid (validation, a reused user-action token, ...)."""


class DfnsUnauthorizedError(DfnsAPIError):
    """401: the bearer token is missing, malformed, expired, or for another region."""


class DfnsForbiddenError(DfnsAPIError):
    """403: a missing permission, or a missing/invalid user-action signature."""


class DfnsNotFoundError(DfnsAPIError):
    """404: unknown id, or an id that belongs to another organisation."""


class DfnsConflictError(DfnsAPIError):
    """409: typically an ``externalId`` reused with a different body.

    ``duplicate_id`` and ``duplicate_external_id`` come from ``details.duplicate`` and name the
    entity that already holds the ``externalId``.
    """

    @property
    def duplicate_id(self) -> str | None:
        """Id of the existing entity, when Dfns named it."""
        return _duplicate_field(self.details, "id")

    @property
    def duplicate_external_id(self) -> str | None:
        """``externalId`` of the existing entity, when Dfns named it."""
        return _duplicate_field(self.details, "externalId")


class DfnsRateLimitError(DfnsAPIError):
    """429: the organisation's request budget is spent.

    ``retry_after`` is the server's ``Retry-After`` in seconds (from a delay or an HTTP-date),
    or ``None`` when the header was absent or unreadable.
    """

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class DfnsServerError(DfnsAPIError):
    """5xx: Dfns or a proxy in front of it failed; safe to retry with the same ``externalId``."""


class DfnsUnexpectedResponseError(DfnsError):
    """A 2xx response whose body is not JSON or does not match the expected model.

    ``validation_error`` lists the mismatches (locations and reasons, never input values).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        validation_error: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.validation_error = validation_error
        self.method = method
        self.path = path


UserActionStage = Literal["no_signer", "init", "credential", "sign", "complete"]


class DfnsUserActionError(DfnsError):
    """The user-action signing flow failed, so the write was not sent.

    ``stage`` says where: ``no_signer`` (no credential configured), ``init`` (the challenge
    request was refused or unreadable), ``credential`` (our credential is not in
    ``allowCredentials``), ``sign`` (local signing failed) or ``complete`` (the assertion was
    refused). ``api_error`` is the Dfns error behind it, if any, and is also ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: UserActionStage,
        api_error: DfnsAPIError | None = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.api_error = api_error

    @property
    def status(self) -> int | None:
        """HTTP status of the underlying Dfns error, if the server refused a step."""
        return self.api_error.status if self.api_error is not None else None


class DfnsInvalidRequestError(DfnsError, ValueError):
    """The client refused to send a request that cannot be valid.

    For example an empty path id, or a body the target's API cannot carry (a non-Hash body for
    a legacy public key). Nothing was sent; retrying cannot help.
    """


_STATUS_CLASSES: dict[int, type[DfnsAPIError]] = {
    400: DfnsBadRequestError,
    401: DfnsUnauthorizedError,
    403: DfnsForbiddenError,
    404: DfnsNotFoundError,
    409: DfnsConflictError,
    429: DfnsRateLimitError,
}


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP-date; ``None`` if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def error_from_response(response: httpx.Response) -> DfnsAPIError:
    """Build the :class:`DfnsAPIError` subclass matching a non-2xx response.

    The body must already be read (``await response.aread()``).
    """
    status = response.status_code
    secrets = _request_secrets(response)
    text = _scrub(response.text, secrets)
    method, path = _request_line(response)

    body: Any
    try:
        body = _scrub(json.loads(text), secrets) if text.strip() else None
    except ValueError:
        body = text

    message, error_id, code, details = _read_envelope(body)
    if message is None:
        message = _fallback_message(body, text, response)

    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = DfnsServerError if 500 <= status <= 599 else DfnsAPIError
    kwargs: dict[str, Any] = {
        "error_id": error_id,
        "code": code,
        "details": details,
        "body": body,
        "method": method,
        "path": path,
    }
    if cls is DfnsRateLimitError:
        kwargs["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
    return cls(status, message, **kwargs)


def _read_envelope(
    body: Any,
) -> tuple[str | None, str | None, str | None, dict[str, Any] | None]:
    if not isinstance(body, Mapping):
        return None, None, None, None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        return (
            _opt_str(inner.get("message")),
            _opt_str(inner.get("id")),
            _opt_str(inner.get("code")) or _opt_str(inner.get("errorName")),
            _opt_dict(inner.get("details")),
        )
    message = _opt_str(body.get("message"))
    details = _opt_dict(body.get("details"))
    code = _opt_str(body.get("code"))
    if "serviceName" in body or "errorName" in body or "causes" in body:
        # Legacy G1 envelope: fold its extra fields into details so nothing is lost.
        code = code or _opt_str(body.get("errorName"))
        legacy = {k: body[k] for k in ("serviceName", "causes", "httpStatus") if k in body}
        details = {**legacy, **(details or {})} or None
        causes = body.get("causes")
        if message is None and isinstance(causes, list) and causes:
            message = "; ".join(str(c) for c in causes)
    elif code is None and isinstance(inner, str):
        # An older SDK generation used a top-level string ``error`` as the code.
        code = inner
        if message is None:
            message = inner
    return message, _opt_str(body.get("id")), code, details


def _fallback_message(body: Any, text: str, response: httpx.Response) -> str:
    if isinstance(body, str) and body.strip():
        snippet = body.strip()
        return snippet if len(snippet) <= _MAX_TEXT else snippet[:_MAX_TEXT] + "..."
    if body is not None and not isinstance(body, str):
        dumped = json.dumps(body, ensure_ascii=False)
        return dumped if len(dumped) <= _MAX_TEXT else dumped[:_MAX_TEXT] + "..."
    return response.reason_phrase or f"HTTP {response.status_code}"


def _request_line(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        request = response.request
    except RuntimeError:
        return None, None
    return request.method, request.url.path


def _request_secrets(response: httpx.Response) -> tuple[str, ...]:
    try:
        request = response.request
    except RuntimeError:
        return ()
    found: list[str] = []
    for name in _SECRET_HEADERS:
        value = request.headers.get(name)
        if not value:
            continue
        found.append(value)
        scheme, _, credential = value.partition(" ")
        if scheme.lower() == "bearer" and credential:
            found.append(credential)
    # Longest first so a token is never half-replaced by a shorter overlapping one.
    return tuple(sorted({s for s in found if len(s) >= 8}, key=len, reverse=True))


def _scrub(value: Any, secrets: Iterable[str]) -> Any:
    secrets = tuple(secrets)
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, _REDACTED)
        return value
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    return value


def _duplicate_field(details: Mapping[str, Any] | None, key: str) -> str | None:
    if not details:
        return None
    duplicate = details.get("duplicate")
    if not isinstance(duplicate, Mapping):
        return None
    return _opt_str(duplicate.get(key))


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _opt_dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None
