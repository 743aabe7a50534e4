"""Fault injection and the persisted sandbox clock, driven through ``/_local/`` only.

Faults live in the database (a restart keeps them). Rates are probabilities per request
(0..1); counts (``dropAfterCommit``, ``corruptSignatures``, ``failSignatures``) are
consumed one per matching event. Latency, 5xx and 429 apply only to Dfns paths, before
the request is handled, so an injected error never changes state. "Drop after commit"
lets the write commit and then aborts the connection without a response.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.db import Database, TableCache
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.validation import validate

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandbox_state (
        name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
]
_FAULTS = "faults"
_CLOCK = "clock"
_RANDOM = secrets.SystemRandom()


@dataclass(frozen=True)
class Faults:
    """The injectable faults; field names are the camelCase keys of ``/_local/faults``."""

    latencyMs: int = 0
    errorRate: float = 0.0
    errorStatus: int = 500
    rate429: float = 0.0
    retryAfterSeconds: int = 1
    dropAfterCommit: int = 0
    dropPathPrefix: str | None = None
    webhookLoss: float = 0.0
    webhookDuplicate: float = 0.0
    webhookReorder: int = 0
    webhookReorderHoldSeconds: float = 5.0
    webhookSeed: int | None = None
    corruptSignatures: int = 0
    failSignatures: int = 0

    def wire(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_NAMES = frozenset(f.name for f in fields(Faults))


class FaultService:
    """Reads and updates the fault settings and the clock state in the database."""

    def __init__(self, db: Database, *, defaults: Faults | None = None) -> None:
        self._db = db
        db.ensure_schema(_SCHEMA)
        self._defaults = defaults or Faults()
        # Every request reads the faults and only this service writes them.
        self._cache: TableCache[Faults] = TableCache(db)
        if self._db.query_one("SELECT name FROM sandbox_state WHERE name = ?", (_FAULTS,)) is None:
            self._save(self._defaults)

    # --- faults ----------------------------------------------------------------------------

    def get(self) -> Faults:
        return self._cache.get(self._load)

    def _load(self) -> Faults:
        row = self._db.query_one("SELECT value FROM sandbox_state WHERE name = ?", (_FAULTS,))
        stored = json.loads(row["value"]) if row is not None else {}
        return Faults(**{k: v for k, v in stored.items() if k in _FIELD_NAMES})

    def update(self, patch: dict[str, Any]) -> Faults:
        """Merge ``patch`` (validated against ``schemas/local-faults.json``) into the faults."""
        validate("local-faults", patch)
        with self._db.transaction():
            updated = replace(self.get(), **patch)
            self._save(updated)
        return updated

    def override(self, **values: Any) -> Faults:
        """Set faults from trusted code (CLI flags at start-up)."""
        return self.update(values)

    def reset(self) -> Faults:
        self._save(self._defaults)
        return self._defaults

    def _save(self, faults: Faults) -> None:
        self._db.execute(
            "INSERT INTO sandbox_state (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (_FAULTS, json.dumps(faults.wire())),
        )
        self._cache.invalidate()

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``."""
        return rate > 0 and _RANDOM.random() < rate

    def take(self, name: str, *, path: str | None = None) -> bool:
        """Consume one unit of counter fault ``name``; ``path`` is matched for drops."""
        if getattr(self.get(), name) == 0:
            return False  # the usual case: no transaction, no write
        with self._db.transaction():
            current = self.get()
            remaining = getattr(current, name)
            if not isinstance(remaining, int) or remaining <= 0:
                return False
            if (
                path is not None
                and current.dropPathPrefix
                and not path.startswith(current.dropPathPrefix)
            ):
                return False
            counts: dict[str, Any] = {name: remaining - 1}
            self._save(replace(current, **counts))
            return True

    # --- the clock ---------------------------------------------------------------------------

    def restore_clock(self) -> Clock:
        """A clock continuing where the stored one was (sandbox time runs while stopped)."""
        row = self._db.query_one("SELECT value FROM sandbox_state WHERE name = ?", (_CLOCK,))
        if row is None:
            return Clock()
        state = json.loads(row["value"])
        real_now = time.time()
        virtual_now = state["virtual"] + (real_now - state["real"]) * state["scale"]
        return Clock(offset_seconds=virtual_now - real_now, scale=state["scale"])

    def save_clock(self, clock: Clock) -> None:
        state = {"real": time.time(), "virtual": clock.now_ts(), "scale": clock.scale}
        self._db.execute(
            "INSERT INTO sandbox_state (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (_CLOCK, json.dumps(state)),
        )

    def clear_clock(self) -> None:
        self._db.execute("DELETE FROM sandbox_state WHERE name = ?", (_CLOCK,))


def clock_wire(clock: Clock) -> dict[str, Any]:
    """The ``/_local/clock`` view of the sandbox clock."""
    return {
        "now": isoformat(clock.now()),
        "nowTs": clock.now_ts(),
        "scale": clock.scale,
        "offsetSeconds": clock.offset_seconds,
    }


def apply_clock_change(clock: Clock, body: dict[str, Any]) -> None:
    """Apply ``{"advanceSeconds"?, "scale"?}`` (validated) to ``clock``."""
    validate("local-clock", body)
    try:
        if "advanceSeconds" in body:
            clock.advance(float(body["advanceSeconds"]))
        if "scale" in body:
            clock.set_scale(float(body["scale"]))
    except ValueError as exc:
        raise SandboxError(400, f"body: {exc}") from None
