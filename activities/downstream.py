"""Downstream deliveries of outcomes: an HTTP callback and an append-only ledger.

Both are idempotent under Temporal's at-least-once execution:

* **callback**: ``POST`` of ``{"event", "idempotency_key", "payload"}`` as JSON, with
  ``Idempotency-Key`` and ``Signgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>.<body>">`` headers, retried until the receiver answers 2xx. A receiver checks the
  signature with :func:`verify_callback_signature` and drops repeats by idempotency key.
* **ledger**: one row per idempotency key in an append-only table (SQLite by default:
  triggers refuse ``UPDATE`` and ``DELETE``); a retried append is a no-op that reports
  ``first_time=False``.

Secrets and ledgers are named in workflow input and resolved here, from what the worker
was given, so no secret enters history. An unknown name is retried (the error says which
name): a redeployed worker that knows it completes the delivery, nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import callback_failed
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import CallbackInput, DeliveryReceipt, LedgerInput
from signgate.logs import get_logger

__all__ = [
    "SIGNATURE_HEADER",
    "CallbackSignatureError",
    "DownstreamActivities",
    "Ledger",
    "LedgerAppend",
    "LedgerRecord",
    "SqliteLedger",
    "callback_signature",
    "verify_callback_signature",
]

_log = get_logger("signgate.activities.downstream")

SIGNATURE_HEADER = "Signgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "Signgate-Event"


# --- callback signatures --------------------------------------------------------------------


class CallbackSignatureError(ValueError):
    """A callback's signature header is missing, malformed, stale or wrong."""


def callback_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Signgate-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_callback_signature(
    secret: bytes,
    header: str | None,
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> int:
    """Check a callback's signature over the raw body; return its timestamp.

    Raises :class:`CallbackSignatureError` when the header is missing or malformed, the
    timestamp is further than ``tolerance_seconds`` from ``now``, or no ``v1`` matches.
    """
    if not header:
        raise CallbackSignatureError(f"missing {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise CallbackSignatureError(f"malformed {SIGNATURE_HEADER} header")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise CallbackSignatureError(f"{SIGNATURE_HEADER} has no valid t=") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise CallbackSignatureError("callback timestamp outside the tolerance")
    expected = callback_signature(secret, timestamp, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise CallbackSignatureError("callback signature does not match")
    return timestamp


# --- ledger ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRecord:
    """One row of a ledger."""

    seq: int
    idempotency_key: str
    workflow_id: str
    record_kind: str
    outcome: str
    signature_id: str | None
    payload: dict[str, Any]
    recorded_at: str


@dataclass(frozen=True)
class LedgerAppend:
    """Result of an append: the row's sequence number and whether this call wrote it."""

    seq: int
    first_time: bool


class Ledger(Protocol):
    """Where outcomes are recorded. Implement it to record into your own store."""

    @property
    def name(self) -> str:
        """Where it writes, for receipts and logs (no credentials)."""
        ...

    async def append(self, entry: LedgerInput) -> LedgerAppend:
        """Record ``entry`` once per ``entry.idempotency_key``."""
        ...


_LEDGER_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS signgate_ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key TEXT NOT NULL UNIQUE,
        workflow_id TEXT NOT NULL,
        record_kind TEXT NOT NULL,
        outcome TEXT NOT NULL,
        signature_id TEXT,
        payload TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    """CREATE TRIGGER IF NOT EXISTS signgate_ledger_no_update
        BEFORE UPDATE ON signgate_ledger
        BEGIN SELECT RAISE(ABORT, 'signgate_ledger is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS signgate_ledger_no_delete
        BEFORE DELETE ON signgate_ledger
        BEGIN SELECT RAISE(ABORT, 'signgate_ledger is append-only'); END""",
)


class SqliteLedger:
    """An append-only ledger in one SQLite file (WAL mode, one connection per call)."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._ready = False

    @property
    def name(self) -> str:
        """The database file."""
        return f"sqlite:{self._path}"

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        if not self._ready:
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _LEDGER_SCHEMA:
                conn.execute(statement)
            self._ready = True
        return conn

    def _append(self, entry: LedgerInput) -> LedgerAppend:
        payload = json.dumps(entry.payload, sort_keys=True, separators=(",", ":"))
        recorded_at = datetime.now(UTC).isoformat()
        conn = self._connect()
        try:
            cursor = conn.execute(
                "INSERT INTO signgate_ledger (idempotency_key, workflow_id, record_kind, "
                "outcome, signature_id, payload, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(idempotency_key) DO NOTHING",
                (
                    entry.idempotency_key,
                    entry.workflow_id,
                    entry.record_kind,
                    entry.outcome,
                    entry.signature_id,
                    payload,
                    recorded_at,
                ),
            )
            first_time = cursor.rowcount == 1
            row = conn.execute(
                "SELECT seq FROM signgate_ledger WHERE idempotency_key = ?",
                (entry.idempotency_key,),
            ).fetchone()
        finally:
            conn.close()
        return LedgerAppend(seq=int(row[0]), first_time=first_time)

    async def append(self, entry: LedgerInput) -> LedgerAppend:
        """Record ``entry`` once; a repeated idempotency key returns the existing row."""
        return await asyncio.to_thread(self._append, entry)

    def _records(self) -> list[LedgerRecord]:
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT seq, idempotency_key, workflow_id, record_kind, outcome, signature_id, "
                "payload, recorded_at FROM signgate_ledger ORDER BY seq"
            ).fetchall()
        finally:
            conn.close()
        return [
            LedgerRecord(
                seq=r[0],
                idempotency_key=r[1],
                workflow_id=r[2],
                record_kind=r[3],
                outcome=r[4],
                signature_id=r[5],
                payload=json.loads(r[6]),
                recorded_at=r[7],
            )
            for r in rows
        ]

    async def records(self) -> list[LedgerRecord]:
        """Every row, oldest first."""
        return await asyncio.to_thread(self._records)


# --- activities -----------------------------------------------------------------------------


class DownstreamActivities:
    """Callback and ledger deliveries.

    ``http`` sends callbacks (its timeout bounds one attempt); ``callback_secrets`` maps a
    secret name to its HMAC key; ``ledgers`` maps a ledger name to a :class:`Ledger`.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        callback_secrets: Mapping[str, SecretStr],
        ledgers: Mapping[str, Ledger],
    ) -> None:
        self._http = http
        self._secrets = dict(callback_secrets)
        self._ledgers = dict(ledgers)

    def __repr__(self) -> str:
        return (
            f"DownstreamActivities(callback_secrets={sorted(self._secrets)}, "
            f"ledgers={sorted(self._ledgers)})"
        )

    @api.DELIVER_CALLBACK.implements
    async def deliver_callback(self, input: CallbackInput) -> DeliveryReceipt:
        """POST the payload with an HMAC signature; any non-2xx answer is retried."""
        spec = input.spec
        secret = self._secrets.get(spec.secret_name)
        if secret is None:
            raise ApplicationError(
                f"no callback secret named {spec.secret_name!r} is configured on this worker "
                f"(known: {sorted(self._secrets) or 'none'})",
                type=ids.ERR_MISCONFIGURED,
            )
        body = json.dumps(
            {
                "event": input.event,
                "idempotency_key": input.idempotency_key,
                "payload": input.payload,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode("utf-8")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: input.idempotency_key,
            EVENT_HEADER: input.event,
            SIGNATURE_HEADER: callback_signature(
                secret.get_secret_value().encode("utf-8"), timestamp, body
            ),
        }
        try:
            response = await self._http.post(spec.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise callback_failed(spec.url, error=exc) from None
        if not response.is_success:
            raise callback_failed(spec.url, status=response.status_code)
        attempt = activity.info().attempt
        _log.info(
            "callback.delivered",
            url=spec.url,
            status=response.status_code,
            idempotency_key=input.idempotency_key,
            attempt=attempt,
        )
        return DeliveryReceipt(
            kind="callback",
            target=spec.url,
            idempotency_key=input.idempotency_key,
            first_time=attempt == 1,
            detail=f"HTTP {response.status_code} on attempt {attempt}",
        )

    @api.RECORD_LEDGER.implements
    async def record_ledger(self, input: LedgerInput) -> DeliveryReceipt:
        """Append the outcome to the named ledger, once per idempotency key."""
        ledger = self._ledgers.get(input.spec.ledger)
        if ledger is None:
            raise ApplicationError(
                f"no ledger named {input.spec.ledger!r} is configured on this worker "
                f"(known: {sorted(self._ledgers) or 'none'})",
                type=ids.ERR_MISCONFIGURED,
            )
        try:
            result = await ledger.append(input)
        except sqlite3.Error as exc:
            raise ApplicationError(
                f"ledger {input.spec.ledger!r} append failed: {exc}", type=ids.ERR_DELIVERY_FAILED
            ) from None
        _log.info(
            "ledger.recorded",
            ledger=input.spec.ledger,
            seq=result.seq,
            first_time=result.first_time,
            idempotency_key=input.idempotency_key,
        )
        return DeliveryReceipt(
            kind="ledger",
            target=ledger.name,
            idempotency_key=input.idempotency_key,
            first_time=result.first_time,
            detail=f"row {result.seq}" + ("" if result.first_time else " (already recorded)"),
        )
