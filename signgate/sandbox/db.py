"""One SQLite file holds every piece of sandbox state, so a restart loses nothing.

Each sandbox module owns its tables: it passes its ``CREATE TABLE IF NOT EXISTS``
statements to :meth:`Database.ensure_schema` when it is constructed. Access is
serialised by one re-entrant lock because the ASGI handlers and the background
tasks (approval expiry, webhook dispatch) share a single connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")
K = TypeVar("K")


class Database:
    """A thread-safe wrapper around one SQLite connection in WAL mode."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        self._serial = 0  # counts outermost transactions, so caches can tell them apart
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")

    def ensure_schema(self, statements: Sequence[str]) -> None:
        """Create the tables and indexes a module needs, if they are missing."""
        with self.transaction():
            for statement in statements:
                self._conn.execute(statement)

    @property
    def in_transaction(self) -> bool:
        """True while a :meth:`transaction` block is open (on any thread)."""
        return self._depth > 0

    @property
    def transaction_serial(self) -> int:
        """Which outermost transaction is open (or was last): a new number for each."""
        return self._serial

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Run the block atomically; nested calls join the outer transaction."""
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._conn.execute("BEGIN IMMEDIATE")
                self._serial += 1
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class TableCache(Generic[T]):
    """A value read from tables only its owner writes, kept until the owner writes them again.

    The owner calls :meth:`invalidate` after every write to those tables. A value read inside
    the transaction that wrote them is not kept (that transaction may still roll back), nor is
    one whose read overlapped a write, so the cache never holds an uncommitted value.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._kept: tuple[T] | None = None
        self._version = 0
        self._written_in: int | None = None  # the transaction that last wrote, if any

    def get(self, load: Callable[[], T]) -> T:
        """The kept value, or ``load()`` (kept when it is safe to)."""
        with self._lock:
            if self._kept is not None:
                return self._kept[0]
            version = self._version
        value = load()
        with self._lock:
            written_now = (
                self._written_in is not None
                and self._db.in_transaction
                and self._db.transaction_serial == self._written_in
            )
            if version == self._version and not written_now:
                self._kept = (value,)
        return value

    def invalidate(self) -> None:
        """Forget the value: its tables were just written (possibly in an open transaction)."""
        with self._lock:
            self._version += 1
            self._kept = None
            self._written_in = self._db.transaction_serial if self._db.in_transaction else None


class RowCache(Generic[K, T]):
    """Values read from rows that never change once committed (keys, tokens, credentials).

    :meth:`keep` stores a value unless it was read inside a transaction, which may still roll
    back (bootstrap's). Misses are never stored, so a row created later is still found.
    """

    def __init__(self, db: Database, *, size: int = 4096) -> None:
        self._db = db
        self._size = size
        self._values: dict[K, T] = {}

    def get(self, key: K) -> T | None:
        return self._values.get(key)

    def keep(self, key: K, value: T) -> T:
        """Remember ``value`` for ``key`` when it is safe to; returns ``value``."""
        if not self._db.in_transaction and len(self._values) < self._size:
            self._values[key] = value
        return value
