"""The sandbox's clock: real time by default, advanced or scaled through ``/_local/``.

Every time the sandbox reads (request dates, approval expiry, webhook retry schedule,
``Signed -> Confirmed`` delay) comes from one :class:`Clock`, so tests can jump days
ahead or run the webhook retry schedule a thousand times faster. The offset and scale
are persisted by the caller (see ``faults``) so a restart keeps the same notion of now.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Sandbox time = anchor + (real elapsed since anchor) * scale + offset."""

    def __init__(self, *, offset_seconds: float = 0.0, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("clock scale must be > 0")
        self._lock = threading.Lock()
        self._real_anchor = time.time()
        self._virtual_anchor = self._real_anchor + offset_seconds
        self._scale = scale

    def now_ts(self) -> float:
        """Sandbox time as unix seconds."""
        with self._lock:
            return self._virtual_anchor + (time.time() - self._real_anchor) * self._scale

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ts(), tz=UTC)

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def offset_seconds(self) -> float:
        """How far sandbox time is ahead of real time, right now."""
        return self.now_ts() - time.time()

    def advance(self, seconds: float) -> None:
        """Jump sandbox time forward (never backward: statuses only move forward)."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._virtual_anchor += seconds

    def set_scale(self, scale: float) -> None:
        """Make sandbox time run ``scale`` times faster than real time from now on."""
        if scale <= 0:
            raise ValueError("clock scale must be > 0")
        current = self.now_ts()
        with self._lock:
            self._real_anchor = time.time()
            self._virtual_anchor = current
            self._scale = scale

    def real_seconds(self, sandbox_seconds: float) -> float:
        """How long to really sleep for ``sandbox_seconds`` of sandbox time to pass."""
        return max(0.0, sandbox_seconds / self._scale)

    def after(self, delta: timedelta) -> datetime:
        return self.now() + delta


def isoformat(moment: datetime) -> str:
    """Dfns date format: ISO 8601 UTC with milliseconds and a ``Z``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )
