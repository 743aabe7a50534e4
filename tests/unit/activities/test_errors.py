"""activities.errors: every Dfns error maps to the documented ApplicationError."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.errors import (
    dfns_errors,
    is_retryable_status,
    read_errors,
    to_application_error,
)
from signgate import ids
from signgate.dfns.errors import (
    DfnsAPIError,
    DfnsBadRequestError,
    DfnsConflictError,
    DfnsConnectionError,
    DfnsError,
    DfnsForbiddenError,
    DfnsInvalidRequestError,
    DfnsNotFoundError,
    DfnsRateLimitError,
    DfnsServerError,
    DfnsTimeoutError,
    DfnsUnauthorizedError,
    DfnsUnexpectedResponseError,
    DfnsUserActionError,
)


@pytest.mark.parametrize(
    ("error", "error_type", "retryable"),
    [
        (DfnsConnectionError("refused"), ids.ERR_UNAVAILABLE, True),
        (DfnsTimeoutError("read timeout"), ids.ERR_UNAVAILABLE, True),
        (DfnsBadRequestError(400, "bad hash"), ids.ERR_INVALID_REQUEST, False),
        (DfnsUnauthorizedError(401, "Not Authorized."), ids.ERR_UNAUTHORIZED, False),
        (DfnsForbiddenError(403, "no permission"), ids.ERR_FORBIDDEN, False),
        (DfnsNotFoundError(404, "key not found"), ids.ERR_NOT_FOUND, False),
        (DfnsAPIError(408, "request timeout"), ids.ERR_UNAVAILABLE, True),
        (DfnsConflictError(409, "conflict"), ids.ERR_CONFLICT, True),
        (DfnsAPIError(422, "semantically invalid"), ids.ERR_INVALID_REQUEST, False),
        (DfnsAPIError(402, "upgrade your plan"), ids.ERR_CLIENT_ERROR, False),
        (DfnsServerError(500, "unexpected error"), ids.ERR_SERVER_ERROR, True),
        (DfnsServerError(503, "unavailable"), ids.ERR_SERVER_ERROR, True),
        (DfnsUnexpectedResponseError("not JSON", status=200), ids.ERR_UNEXPECTED_RESPONSE, True),
        (DfnsInvalidRequestError("legacy keys sign hashes"), ids.ERR_INVALID_REQUEST, False),
    ],
)
def test_each_error_has_its_type_and_retry_rule(
    error: DfnsError, error_type: str, retryable: bool
) -> None:
    mapped = to_application_error(error, action="submit")
    assert mapped.type == error_type
    assert mapped.non_retryable is (not retryable)
    assert mapped.message.startswith("submit: ")
    assert mapped.__cause__ is None


def test_429_carries_the_retry_after_delay_and_is_benign() -> None:
    mapped = to_application_error(DfnsRateLimitError(429, "slow down", retry_after=7.0), action="x")
    assert mapped.type == ids.ERR_RATE_LIMITED and not mapped.non_retryable
    assert mapped.next_retry_delay == timedelta(seconds=7)
    assert mapped.category == ApplicationErrorCategory.BENIGN
    without = to_application_error(DfnsRateLimitError(429, "slow down"), action="x")
    assert without.next_retry_delay is None


def test_user_action_failures_follow_their_http_cause() -> None:
    transient = DfnsUserActionError(
        "init failed", stage="init", api_error=DfnsServerError(503, "down")
    )
    assert not to_application_error(transient, action="x").non_retryable
    refused = DfnsUserActionError(
        "complete refused", stage="complete", api_error=DfnsForbiddenError(403, "bad signature")
    )
    assert to_application_error(refused, action="x").non_retryable
    local = DfnsUserActionError("no signer", stage="no_signer")
    mapped = to_application_error(local, action="x")
    assert mapped.type == ids.ERR_USER_ACTION and mapped.non_retryable


def test_a_conflict_names_the_duplicate() -> None:
    error = DfnsConflictError(
        409, "Conflicting", details={"duplicate": {"id": "sig-1", "externalId": "sg-x"}}
    )
    mapped = to_application_error(error, action="x")
    assert mapped.details[0]["duplicate_id"] == "sig-1"


def test_retryable_statuses() -> None:
    assert [
        s for s in (400, 401, 403, 404, 408, 409, 422, 429, 500, 502) if is_retryable_status(s)
    ] == [
        408,
        409,
        429,
        500,
        502,
    ]


def test_the_context_manager_translates_and_does_not_chain() -> None:
    with pytest.raises(ApplicationError) as caught, dfns_errors("fetch sig-1"):
        raise DfnsNotFoundError(404, "not found")
    assert caught.value.type == ids.ERR_NOT_FOUND
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_poll_refused_with_429_is_not_retried_by_the_activity_and_says_how_long() -> None:
    with pytest.raises(ApplicationError) as caught, read_errors("fetch sig-1"):
        raise DfnsRateLimitError(429, "slow down", retry_after=12.0)
    error = caught.value
    assert error.type == ids.ERR_RATE_LIMITED
    assert error.non_retryable, "the poll loop looks again; the activity does not"
    assert error.details[0]["retry_after"] == 12.0
    with pytest.raises(ApplicationError) as other, read_errors("fetch sig-1"):
        raise DfnsServerError(503, "down")
    assert other.value.type == ids.ERR_SERVER_ERROR and not other.value.non_retryable
