"""The error tree, produced by real client calls against MockTransport responses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from signgate.dfns import (
    CreateWebhookRequest,
    CredentialSigner,
    DfnsAPIError,
    DfnsBadRequestError,
    DfnsClient,
    DfnsConflictError,
    DfnsConnectionError,
    DfnsError,
    DfnsForbiddenError,
    DfnsInvalidRequestError,
    DfnsNotFoundError,
    DfnsRateLimitError,
    DfnsServerError,
    DfnsTimeoutError,
    DfnsTransportError,
    DfnsUnauthorizedError,
    DfnsUnexpectedResponseError,
    DfnsUserActionError,
    HashRequest,
    error_from_response,
    parse_retry_after,
)

BASE_URL = "https://dfns.test"
BEARER = "eyJhbGciOiJFUzI1NiJ9.bearer-for-error-tests.c2ln"
UA_TOKEN = "eyJ1YSI6dHJ1ZX0.user-action-for-error-tests.c2ln"
CRED_ID = "Y3JlZC1lcnJvcnM"
HASH = "0x" + "ab" * 32

Handler = Callable[[httpx.Request], httpx.Response]


def _signer() -> CredentialSigner:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return CredentialSigner(CRED_ID, pem)


def _with_user_action(target: Handler) -> Handler:
    """Answers the user-action endpoints and passes everything else to ``target``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/action/init":
            return httpx.Response(
                200,
                json={
                    "challenge": "Y2hhbGxlbmdl",
                    "challengeIdentifier": "eyJ0.challenge.id",
                    "allowCredentials": {"key": [{"type": "public-key", "id": CRED_ID}]},
                },
            )
        if request.url.path == "/auth/action":
            return httpx.Response(200, json={"userAction": UA_TOKEN})
        return target(request)

    return handler


def _client(handler: Handler) -> DfnsClient:
    http = httpx.AsyncClient(
        base_url=BASE_URL, transport=httpx.MockTransport(_with_user_action(handler))
    )
    return DfnsClient(http, auth_token=BEARER, signer=_signer())


def _answer(status: int, **kwargs: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **kwargs)

    return handler


async def _get_key_error(handler: Handler) -> DfnsAPIError:
    with pytest.raises(DfnsAPIError) as info:
        await _client(handler).get_key("key-1")
    return info.value


def _no_secrets(err: BaseException) -> None:
    for text in (str(err), repr(err)):
        assert BEARER not in text
        assert UA_TOKEN not in text


async def test_400_current_envelope() -> None:
    err = await _get_key_error(
        _answer(
            400,
            json={
                "error": {
                    "id": "2038837570328299032",
                    "status": 400,
                    "message": "hash must match pattern",
                    "code": "ValidationError",
                    "details": {"field": "hash"},
                }
            },
        )
    )
    assert type(err) is DfnsBadRequestError
    assert err.status == 400
    assert err.message == "hash must match pattern"
    assert err.error_id == "2038837570328299032"
    assert err.code == "ValidationError"
    assert err.details == {"field": "hash"}
    assert err.method == "GET" and err.path == "/keys/key-1"
    assert str(err) == "Dfns GET /keys/key-1 returned HTTP 400: hash must match pattern"


async def test_401_old_envelope() -> None:
    err = await _get_key_error(_answer(401, json={"error": {"message": "Not Authorized."}}))
    assert type(err) is DfnsUnauthorizedError
    assert err.message == "Not Authorized."
    assert err.error_id is None and err.details is None and err.code is None


async def test_403_forbidden() -> None:
    message = "CustomerEmployee us-1 is not authorized to perform operation (Keys:Read)"
    err = await _get_key_error(_answer(403, json={"error": {"status": 403, "message": message}}))
    assert type(err) is DfnsForbiddenError
    assert err.message == message


async def test_404_not_found_with_details() -> None:
    err = await _get_key_error(
        _answer(
            404,
            json={
                "error": {
                    "id": "9",
                    "status": 404,
                    "message": "key not found",
                    "details": {"keyId": "key-1", "orgId": "or-1"},
                }
            },
        )
    )
    assert type(err) is DfnsNotFoundError
    assert err.details == {"keyId": "key-1", "orgId": "or-1"}


async def test_409_duplicate_external_id_on_signature_create() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-dfns-useraction"] == UA_TOKEN
        return httpx.Response(
            409,
            json={
                "error": {
                    "id": "1",
                    "status": 409,
                    "message": "Conflicting signature with same externalId",
                    "details": {"duplicate": {"id": "sig-abc", "externalId": "wf-123"}},
                }
            },
        )

    with pytest.raises(DfnsConflictError) as info:
        await _client(handler).generate_signature(
            "key-1", HashRequest(hash=HASH, external_id="wf-123")
        )
    err = info.value
    assert err.duplicate_id == "sig-abc"
    assert err.duplicate_external_id == "wf-123"
    assert err.method == "POST" and err.path == "/keys/key-1/signatures"
    _no_secrets(err)


async def test_409_without_duplicate_details() -> None:
    err = await _get_key_error(_answer(409, json={"error": {"message": "conflict"}}))
    assert isinstance(err, DfnsConflictError)
    assert err.duplicate_id is None and err.duplicate_external_id is None


async def test_429_retry_after_seconds() -> None:
    err = await _get_key_error(
        _answer(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow down"}})
    )
    assert isinstance(err, DfnsRateLimitError)
    assert err.retry_after == 7.0


async def test_429_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    err = await _get_key_error(
        _answer(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    assert isinstance(err, DfnsRateLimitError)
    assert err.retry_after is not None
    assert 60 < err.retry_after <= 120


async def test_429_without_retry_after() -> None:
    err = await _get_key_error(_answer(429, text="Too Many Requests"))
    assert isinstance(err, DfnsRateLimitError)
    assert err.retry_after is None
    assert err.message == "Too Many Requests"


def test_parse_retry_after_forms() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "-1", "nan", "inf", "soon"):
        assert parse_retry_after(bad, now=now) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_server_errors(status: int) -> None:
    err = await _get_key_error(
        _answer(status, json={"error": {"message": "unexpected error. Please try again."}})
    )
    assert type(err) is DfnsServerError
    assert err.status == status


@pytest.mark.parametrize("status", [402, 422, 418])
async def test_other_statuses_are_plain_api_errors(status: int) -> None:
    err = await _get_key_error(_answer(status, json={"error": {"message": "nope"}}))
    assert type(err) is DfnsAPIError
    assert err.status == status


async def test_non_json_error_body() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    err = await _get_key_error(_answer(502, text=html, headers={"Content-Type": "text/html"}))
    assert type(err) is DfnsServerError
    assert err.message == html
    assert err.body == html


async def test_empty_error_body_uses_reason_phrase() -> None:
    err = await _get_key_error(_answer(503))
    assert err.message == "Service Unavailable"
    assert err.body is None


async def test_long_text_body_is_truncated_in_message() -> None:
    err = await _get_key_error(_answer(500, text="x" * 5000))
    assert len(err.message) < 600
    assert err.body == "x" * 5000


async def test_legacy_g1_envelope() -> None:
    err = await _get_key_error(
        _answer(
            404,
            json={
                "serviceName": "public-keys",
                "message": "PublicKey not found",
                "causes": ["no such id"],
                "shouldTriggerInvestigaton": False,
                "isDfnsError": True,
                "httpStatus": 404,
                "errorName": "NotFoundError",
            },
        )
    )
    assert type(err) is DfnsNotFoundError
    assert err.message == "PublicKey not found"
    assert err.code == "NotFoundError"
    assert err.details == {
        "serviceName": "public-keys",
        "causes": ["no such id"],
        "httpStatus": 404,
    }


async def test_top_level_message_envelope() -> None:
    err = await _get_key_error(
        _answer(
            400,
            json={"message": "Fast Auth disabled", "details": {"kind": "FastAuthDisabled"}},
        )
    )
    assert type(err) is DfnsBadRequestError
    assert err.message == "Fast Auth disabled"
    assert err.details == {"kind": "FastAuthDisabled"}


async def test_json_without_known_envelope_keeps_body() -> None:
    err = await _get_key_error(_answer(400, json={"weird": [1, 2]}))
    assert err.message == '{"weird": [1, 2]}'
    assert err.body == {"weird": [1, 2]}


async def test_unexpected_shape_of_success_body() -> None:
    with pytest.raises(DfnsUnexpectedResponseError) as info:
        await _client(_answer(200, json={"id": "key-1", "scheme": 5})).get_key("key-1")
    err = info.value
    assert err.status == 200
    assert err.validation_error is not None
    assert "curve: Field required" in err.validation_error
    assert "scheme: Input should be a valid string" in err.validation_error
    assert "Key" in str(err)


async def test_unexpected_shape_never_echoes_values() -> None:
    secret = "whsec-never-print-this-value"
    body = {
        "id": "wh-1",
        "url": "https://x",
        "events": ["*"],
        "status": "Enabled",
        "secret": secret,
    }
    with pytest.raises(DfnsUnexpectedResponseError) as info:
        await _client(_answer(200, json=body)).create_webhook(
            CreateWebhookRequest(url="https://x", events=["*"])
        )
    assert "dateCreated" in str(info.value)
    assert secret not in str(info.value)
    assert info.value.__cause__ is None


async def test_non_json_success_body() -> None:
    with pytest.raises(DfnsUnexpectedResponseError) as info:
        await _client(_answer(200, text="<html>login</html>")).get_key("key-1")
    assert info.value.validation_error is not None
    assert "Invalid JSON" in info.value.validation_error


async def test_connection_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(DfnsConnectionError) as info:
        await _client(handler).get_key("key-1")
    err = info.value
    assert isinstance(err, DfnsTransportError)
    assert isinstance(err.__cause__, httpx.ConnectError)
    assert "Connection refused" in str(err)
    assert err.method == "GET" and err.path == "/keys/key-1"
    _no_secrets(err)


async def test_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(DfnsTimeoutError) as info:
        await _client(handler).get_key("key-1")
    assert isinstance(info.value, DfnsTransportError)
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


async def test_timeout_during_user_action_init_is_a_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("connect timed out", request=request)

    http = httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(handler))
    client = DfnsClient(http, auth_token=BEARER, signer=_signer())
    with pytest.raises(DfnsTimeoutError):
        await client.generate_signature("key-1", HashRequest(hash=HASH))


async def test_echoed_tokens_are_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"{request.headers['authorization']} / {request.headers['x-dfns-useraction']}"
        return httpx.Response(
            403,
            json={"error": {"message": f"bad tokens: {echoed}", "details": {"seen": [echoed]}}},
        )

    with pytest.raises(DfnsForbiddenError) as info:
        await _client(handler).generate_signature("key-1", HashRequest(hash=HASH))
    err = info.value
    _no_secrets(err)
    assert BEARER not in repr(err.body) and UA_TOKEN not in repr(err.body)
    assert UA_TOKEN not in repr(err.details)
    assert err.message == "bad tokens: [redacted] / [redacted]"


def test_error_from_response_without_request() -> None:
    err = error_from_response(httpx.Response(404, json={"error": {"message": "gone"}}))
    assert type(err) is DfnsNotFoundError
    assert err.method is None and str(err) == "Dfns returned HTTP 404: gone"


def test_hierarchy() -> None:
    for cls in (
        DfnsTransportError,
        DfnsAPIError,
        DfnsUnexpectedResponseError,
        DfnsUserActionError,
        DfnsInvalidRequestError,
    ):
        assert issubclass(cls, DfnsError)
    for cls in (
        DfnsBadRequestError,
        DfnsUnauthorizedError,
        DfnsForbiddenError,
        DfnsNotFoundError,
        DfnsConflictError,
        DfnsRateLimitError,
        DfnsServerError,
    ):
        assert issubclass(cls, DfnsAPIError)
    assert issubclass(DfnsInvalidRequestError, ValueError)
    assert not issubclass(DfnsUnexpectedResponseError, DfnsAPIError)
