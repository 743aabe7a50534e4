"""Wait for a condition, never for a fixed time: the one polling helper of the test suite.

``eventually(probe)`` calls ``probe`` until it returns a truthy value and returns that
value. An exception raised by ``probe`` counts as "not yet" (so a probe may use ``assert``
or read something that does not exist yet); when time runs out the AssertionError names
the condition and carries the last value and the last exception. A probe that knows the
condition can no longer be met (the process it watches exited) raises :class:`GiveUp`,
which ends the wait at once.

The default timeout is generous on purpose: CI runs two suites at once on two cores, where
something that takes 0.1 s on an idle laptop can take tens of seconds. A condition that is
met returns at once, so the ceiling costs nothing when the code works.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

DEFAULT_WITHIN = 60.0
"""Seconds before a condition is declared unmet (a busy 2-core machine, two suites at once)."""
DEFAULT_INTERVAL = 0.05
"""Seconds between two calls of the probe."""


class GiveUp(AssertionError):
    """Raised by a probe when waiting longer cannot help; :func:`eventually` lets it through."""


def _describe(probe: Callable[[], object], what: str | None) -> str:
    if what:
        return what
    name = getattr(probe, "__qualname__", repr(probe))
    return "the condition" if name == "<lambda>" else name


class _Attempts:
    """The last value and exception seen, for the failure message."""

    def __init__(self, probe: Callable[[], object], what: str | None, timeout: float) -> None:
        self.what = _describe(probe, what)
        self.timeout = timeout
        self.calls = 0
        self.value: object = None
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + timeout

    def saw(self, value: object) -> bool:
        self.calls += 1
        self.value, self.error = value, None
        return bool(value)

    def failed(self, error: Exception) -> None:
        self.calls += 1
        self.error = error

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def give_up(self) -> AssertionError:
        last = f"last error {self.error!r}" if self.error else f"last value {self.value!r}"
        return AssertionError(
            f"{self.what} not reached within {self.timeout:g} s ({self.calls} tries; {last})"
        )


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None],
    *,
    within: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], object],
    *,
    within: float = DEFAULT_WITHIN,
    interval: float = DEFAULT_INTERVAL,
    what: str | None = None,
) -> object:
    """Await ``probe()`` (sync or async) until it is truthy; return its value.

    Raises AssertionError naming ``what`` (default: the probe's name) after ``within``
    seconds, chained to the probe's last exception if it raised one.
    """
    attempts = _Attempts(probe, what, within)
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            if attempts.saw(value):
                return value
        except GiveUp:
            raise
        except Exception as error:  # "not yet": reported if time runs out
            attempts.failed(error)
        if attempts.expired():
            raise attempts.give_up() from attempts.error
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T | None],
    *,
    within: float = DEFAULT_WITHIN,
    interval: float = DEFAULT_INTERVAL,
    what: str | None = None,
) -> T:
    """:func:`eventually` for tests without an event loop (subprocesses, threads)."""
    attempts = _Attempts(probe, what, within)
    while True:
        try:
            value = probe()
            if attempts.saw(value):
                assert value is not None
                return value
        except GiveUp:
            raise
        except Exception as error:  # "not yet": reported if time runs out
            attempts.failed(error)
        if attempts.expired():
            raise attempts.give_up() from attempts.error
        time.sleep(interval)
