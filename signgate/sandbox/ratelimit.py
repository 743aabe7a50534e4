"""Dfns's per-organisation rate limit, and the load report behind ``/_local/rate-limit``.

Dfns allows an organisation 1,000 requests a minute (100 on a trial org) [API-NOTES §5.3].
The sandbox holds one organisation, so one limiter counts every authenticated Dfns call,
``/auth/action/init`` and ``/auth/action`` included, whoever makes it. Where the public
material is silent (API-NOTES §9.7) the sandbox chooses, and its README says so:

* the window slides over the last 60 **real** seconds (the engine's timers run on real
  time; ``/_local/clock`` scaling does not speed the budget up). ``PUT /_local/rate-limit``
  may name a shorter window (``windowSeconds``): it then admits the same rate, scaled to
  the window (``limitPerMinute * windowSeconds / 60`` calls in any ``windowSeconds``), so a
  test sees the limit bite and free again in seconds instead of a minute;
* a call refused with 429 does not count against the window (a client that waits for
  ``Retry-After`` gets in then);
* ``Retry-After`` is the whole number of seconds until the oldest counted call leaves the
  window (at least 1);
* calls refused before authentication (401) or by injected faults are not counted.

Every call, counted or refused, is also recorded for the report: calls in the last minute
(always 60 s, whatever the limiting window) by route template and by caller, and the
totals since start or the last reset, so a benchmark reads the load from the server's side.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0
"""Dfns's window, and the report's "last minute"."""
MIN_WINDOW_SECONDS = 1.0
DEFAULT_LIMIT = 1000
TRIAL_LIMIT = 100


@dataclass
class _Seen:
    at: float
    route: str
    caller: str
    limited: bool


@dataclass
class RateLimiter:
    """A sliding-window log of the org's calls; ``limit_per_minute`` 0 turns limiting off.

    ``window_seconds`` is the limiting window: ``limit_per_window`` calls are admitted in any
    such window (the per-minute figure scaled to it).
    """

    limit_per_minute: int
    clock: Callable[[], float] = time.monotonic
    window_seconds: float = WINDOW_SECONDS
    _counted: deque[float] = field(default_factory=deque)
    _seen: deque[_Seen] = field(default_factory=deque)
    _totals: Counter[str] = field(default_factory=Counter)
    _limited_totals: Counter[str] = field(default_factory=Counter)

    def admit(self, route: str, caller: str) -> float | None:
        """Count one call; ``None`` if it may go on, else the seconds to wait (Retry-After)."""
        now = self.clock()
        self._forget(now)
        limited = 0 < self.limit_per_window <= len(self._counted)
        self._seen.append(_Seen(now, route, caller, limited))
        if limited:
            self._limited_totals[route] += 1
            return max(1.0, math.ceil(self._counted[0] + self.window_seconds - now))
        self._counted.append(now)
        self._totals[route] += 1
        return None

    @property
    def limit_per_window(self) -> int:
        """Calls admitted in any ``window_seconds``; 0 when limiting is off."""
        if self.limit_per_minute == 0:
            return 0
        return math.floor(self.limit_per_minute * self.window_seconds / WINDOW_SECONDS)

    def set_limit(self, limit_per_minute: int, window_seconds: float = WINDOW_SECONDS) -> None:
        """Limit the org to ``limit_per_minute``, counted over ``window_seconds``.

        Raises ``ValueError`` (naming the field) and changes nothing when the figures cannot
        make a limit: a negative rate, a window outside 1 to 60 s, or a window that would admit
        no call at all.
        """
        if limit_per_minute < 0:
            raise ValueError("limitPerMinute must be 0 (off) or more")
        if not MIN_WINDOW_SECONDS <= window_seconds <= WINDOW_SECONDS:
            raise ValueError(
                f"windowSeconds must be from {MIN_WINDOW_SECONDS:g} to {WINDOW_SECONDS:g}"
                f" (got {window_seconds:g})"
            )
        if 0 < limit_per_minute * window_seconds < WINDOW_SECONDS:
            raise ValueError(
                f"windowSeconds {window_seconds:g} admits no call at {limit_per_minute} a"
                f" minute: limitPerMinute * windowSeconds / 60 must be at least 1"
            )
        self.limit_per_minute = limit_per_minute
        self.window_seconds = float(window_seconds)
        self._forget(self.clock())

    def reset(self) -> None:
        """Forget every call (``/_local/reset``); the limit stays."""
        self._counted.clear()
        self._seen.clear()
        self._totals.clear()
        self._limited_totals.clear()

    def report(self) -> dict[str, Any]:
        """The ``/_local/rate-limit`` document."""
        self._forget(self.clock())
        recent = list(self._seen)
        allowed = [s for s in recent if not s.limited]
        limited = [s for s in recent if s.limited]
        return {
            "limitPerMinute": self.limit_per_minute or None,
            "windowSeconds": self.window_seconds,
            "limitPerWindow": self.limit_per_window or None,
            "lastMinute": {
                "total": len(allowed),
                "limited": len(limited),
                "byRoute": _sorted(Counter(s.route for s in allowed)),
                "byCaller": _sorted(Counter(s.caller for s in allowed)),
                "limitedByRoute": _sorted(Counter(s.route for s in limited)),
                "limitedByCaller": _sorted(Counter(s.caller for s in limited)),
            },
            "sinceReset": {
                "total": sum(self._totals.values()),
                "limited": sum(self._limited_totals.values()),
                "byRoute": _sorted(self._totals),
                "limitedByRoute": _sorted(self._limited_totals),
            },
        }

    def _forget(self, now: float) -> None:
        window = now - self.window_seconds
        while self._counted and self._counted[0] <= window:
            self._counted.popleft()
        horizon = now - WINDOW_SECONDS
        while self._seen and self._seen[0].at <= horizon:
            self._seen.popleft()


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
