"""Verification of a Dfns webhook delivery, before anything in it is believed.

Dfns signs every delivery with ``X-DFNS-WEBHOOK-SIGNATURE: sha256=<hex>``, an HMAC-SHA256
of the exact body bytes keyed with the webhook's secret, and puts ``timestampSent`` (unix
seconds) inside the signed body. :func:`verify_delivery` checks, in this order:

1. the header is present and exactly in the form Dfns sends: ``sha256=`` (else
   ``wrong-signature-scheme``) and 64 lowercase hex digits (else ``bad-signature``);
2. the HMAC over the **raw** bytes matches one of the accepted secrets (two may be
   accepted at once while a secret is rotated), compared in constant time;
3. the body is UTF-8, nests at most :data:`MAX_JSON_DEPTH` levels (counted on the bytes,
   before the parser runs, so no body can exhaust the parser's recursion), and is a JSON
   object (only now is it parsed) whose strings are all valid Unicode, with an integer
   ``timestampSent``;
4. ``timestampSent`` is less than the tolerance away from now, in either direction.

A body that fails 3 is refused with a 400 and a reason (:class:`Rejection`), never an
exception of the parser's: a signed body is still input.

The body is never re-serialised to retry the HMAC: Dfns's bytes are what was signed, and a
fallback would mean parsing unauthenticated input. Everything here is pure: no I/O, no
clock (``now`` is an argument), so every rejection is unit-testable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import SecretStr

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_JSON_DEPTH",
    "SIGNATURE_HEADER",
    "Rejection",
    "VerifiedDelivery",
    "WebhookRejected",
    "check_timestamp",
    "nesting_depth",
    "parse_body",
    "sign_body",
    "verify_delivery",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-DFNS-WEBHOOK-SIGNATURE"
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
_SCHEME: Final = "sha256"
_DIGEST_FORM: Final = re.compile(r"[0-9a-f]{64}")

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects accepted; Dfns events nest about ten levels."""

_LATEST_TIMESTAMP: Final = 2**53
"""Beyond this ``timestampSent`` is no unix time (and would overflow a float)."""


class Rejection(StrEnum):
    """Why a delivery was refused; the value is what the receiver answers and logs."""

    MISSING_HEADER = "missing-signature-header"
    WRONG_SCHEME = "wrong-signature-scheme"
    BAD_SIGNATURE = "bad-signature"
    MALFORMED_JSON = "malformed-json"
    TOO_DEEP = "nested-too-deep"
    MISSING_TIMESTAMP = "missing-timestamp"
    STALE_TIMESTAMP = "stale-timestamp"
    FUTURE_TIMESTAMP = "future-timestamp"
    BODY_TOO_LARGE = "body-too-large"
    INVALID_EVENT = "invalid-event"
    UNKNOWN_KIND = "unknown-kind"


_STATUS: Final[dict[Rejection, int]] = {
    Rejection.MISSING_HEADER: 401,
    Rejection.WRONG_SCHEME: 401,
    Rejection.BAD_SIGNATURE: 401,
    Rejection.STALE_TIMESTAMP: 401,
    Rejection.FUTURE_TIMESTAMP: 401,
    Rejection.MALFORMED_JSON: 400,
    Rejection.TOO_DEEP: 400,
    Rejection.MISSING_TIMESTAMP: 400,
    Rejection.INVALID_EVENT: 400,
    Rejection.BODY_TOO_LARGE: 413,
    Rejection.UNKNOWN_KIND: 422,
}


class WebhookRejected(Exception):
    """A delivery refused for ``reason``; ``status`` is the HTTP answer, ``message`` says why.

    Messages never quote the header value or a secret.
    """

    def __init__(self, reason: Rejection, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        """401 for anything unauthenticated, 400/413/422 for a signed but unusable body."""
        return _STATUS[self.reason]


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """A body whose signature and timestamp checked out, parsed once.

    ``secret_index`` is the position of the secret that matched in the list given, so a
    receiver can tell when senders still use the secret being retired.
    """

    payload: dict[str, Any]
    secret_index: int


def sign_body(secret: str | SecretStr, body: bytes) -> str:
    """The header value Dfns sends for ``body``: ``sha256=<lowercase hex HMAC-SHA256>``."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return f"{_SCHEME}=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: Sequence[SecretStr]) -> int:
    """Check ``header`` against ``body`` for each secret; return the index that matched.

    Raises :class:`WebhookRejected` (missing header, wrong scheme, bad signature). Every
    secret is tried, match or not, so the time taken does not reveal which one matched.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed to verify deliveries")
    if header is None or not header.strip():
        raise WebhookRejected(Rejection.MISSING_HEADER, f"the {SIGNATURE_HEADER} header is missing")
    # Only the one form Dfns sends: any other spelling is not from Dfns.
    scheme, sep, digest = header.partition("=")
    if not sep or scheme != _SCHEME:
        raise WebhookRejected(
            Rejection.WRONG_SCHEME, f"{SIGNATURE_HEADER} must start with 'sha256='"
        )
    if _DIGEST_FORM.fullmatch(digest) is None:
        raise WebhookRejected(
            Rejection.BAD_SIGNATURE, "the signature must be 64 lowercase hex digits"
        )
    presented = header.encode("ascii")
    matched = -1
    for index, secret in enumerate(secrets):
        expected = sign_body(secret, body).encode("ascii")
        if hmac.compare_digest(expected, presented) and matched < 0:
            matched = index
    if matched < 0:
        raise WebhookRejected(
            Rejection.BAD_SIGNATURE,
            "the signature does not match the body with any configured webhook secret",
        )
    return matched


def check_timestamp(timestamp_sent: int, *, now: float, tolerance: float) -> None:
    """Refuse a ``timestampSent`` at least ``tolerance`` seconds from ``now``.

    The bound is strict (``< tolerance``), as in Dfns's reference verifier. A stale
    timestamp means a replay or a very late delivery; one in the future, a sender clock
    that cannot be trusted.
    """
    skew = now - timestamp_sent
    if skew >= tolerance:
        raise WebhookRejected(
            Rejection.STALE_TIMESTAMP,
            f"timestampSent is {skew:.0f} s old; at most {tolerance:g} s is accepted",
        )
    if -skew >= tolerance:
        raise WebhookRejected(
            Rejection.FUTURE_TIMESTAMP,
            f"timestampSent is {-skew:.0f} s in the future; at most {tolerance:g} s is accepted",
        )


def verify_delivery(
    body: bytes,
    header: str | None,
    secrets: Sequence[SecretStr],
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> VerifiedDelivery:
    """Verify a delivery (signature, then JSON, then timestamp) and return it parsed.

    Raises :class:`WebhookRejected`; see the module docstring for the order of checks.
    """
    index = verify_signature(body, header, secrets)
    payload = parse_body(body)
    sent = payload.get("timestampSent")
    if isinstance(sent, bool) or not isinstance(sent, int) or abs(sent) >= _LATEST_TIMESTAMP:
        raise WebhookRejected(
            Rejection.MISSING_TIMESTAMP, "timestampSent must be an integer (unix seconds)"
        )
    check_timestamp(sent, now=now, tolerance=tolerance)
    return VerifiedDelivery(payload=payload, secret_index=index)


def parse_body(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The body as a JSON object; raises :class:`WebhookRejected` (400) for anything else.

    Refused: bytes that are not UTF-8, nesting deeper than ``max_depth`` (checked before
    the parser runs), invalid JSON (``NaN`` and ``Infinity`` included), a top level that is
    not an object, and strings holding an unpaired surrogate escape (``"\\ud800"``), which
    no UTF-8 consumer downstream could encode.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejected(
            Rejection.MALFORMED_JSON,
            f"the body is not UTF-8, as JSON must be (byte {exc.start} is invalid)",
        ) from None
    if nesting_depth(body, stop_above=max_depth) > max_depth:
        raise WebhookRejected(
            Rejection.TOO_DEEP,
            f"the body nests arrays and objects more than {max_depth} levels deep",
        )
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise WebhookRejected(
            Rejection.MALFORMED_JSON, f"the body is not valid JSON ({_short(exc)})"
        ) from None
    if not isinstance(payload, dict):
        raise WebhookRejected(Rejection.MALFORMED_JSON, "the body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body) is not None and not _encodable(payload):
        raise WebhookRejected(
            Rejection.MALFORMED_JSON,
            "a string in the body holds an unpaired UTF-16 surrogate escape",
        )
    return payload


_TOKENS: Final = re.compile(rb'["\\\[\]{}]')
_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")
_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def nesting_depth(body: bytes, *, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest in ``body``, brackets inside strings not counted.

    A scan of the bytes, linear in their length, that stops as soon as the depth passes
    ``stop_above``; it does not validate JSON (the parser does, once the depth is known to
    be safe).
    """
    depth = deepest = 0
    in_string = False
    escaped = -1
    for token in _TOKENS.finditer(body):
        at = token.start()
        if at == escaped:
            continue
        char = body[at]
        if in_string:
            if char == _BACKSLASH:
                escaped = at + 1
            elif char == _QUOTE:
                in_string = False
        elif char == _QUOTE:
            in_string = True
        elif char in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif char in _CLOSE:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    """Whether every string (and key) in a parsed value encodes to UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(item) for item in value)
    return True


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."
