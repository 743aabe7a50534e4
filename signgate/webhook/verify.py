"""Verification of a Dfns webhook delivery, before anything in it is believed.

Dfns signs every delivery with ``X-DFNS-WEBHOOK-SIGNATURE: sha256=<hex>``, an HMAC-SHA256
of the exact body bytes keyed with the webhook's secret, and puts ``timestampSent`` (unix
seconds) inside the signed body. :func:`verify_delivery` checks, in this order:

1. the header is present and uses the ``sha256`` scheme;
2. the HMAC over the **raw** bytes matches one of the accepted secrets (two may be
   accepted at once while a secret is rotated), compared in constant time;
3. the body is a JSON object (only now is it parsed) with an integer ``timestampSent``;
4. ``timestampSent`` is less than the tolerance away from now, in either direction.

The body is never re-serialised to retry the HMAC: Dfns's bytes are what was signed, and a
fallback would mean parsing unauthenticated input. Everything here is pure: no I/O, no
clock (``now`` is an argument), so every rejection is unit-testable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import SecretStr

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "Rejection",
    "VerifiedDelivery",
    "WebhookRejected",
    "check_timestamp",
    "sign_body",
    "verify_delivery",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-DFNS-WEBHOOK-SIGNATURE"
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
_SCHEME: Final = "sha256"


class Rejection(StrEnum):
    """Why a delivery was refused; the value is what the receiver answers and logs."""

    MISSING_HEADER = "missing-signature-header"
    WRONG_SCHEME = "wrong-signature-scheme"
    BAD_SIGNATURE = "bad-signature"
    MALFORMED_JSON = "malformed-json"
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
    scheme, sep, digest = header.strip().partition("=")
    if not sep or scheme.strip().lower() != _SCHEME:
        raise WebhookRejected(Rejection.WRONG_SCHEME, f"{SIGNATURE_HEADER} must be 'sha256=<hex>'")
    # Dfns sends lowercase hex; accepting either case costs nothing in security.
    presented = f"{_SCHEME}={digest.strip().lower()}".encode("utf-8", "surrogatepass")
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
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookRejected(
            Rejection.MALFORMED_JSON, f"the body is not valid JSON ({_short(exc)})"
        ) from None
    if not isinstance(payload, dict):
        raise WebhookRejected(Rejection.MALFORMED_JSON, "the body must be a JSON object")
    sent = payload.get("timestampSent")
    if isinstance(sent, bool) or not isinstance(sent, int):
        raise WebhookRejected(
            Rejection.MISSING_TIMESTAMP, "timestampSent must be an integer (unix seconds)"
        )
    check_timestamp(sent, now=now, tolerance=tolerance)
    return VerifiedDelivery(payload=payload, secret_index=index)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 120 else text[:117] + "..."
