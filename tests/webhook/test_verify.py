"""Delivery verification: one test per rejection reason, and the rotation secret accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from signgate.webhook.verify import (
    Rejection,
    WebhookRejected,
    check_timestamp,
    sign_body,
    verify_delivery,
    verify_signature,
)
from tests.webhook.support import OLD_SECRET, SECRET, encode, event, sign, signed

SECRETS = [SecretStr(SECRET)]
NOW = 1_767_225_600.0
"""2026-01-01T00:00:00Z. Verification takes "now" as an argument: a fixed instant, so no test
depends on when (or how long after import) it runs."""


def fresh() -> dict[str, Any]:
    """An event sent at :data:`NOW`."""
    return event(sent=int(NOW))


def rejected(body: bytes, header: str | None, **kwargs: object) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        verify_delivery(body, header, kwargs.pop("secrets", SECRETS), now=NOW, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_a_correctly_signed_fresh_event_is_accepted_and_parsed() -> None:
    payload = fresh()
    body, header = signed(payload)
    verified = verify_delivery(body, header, SECRETS, now=NOW)
    assert verified.payload == payload
    assert verified.secret_index == 0


def test_our_signature_matches_an_independent_hmac() -> None:
    body = encode(fresh())
    assert sign_body(SECRET, body) == sign(body)
    assert sign_body(SecretStr(SECRET), body) == sign(body)


def test_missing_header() -> None:
    body, _ = signed(fresh())
    for header in (None, "", "   "):
        error = rejected(body, header)
        assert error.reason is Rejection.MISSING_HEADER
        assert error.status == 401


def test_wrong_scheme() -> None:
    body, header = signed(fresh())
    digest = header.removeprefix("sha256=")
    for wrong in (digest, f"sha1={digest}", f"sha512={digest}", f"hmac {digest}"):
        error = rejected(body, wrong)
        assert error.reason is Rejection.WRONG_SCHEME
        assert error.status == 401


def test_bad_hmac() -> None:
    body, _ = signed(fresh())
    error = rejected(body, sign(body, "whs-some-other-secret"))
    assert error.reason is Rejection.BAD_SIGNATURE
    assert error.status == 401
    assert rejected(body, "sha256=" + "0" * 64).reason is Rejection.BAD_SIGNATURE
    assert rejected(body, "sha256=not-hex").reason is Rejection.BAD_SIGNATURE


def test_body_altered_by_one_byte() -> None:
    body, header = signed(fresh())
    index = body.index(b'"Signed"') + 1
    altered = body[:index] + b"R" + body[index + 1 :]
    assert len(altered) == len(body) and altered != body
    error = rejected(altered, header)
    assert error.reason is Rejection.BAD_SIGNATURE
    # The same JSON re-serialised differently is not what was signed either.
    spaced = json.dumps(json.loads(body)).encode()
    assert rejected(spaced, header).reason is Rejection.BAD_SIGNATURE


def test_stale_timestamp() -> None:
    body, header = signed(event(sent=int(NOW) - 301))
    error = rejected(body, header)
    assert error.reason is Rejection.STALE_TIMESTAMP
    assert error.status == 401
    # The bound is strict, as in Dfns's reference verifier.
    with pytest.raises(WebhookRejected):
        check_timestamp(100, now=400.0, tolerance=300)
    check_timestamp(101, now=400.0, tolerance=300)


def test_future_timestamp() -> None:
    body, header = signed(event(sent=int(NOW) + 301))
    error = rejected(body, header)
    assert error.reason is Rejection.FUTURE_TIMESTAMP
    assert error.status == 401
    with pytest.raises(WebhookRejected):
        check_timestamp(700, now=400.0, tolerance=300)
    check_timestamp(699, now=400.0, tolerance=300)


def test_tolerance_is_configurable() -> None:
    body, header = signed(event(sent=int(NOW) - 20))
    assert rejected(body, header, tolerance=10).reason is Rejection.STALE_TIMESTAMP
    assert verify_delivery(body, header, SECRETS, now=NOW, tolerance=30).payload


def test_malformed_json_with_a_valid_signature() -> None:
    for body in (b'{"id": "whe-1", "kind": ', b"\xff\xfe not utf-8", b"[1, 2, 3]", b'"text"'):
        error = rejected(body, sign(body))
        assert error.reason is Rejection.MALFORMED_JSON
        assert error.status == 400


def test_malformed_json_without_a_valid_signature_is_not_parsed() -> None:
    body = b"{not json"
    assert rejected(body, sign(body, "whs-wrong")).reason is Rejection.BAD_SIGNATURE


def test_missing_or_non_integer_timestamp() -> None:
    for sent in (None, "1700000000", 1.7e9, True):
        payload = fresh()
        payload["timestampSent"] = sent
        body, header = signed(payload)
        error = rejected(body, header)
        assert error.reason is Rejection.MISSING_TIMESTAMP
        assert error.status == 400


def test_rotation_secret_is_accepted() -> None:
    both = [SecretStr(SECRET), SecretStr(OLD_SECRET)]
    body, header = signed(fresh(), OLD_SECRET)
    verified = verify_delivery(body, header, both, now=NOW)
    assert verified.secret_index == 1
    body, header = signed(fresh(), SECRET)
    assert verify_delivery(body, header, both, now=NOW).secret_index == 0
    # Without the rotation secret, the old one is refused.
    assert rejected(*signed(fresh(), OLD_SECRET)).reason is Rejection.BAD_SIGNATURE


def test_only_the_form_dfns_sends_is_accepted() -> None:
    body, header = signed(fresh())
    digest = header.removeprefix("sha256=")
    assert verify_signature(body, header, SECRETS) == 0
    for other in (f" sha256={digest}", f"SHA256={digest}"):
        assert rejected(body, other).reason is Rejection.WRONG_SCHEME
    for other in (f"sha256={digest.upper()}", f"sha256={digest} "):
        assert rejected(body, other).reason is Rejection.BAD_SIGNATURE


def test_no_secret_configured_is_a_programming_error() -> None:
    body, header = signed(fresh())
    with pytest.raises(ValueError, match="at least one webhook secret"):
        verify_signature(body, header, [])


def test_messages_never_quote_the_header_or_the_secret() -> None:
    body, _ = signed(fresh())
    forged = sign(body, "whs-forger")
    error = rejected(body, forged)
    assert forged not in str(error) and SECRET not in str(error)
    assert forged.removeprefix("sha256=") not in error.message
