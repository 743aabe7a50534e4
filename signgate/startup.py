"""Start-up calls to Dfns that ride out the faults a restart is often recovering from.

``signgate dev`` and ``signgate webhook register`` make Dfns calls before they can go on:
the webhook check and registration. (The worker and the receiver make none at start-up: the
worker's activities retry on their own, the receiver only talks to Temporal.) A
transient answer (5xx, 408, 429, a dropped connection, a timeout) says nothing about whether
the call would succeed a second later, so :func:`retry_startup` repeats it with exponential
backoff (honouring ``Retry-After``) for at most ``SIGNGATE_STARTUP_TIMEOUT_SECONDS``, tells
the console what it is waiting for at every retry, and only then fails with
:class:`StartupTimeout`, naming the call, the time spent and the last error. Any other error
(401, 403, 404, a bad request) is an answer and is raised at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from signgate.dfns.errors import (
    DfnsAPIError,
    DfnsError,
    DfnsRateLimitError,
    DfnsTransportError,
)
from signgate.logs import get_logger

__all__ = [
    "DEFAULT_STARTUP_TIMEOUT_SECONDS",
    "StartupTimeout",
    "is_transient",
    "retry_startup",
]

T = TypeVar("T")

DEFAULT_STARTUP_TIMEOUT_SECONDS: Final = 120.0
_FIRST_DELAY: Final = 0.5
_MAX_DELAY: Final = 10.0

_log = get_logger("signgate.startup")


class StartupTimeout(DfnsError):
    """A start-up call kept failing transiently for the whole start-up budget."""

    def __init__(self, what: str, budget: float, attempts: int, last: BaseException) -> None:
        super().__init__(
            f"{what} did not succeed in {budget:g}s ({attempts} attempts; "
            f"SIGNGATE_STARTUP_TIMEOUT_SECONDS sets how long); the last error: {last}"
        )
        self.what = what
        self.attempts = attempts
        self.last = last


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault worth waiting out: 5xx, 408, 429, connection, timeout."""
    if isinstance(exc, DfnsTransportError | DfnsRateLimitError):
        return True
    return isinstance(exc, DfnsAPIError) and (exc.status >= 500 or exc.status == 408)


async def retry_startup(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    budget: float = DEFAULT_STARTUP_TIMEOUT_SECONDS,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """``await call()`` until it succeeds, retrying transient errors for ``budget`` seconds.

    ``what`` names the call for people ("the webhook check at the sandbox"); ``say`` gets
    one line per retry (default: a ``startup.waiting`` warning in the log). Raises
    :class:`StartupTimeout` once the budget is spent, or the first non-transient error.
    """
    deadline = clock() + budget
    delay = _FIRST_DELAY
    attempts = 0
    while True:
        attempts += 1
        try:
            return await call()
        except DfnsError as exc:
            if not is_transient(exc):
                raise
            remaining = deadline - clock()
            if remaining <= 0:
                raise StartupTimeout(what, budget, attempts, exc) from exc
            # Jitter keeps processes restarted together from retrying in lockstep.
            wait = delay * random.uniform(0.8, 1.2)  # noqa: S311 - not for security
            if isinstance(exc, DfnsRateLimitError) and exc.retry_after is not None:
                wait = max(wait, exc.retry_after)
            wait = min(wait, remaining)
            line = (
                f"waiting for {what}: {exc}; retry {attempts} in {wait:.1f}s "
                f"(giving up in {remaining:.0f}s)"
            )
            if say is not None:
                say(line)
            else:
                _log.warning("startup.waiting", what=what, attempt=attempts, error=str(exc))
            await sleep(wait)
            delay = min(delay * 2, _MAX_DELAY)
