"""The start-up retry loop: which errors it waits out, how long, and what it says."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from signgate.dfns.errors import (
    DfnsAPIError,
    DfnsConnectionError,
    DfnsError,
    DfnsForbiddenError,
    DfnsNotFoundError,
    DfnsRateLimitError,
    DfnsServerError,
    DfnsTimeoutError,
    DfnsUnauthorizedError,
)
from signgate.startup import StartupTimeout, is_transient, retry_startup


class FakeTime:
    """A clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: DfnsError, then: str = "ok") -> Callable[[], Awaitable[str]]:
    """A call raising ``errors`` one per attempt, then returning ``then``."""
    pending = list(errors)

    async def call() -> str:
        if pending:
            raise pending.pop(0)
        return then

    return call


def test_what_counts_as_transient() -> None:
    assert is_transient(DfnsServerError(504, "gateway timeout"))
    assert is_transient(DfnsServerError(500, "boom"))
    assert is_transient(DfnsAPIError(408, "request timeout"))
    assert is_transient(DfnsRateLimitError(429, "slow down"))
    assert is_transient(DfnsConnectionError("connection refused"))
    assert is_transient(DfnsTimeoutError("read timeout"))
    for answer in (
        DfnsUnauthorizedError(401, "bad token"),
        DfnsForbiddenError(403, "no permission"),
        DfnsNotFoundError(404, "no such webhook"),
        DfnsAPIError(422, "invalid"),
    ):
        assert not is_transient(answer)


async def test_transient_errors_are_retried_with_growing_delays_and_reported() -> None:
    time = FakeTime()
    lines: list[str] = []
    errors = [DfnsServerError(504, "gateway timeout") for _ in range(4)]
    result = await retry_startup(
        failing(*errors, DfnsConnectionError("refused")),
        what="the webhook check",
        budget=120,
        say=lines.append,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert result == "ok"
    assert len(time.sleeps) == 5 and len(lines) == 5
    assert all(
        later > earlier for earlier, later in zip(time.sleeps, time.sleeps[1:], strict=False)
    )
    assert lines[0].startswith("waiting for the webhook check: ")
    assert "HTTP 504" in lines[0] and "retry 1 in" in lines[0]
    assert "refused" in lines[-1] and "retry 5 in" in lines[-1]


async def test_retry_after_is_honoured() -> None:
    time = FakeTime()
    await retry_startup(
        failing(DfnsRateLimitError(429, "slow down", retry_after=7)),
        what="x",
        say=lambda _: None,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert time.sleeps == [7]


async def test_an_answer_is_raised_at_once() -> None:
    time = FakeTime()
    with pytest.raises(DfnsUnauthorizedError):
        await retry_startup(
            failing(DfnsUnauthorizedError(401, "bad token")),
            what="x",
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.sleeps == []


async def test_the_budget_ends_it_with_a_message_naming_the_call() -> None:
    time = FakeTime()

    async def always() -> str:
        raise DfnsServerError(504, "gateway timeout", method="GET", path="/webhooks/wh-1")

    with pytest.raises(StartupTimeout) as caught:
        await retry_startup(
            always,
            what="the webhook check (GET /webhooks/wh-1)",
            budget=30,
            say=lambda _: None,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.now == pytest.approx(30)
    message = str(caught.value)
    assert message.startswith("the webhook check (GET /webhooks/wh-1) did not succeed in 30s (")
    assert "SIGNGATE_STARTUP_TIMEOUT_SECONDS" in message
    assert "GET /webhooks/wh-1 returned HTTP 504" in message
    assert caught.value.attempts == len(time.sleeps) + 1
    assert isinstance(caught.value, DfnsError)
