"""The one place that turns Dfns client errors into Temporal ``ApplicationError``s.

The rule (Dfns's own advice, API notes section 5.2), as ``ApplicationError.type``:

=========================  ==========================  =====================================
Dfns error                 type                        retried?
=========================  ==========================  =====================================
connection, timeout, 408   ``DfnsUnavailable``         yes
429                        ``DfnsRateLimited``         yes, after ``Retry-After``
5xx                        ``DfnsServerError``         yes
409                        ``DfnsConflict``            yes (submit resolves it first)
400, 422                   ``InvalidSignatureRequest`` no
401 / 403 / 404            ``DfnsUnauthorized`` /      no
                           ``DfnsForbidden`` /
                           ``DfnsNotFound``
other 4xx                  ``DfnsClientError``         no
2xx that does not parse    ``DfnsUnexpectedResponse``  yes
user-action flow failed    ``DfnsUserActionFailed``    as its HTTP cause; never when local
refused before sending     ``InvalidSignatureRequest`` no
=========================  ==========================  =====================================

Messages carry what the client put in them (method, path, status, Dfns's message), which
the client has already scrubbed of tokens. The original exception is not chained: its
traceback would only grow workflow history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from signgate import ids
from signgate.dfns.errors import (
    DfnsAPIError,
    DfnsConflictError,
    DfnsConnectionError,
    DfnsError,
    DfnsInvalidRequestError,
    DfnsRateLimitError,
    DfnsTransportError,
    DfnsUnexpectedResponseError,
    DfnsUserActionError,
)

__all__ = [
    "callback_failed",
    "conflict_without_duplicate",
    "dfns_errors",
    "is_decision_conflict",
    "is_retryable_status",
    "read_errors",
    "submit_error",
    "to_application_error",
]

_STATUS_TYPES = {
    400: ids.ERR_INVALID_REQUEST,
    401: ids.ERR_UNAUTHORIZED,
    403: ids.ERR_FORBIDDEN,
    404: ids.ERR_NOT_FOUND,
    408: ids.ERR_UNAVAILABLE,
    409: ids.ERR_CONFLICT,
    422: ids.ERR_INVALID_REQUEST,
    429: ids.ERR_RATE_LIMITED,
}


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status from Dfns is worth retrying: 5xx, 408, 409, 429."""
    return status >= 500 or status in (408, 409, 429)


def to_application_error(exc: DfnsError, *, action: str) -> ApplicationError:
    """The ``ApplicationError`` for ``exc``; ``action`` says what was being done."""
    message = f"{action}: {exc}"
    if isinstance(exc, DfnsTransportError):
        return ApplicationError(message, type=ids.ERR_UNAVAILABLE)
    if isinstance(exc, DfnsInvalidRequestError):
        return ApplicationError(message, type=ids.ERR_INVALID_REQUEST, non_retryable=True)
    if isinstance(exc, DfnsUnexpectedResponseError):
        return ApplicationError(message, {"status": exc.status}, type=ids.ERR_UNEXPECTED_RESPONSE)
    if isinstance(exc, DfnsUserActionError):
        api = exc.api_error
        retryable = api is not None and is_retryable_status(api.status)
        return ApplicationError(
            message,
            {"stage": exc.stage, "status": exc.status},
            type=ids.ERR_USER_ACTION,
            non_retryable=not retryable,
        )
    if isinstance(exc, DfnsAPIError):
        return _from_api_error(exc, message)
    return ApplicationError(message, type=ids.ERR_UNAVAILABLE)


def _from_api_error(exc: DfnsAPIError, message: str) -> ApplicationError:
    status = exc.status
    details: dict[str, Any] = {"status": status, "error_id": exc.error_id, "code": exc.code}
    if isinstance(exc, DfnsConflictError):
        details["duplicate_id"] = exc.duplicate_id
    if status >= 500:
        return ApplicationError(message, details, type=ids.ERR_SERVER_ERROR)
    if isinstance(exc, DfnsRateLimitError):
        delay = exc.retry_after
        details["retry_after"] = delay
        return ApplicationError(
            message,
            details,
            type=ids.ERR_RATE_LIMITED,
            # Honour the server's delay; without one, the retry policy's backoff applies.
            next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
            category=ApplicationErrorCategory.BENIGN,
        )
    error_type = _STATUS_TYPES.get(status, ids.ERR_CLIENT_ERROR)
    return ApplicationError(
        message, details, type=error_type, non_retryable=not is_retryable_status(status)
    )


@contextmanager
def dfns_errors(action: str) -> Iterator[None]:
    """Re-raise any :class:`DfnsError` inside the block as its ``ApplicationError``."""
    try:
        yield
    except DfnsError as exc:
        raise to_application_error(exc, action=action) from None


@contextmanager
def read_errors(action: str) -> Iterator[None]:
    """:func:`dfns_errors` for a poll, whose 429 is not retried by the activity.

    A poll is one look of a loop that looks again: retrying a 429 in the activity would
    spend the poll's few attempts on the budget, not on the request. The workflow gets the
    ``DfnsRateLimited`` failure, with ``retry_after``, and waits at least that long.
    """
    try:
        yield
    except DfnsRateLimitError as exc:
        error = to_application_error(exc, action=action)
        raise ApplicationError(
            error.message,
            *error.details,
            type=error.type,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        ) from None
    except DfnsError as exc:
        raise to_application_error(exc, action=action) from None


def submit_error(exc: DfnsError, *, target: str, idempotent: bool) -> ApplicationError:
    """The error for a failed submit to ``target``.

    An idempotent submit (one carrying an ``externalId``) follows :func:`to_application_error`.
    A legacy public-key submit has no idempotency key, so a retry could create a second
    request: it is retried only when the request surely never reached Dfns (the connection
    was refused, or Dfns answered 429), and any other retryable failure becomes
    ``SubmitOutcomeUnknown``, which the workflow waits on until its caller resolves it.
    """
    error = to_application_error(exc, action=f"submit to {target}")
    if idempotent or error.non_retryable:
        return error
    never_sent = isinstance(exc, DfnsConnectionError) and isinstance(
        exc.__cause__, httpx.ConnectError
    )
    if isinstance(exc, DfnsRateLimitError) or never_sent:
        return error
    return ApplicationError(
        f"{error.message}; not retried: legacy public keys have no idempotency key, so a "
        "retry could create a second request. Check Dfns for this hash, then resolve the "
        "workflow's submit (signgate resolve)",
        {"cause_type": error.type},
        type=ids.ERR_SUBMIT_UNKNOWN,
        non_retryable=True,
    )


def conflict_without_duplicate(
    exc: DfnsConflictError, *, external_id: str | None
) -> ApplicationError:
    """A 409 that does not name the request it conflicts with: nothing to adopt or retry."""
    return ApplicationError(
        f"Dfns answered 409 for externalId {external_id!r} without naming the existing "
        f"request ({exc})",
        type=ids.ERR_CONFLICT,
        non_retryable=True,
    )


def is_decision_conflict(exc: DfnsAPIError) -> bool:
    """Whether a refused approval decision may mean the approval is no longer Pending.

    Dfns does not document the status it gives a decision on a decided approval (API-NOTES
    §9, item 11; the sandbox answers 409), so any 4xx may mean it, except 401 (the token,
    which a read would meet too), 404 (no such approval, which a read would meet too), 408
    (Dfns unavailable, retried) and 429 (no answer yet, retried after ``Retry-After``).
    """
    return 400 <= exc.status < 500 and exc.status not in (401, 404, 408, 429)


def callback_failed(
    url: str, *, error: httpx.HTTPError | None = None, status: int | None = None
) -> ApplicationError:
    """A downstream callback that did not get a 2xx: always retried (the receiver may recover)."""
    if error is not None:
        return ApplicationError(
            f"callback to {url} failed: {type(error).__name__}", type=ids.ERR_DELIVERY_FAILED
        )
    return ApplicationError(
        f"callback to {url} answered HTTP {status}; retrying",
        {"status": status},
        type=ids.ERR_DELIVERY_FAILED,
    )
