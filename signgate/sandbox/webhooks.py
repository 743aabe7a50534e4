"""Dfns-style webhooks: configuration, a persisted outbox, and a signing, retrying dispatcher.

Wire behaviour follows Dfns (API-NOTES §4): every delivery is a compact-JSON POST carrying
``X-DFNS-WEBHOOK-SIGNATURE: sha256=<hex HMAC-SHA256(secret, exact body bytes)>``; only HTTP
200 counts as delivered; a failed delivery is retried at +1 min, +12 min, +2 h and +1 d from
the first attempt (five attempts in all), each attempt a new ``whe-`` event with ``retryOf``
naming the previous one; a retry that falls due while its webhook is disabled or deleted is
cancelled. All times, the retry schedule included, run on the sandbox :class:`Clock`.

Where Dfns publishes nothing, the sandbox chooses, and says so here:

* **Secret**: ``whs-`` followed by 32 ASCII letters and digits, the shape of the example in
  Dfns's old "Create Webhook" page. It is returned by :meth:`WebhookService.create` only.
* **Ping**: a fake event of kind ``webhook.ping`` (not a Dfns kind, so no receiver mistakes it
  for a real one) with ``data = {"webhookId", "message"}``, sent whatever the webhook's status,
  never stored and never subject to faults.
* **Failed attempts without a response** record ``status`` as a Node-style error code (Dfns's
  docs: "a http status code ... or another error code otherwise"): ``ETIMEDOUT`` (no answer
  within ``delivery_timeout`` real seconds), ``ECONNREFUSED`` (could not connect) or
  ``ECONNRESET`` (any other transport failure). ``error`` holds the reason phrase or message.
* **Outbox**: one row per attempt still to be made; a finished attempt leaves the outbox and
  becomes a stored WebhookEvent (the only kind of row the events list shows), and a failed one
  schedules the next attempt's row in the same transaction. Rows are claimed (marked in
  flight) before delivery, so the dispatcher never sends a row twice. A row still marked in
  flight when the process died is delivered again as the same attempt, with the same id,
  when a new dispatcher starts: Dfns does not promise uniqueness, and nothing is lost.
* **Order**: up to ``max_concurrency`` deliveries are in flight at once, but the events of one
  signature request (its approval's included) go to each webhook one after another, in the
  order they happened. At Dfns the signing itself puts seconds between a request's
  ``policy.approval.resolved`` and its ``wallet.signature.signed``; the sandbox signs at once,
  and without this the two would race on the wire. Dfns promises no order, so the
  ``reorder_window`` fault breaks it on purpose, and a failed attempt's retry comes after the
  events that followed it.
* **Lists** are newest first; ``limit`` defaults to 100 and must be 1..200; pagination tokens
  are opaque. Stored events older than ``retention_days`` (31) sandbox days are pruned.

Faults (:class:`WebhookFaults`) imitate what Dfns warns about: lost, duplicated and reordered
deliveries. They are drawn from seeded generators in the order rows are claimed, so a given
seed and a given sequence of events always give the same faults.

Callers must not hold a database transaction across an ``await``: :meth:`publish` runs inside
the caller's transaction and the dispatcher reads the same connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import functools
import hashlib
import hmac
import json
import random
import secrets
import sqlite3
import ssl
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jsonschema
import structlog

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.db import Database, TableCache
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.ids import new_id

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "PING_KIND",
    "SIGNATURE_HEADER",
    "WebhookFaults",
    "WebhookService",
    "encode_body",
    "event_kinds",
    "sign_body",
]

SIGNATURE_HEADER: Final = "X-DFNS-WEBHOOK-SIGNATURE"
DEFAULT_RETRY_SCHEDULE: Final[tuple[float, ...]] = (60.0, 720.0, 7200.0, 86400.0)
PING_KIND: Final = "webhook.ping"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 200

_SECRET_ALPHABET: Final = string.ascii_letters + string.digits
# The dispatcher re-reads the outbox at least this often (real seconds), so a clock change
# nobody announced through wake() still takes effect promptly.
_MAX_IDLE_SECONDS: Final = 1.0
_PRUNE_EVERY_SECONDS: Final = 60.0

JsonDict = dict[str, Any]

_log = structlog.get_logger("signgate.sandbox.webhooks")

_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS webhooks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        secret TEXT NOT NULL,
        doc TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS webhook_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        date TEXT NOT NULL,
        data TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        retry_of TEXT,
        first_ts REAL,
        due_ts REAL NOT NULL,
        claim TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox(due_ts, seq)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_webhook ON webhook_outbox(webhook_id)",
    """
    CREATE TABLE IF NOT EXISTS webhook_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        delivery_failed INTEGER NOT NULL,
        sent_ts REAL NOT NULL,
        doc TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS webhook_events_list ON webhook_events(webhook_id, seq)",
    "CREATE INDEX IF NOT EXISTS webhook_events_sent ON webhook_events(sent_ts)",
)


# --- wire helpers -------------------------------------------------------------------------


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes Dfns would send: compact JSON, non-ASCII kept as UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-DFNS-WEBHOOK-SIGNATURE`` value for ``body``: ``sha256=<lowercase hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@functools.cache
def _schemas() -> JsonDict:
    text = resources.files("signgate.sandbox").joinpath("schemas/webhooks.json").read_text()
    loaded: JsonDict = json.loads(text)
    return loaded


@functools.cache
def _validator(name: str) -> Any:
    defs = _schemas()["$defs"]
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})


@functools.cache
def event_kinds() -> frozenset[str]:
    """Every event kind a webhook can subscribe to (SPEC 1.578.2), without ``"*"``."""
    kind = _schemas()["$defs"]["ListWebhookEventsQuery"]["properties"]["kind"]
    return frozenset(kind["enum"])


def _field(path: Sequence[Any], name: str | None = None) -> str:
    text = ""
    for part in [*path, *([name] if name is not None else [])]:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _enum_values(error: jsonschema.ValidationError) -> list[Any]:
    if error.validator == "enum":
        return list(error.validator_value)
    values: list[Any] = []
    for sub in error.validator_value if error.validator == "anyOf" else ():
        values.extend(sub.get("enum", ()))
    return values


def _schema_error(error: jsonschema.ValidationError) -> SandboxError:
    path = list(error.absolute_path)
    field = _field(path)
    keyword = error.validator
    instance = error.instance
    if keyword == "type" and not path:
        return SandboxError(400, "request body must be a JSON object")
    if keyword == "required":
        missing = next(p for p in error.validator_value if p not in instance)
        name = _field(path, missing)
        return SandboxError(400, f"{name} is required", details={"field": name})
    if keyword == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(key for key in instance if key not in allowed)[0]
        name = _field(path, extra)
        return SandboxError(400, f"{name} is not an allowed field", details={"field": name})
    details: JsonDict = {"field": field}
    if keyword == "type":
        message = f"{field} must be of type {error.validator_value}"
    elif keyword in ("enum", "anyOf"):
        values = _enum_values(error)
        details["allowed"] = values
        shown = (
            ", ".join(map(str, values))
            if len(values) <= 5
            else f"the {len(values)} values in details.allowed"
        )
        message = f"{field} must be one of {shown}, got {instance!r}"
    elif keyword == "maxLength":
        message = f"{field} must be at most {error.validator_value} characters"
    elif keyword == "minItems":
        message = f"{field} must contain at least {error.validator_value} item(s)"
    else:
        message = f"{field}: {error.message}"
    return SandboxError(400, message, details=details)


def _validated(schema_name: str, body: Any) -> JsonDict:
    errors = list(_validator(schema_name).iter_errors(body))
    if errors:
        # Shallowest first, then document order: the message names the outermost mistake.
        errors.sort(key=lambda e: len(e.absolute_path))
        raise _schema_error(errors[0])
    checked: JsonDict = body
    return checked


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid or any(c.isspace() for c in url):
        raise SandboxError(400, "url must be a valid http or https URL", details={"field": "url"})


def _limit(limit: int | str | None) -> int:
    if limit is None or limit == "":
        return DEFAULT_LIMIT
    if isinstance(limit, str):
        if not limit.isdecimal():
            raise SandboxError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
        limit = int(limit)
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise SandboxError(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"seq": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        seq = json.loads(raw)["seq"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        seq = None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise SandboxError(400, "paginationToken is invalid")
    return seq


def _delivery_failed(value: bool | str | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise SandboxError(400, "deliveryFailed must be true or false")


def _subject(data: str) -> str | None:
    """The signature request an event's ``data`` is about (directly or via its approval)."""
    try:
        doc = json.loads(data)
        request = doc.get("signatureRequest")
        if request is None:
            request = doc.get("approval", {}).get("activity", {}).get("signatureRequest")
        subject = request.get("id") if isinstance(request, dict) else None
    except (ValueError, AttributeError):
        return None
    return subject if isinstance(subject, str) else None


def _date(ts: float) -> str:
    return isoformat(datetime.fromtimestamp(ts, tz=UTC))


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookFaults:
    """Delivery faults to test a consumer's idempotency and ordering assumptions.

    * ``loss_rate``: share of attempts recorded as delivered (``status "200"``, not failed, no
      retry) but never POSTed: Dfns's "we sent it and it vanished".
    * ``duplicate_rate``: share of attempts POSTed twice, same bytes back to back; the first
      response decides the outcome.
    * ``reorder_window``: when >= 2, due deliveries are held back until that many are due (or
      the oldest has waited ``reorder_hold_seconds`` of sandbox time), then that window is
      shuffled and delivered one after another in the shuffled order.
    * ``seed``: makes every draw above reproducible; ``None`` draws from the OS.
    """

    loss_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_window: int = 0
    reorder_hold_seconds: float = 5.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss_rate", "duplicate_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number from 0 to 1")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1")
        if isinstance(self.reorder_window, bool) or not isinstance(self.reorder_window, int):
            raise ValueError("reorder_window must be an integer >= 0")
        if self.reorder_window < 0:
            raise ValueError("reorder_window must be an integer >= 0")
        hold = self.reorder_hold_seconds
        if isinstance(hold, bool) or not isinstance(hold, int | float) or hold < 0:
            raise ValueError("reorder_hold_seconds must be a number >= 0")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError("seed must be an integer or null")

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> WebhookFaults:
        """Build from camelCase JSON (``lossRate``, ``duplicateRate``, ``reorderWindow``,
        ``reorderHoldSeconds``, ``seed``); any mistake is a 400 :class:`SandboxError`."""
        names = {
            "lossRate": "loss_rate",
            "duplicateRate": "duplicate_rate",
            "reorderWindow": "reorder_window",
            "reorderHoldSeconds": "reorder_hold_seconds",
            "seed": "seed",
        }
        unknown = sorted(set(body) - set(names))
        if unknown:
            raise SandboxError(400, f"{unknown[0]} is not an allowed field")
        try:
            return cls(**{names[key]: value for key, value in body.items()})
        except ValueError as exc:
            raise SandboxError(400, str(exc)) from None

    def to_dict(self) -> JsonDict:
        """The camelCase JSON form :meth:`from_dict` reads."""
        return {
            "lossRate": self.loss_rate,
            "duplicateRate": self.duplicate_rate,
            "reorderWindow": self.reorder_window,
            "reorderHoldSeconds": self.reorder_hold_seconds,
            "seed": self.seed,
        }


def _rng(seed: int | None, stream: str) -> random.Random:
    # String seeds are hashed with SHA-512 by ``random``, so they are stable across runs.
    return random.Random(f"{seed}:{stream}") if seed is not None else random.Random()  # noqa: S311


# --- dispatcher internals -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class _Delivery:
    event_id: str
    webhook_id: str
    kind: str
    date: str
    data: str
    attempt: int
    retry_of: str | None
    first_ts: float | None
    url: str
    secret: str
    lost: bool
    duplicated: bool
    subject: str | None = None  # the signature request it is about, when there is one

    def __repr__(self) -> str:
        return f"_Delivery({self.event_id}, attempt={self.attempt}, webhook={self.webhook_id})"


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: str
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status == "200"


Batch = list[_Delivery]


class WebhookService:
    """Webhook configurations, their events, and the dispatcher that delivers them.

    ``http`` is an injected client (the service makes its own, ignoring proxy environment
    variables, when it is ``None``). ``retry_schedule`` holds the delays from the first attempt
    in sandbox seconds; ``delivery_timeout`` is in real seconds. ``max_concurrency`` bounds
    simultaneous deliveries so a slow receiver cannot hold back the others.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        http: httpx.AsyncClient | None = None,
        retry_schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
        delivery_timeout: float = 10.0,
        max_concurrency: int = 16,
        retention_days: float = 31.0,
    ) -> None:
        if any(delay < 0 for delay in retry_schedule):
            raise ValueError("retry delays must be >= 0")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self._db = db
        self._clock = clock
        self._http = http
        # Without an injected client: one client (one connection) per delivery in flight.
        # httpcore's pool checks each of its connections on every request, so one shared
        # pool of max_concurrency connections cost more than the POSTs themselves.
        self._idle: builtins.list[httpx.AsyncClient] = []
        self._made: builtins.list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None
        self._schedule = tuple(float(delay) for delay in retry_schedule)
        self._timeout = delivery_timeout
        self._max_concurrency = max_concurrency
        # Signature requests with a delivery in flight: their next events wait (see "Order").
        self._busy: dict[str, int] = {}
        self._subjects: dict[str, str | None] = {}  # event id -> subject, until it is sent
        self._retention_seconds = retention_days * 86400.0
        # Identifies this process's claims, so a new dispatcher can tell rows abandoned by a
        # dead one from its own.
        self._claim_token = uuid.uuid4().hex
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._last_prune = -_PRUNE_EVERY_SECONDS
        # (webhook id, subscribed kinds) of the enabled webhooks, read on every publish.
        self._subscriptions: TableCache[tuple[tuple[str, frozenset[str]], ...]] = TableCache(db)
        self.set_faults(WebhookFaults())
        db.ensure_schema(_SCHEMA)

    @property
    def max_attempts(self) -> int:
        """Attempts per event, the first one included."""
        return len(self._schedule) + 1

    # --- configuration ----------------------------------------------------------------------

    def create(self, body: Any) -> JsonDict:
        """``POST /webhooks``: the Webhook plus its ``secret`` (never returned again)."""
        request = _validated("CreateWebhookRequest", body)
        _check_url(request["url"])
        now = _date(self._clock.now_ts())
        webhook: JsonDict = {
            "id": new_id("wh"),
            "url": request["url"],
            "events": list(request["events"]),
            "status": request.get("status", "Enabled"),
        }
        if "description" in request:
            webhook["description"] = request["description"]
        webhook["dateCreated"] = now
        webhook["dateUpdated"] = now
        secret = "whs-" + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(32))
        self._db.execute(
            "INSERT INTO webhooks (id, status, secret, doc) VALUES (?, ?, ?, ?)",
            (webhook["id"], webhook["status"], secret, json.dumps(webhook)),
        )
        self._subscriptions.invalidate()
        _log.info("webhook.created", webhook_id=webhook["id"], events=webhook["events"])
        return {**webhook, "secret": secret}

    def get(self, webhook_id: str) -> JsonDict:
        """``GET /webhooks/{webhookId}`` (no secret)."""
        row = self._webhook_row(webhook_id)
        webhook: JsonDict = json.loads(row["doc"])
        return webhook

    def list(
        self, *, limit: int | str | None = None, pagination_token: str | None = None
    ) -> JsonDict:
        """``GET /webhooks``, newest first."""
        size = _limit(limit)
        after = _decode_token(pagination_token)
        rows = self._db.query(
            "SELECT seq, doc FROM webhooks WHERE (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?",
            (after, after, size + 1),
        )
        return self._page(rows, size)

    def update(self, webhook_id: str, body: Any) -> JsonDict:
        """``PUT /webhooks/{webhookId}``: replace the given fields; pending retries are kept."""
        request = _validated("UpdateWebhookRequest", body)
        if "url" in request:
            _check_url(request["url"])
        with self._db.transaction():
            webhook = self.get(webhook_id)
            for name in ("url", "events", "status", "description"):
                if name in request:
                    webhook[name] = request[name]
            webhook["dateUpdated"] = _date(self._clock.now_ts())
            self._db.execute(
                "UPDATE webhooks SET status = ?, doc = ? WHERE id = ?",
                (webhook["status"], json.dumps(webhook), webhook_id),
            )
            self._subscriptions.invalidate()
        self.wake()
        return webhook

    def delete(self, webhook_id: str) -> JsonDict:
        """``DELETE /webhooks/{webhookId}``: its pending attempts and stored events go with it."""
        deleted = self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        self._subscriptions.invalidate()
        if not deleted:
            raise self._not_found(webhook_id)
        _log.info("webhook.deleted", webhook_id=webhook_id)
        return {"deleted": True}

    # --- events -----------------------------------------------------------------------------

    def list_events(
        self,
        webhook_id: str,
        *,
        kind: str | None = None,
        delivery_failed: bool | str | None = None,
        limit: int | str | None = None,
        pagination_token: str | None = None,
    ) -> JsonDict:
        """``GET /webhooks/{webhookId}/events``: delivery attempts made, newest first."""
        self._webhook_row(webhook_id)
        if kind is not None and kind not in event_kinds():
            raise SandboxError(400, f"kind must be a webhook event kind, got {kind!r}")
        failed = _delivery_failed(delivery_failed)
        size = _limit(limit)
        after = _decode_token(pagination_token)
        self._prune()
        rows = self._db.query(
            "SELECT seq, doc FROM webhook_events WHERE webhook_id = ?"
            " AND (? IS NULL OR kind = ?) AND (? IS NULL OR delivery_failed = ?)"
            " AND (? IS NULL OR seq < ?) ORDER BY seq DESC LIMIT ?",
            (webhook_id, kind, kind, failed, failed, after, after, size + 1),
        )
        return self._page(rows, size)

    def get_event(self, webhook_id: str, event_id: str) -> JsonDict:
        """``GET /webhooks/{webhookId}/events/{webhookEventId}``."""
        self._webhook_row(webhook_id)
        self._prune()
        row = self._db.query_one(
            "SELECT doc FROM webhook_events WHERE webhook_id = ? AND id = ?", (webhook_id, event_id)
        )
        if row is None:
            raise SandboxError(
                404,
                "webhook event not found",
                details={"webhookId": webhook_id, "webhookEventId": event_id},
            )
        event: JsonDict = json.loads(row["doc"])
        return event

    def outbox(self) -> builtins.list[JsonDict]:
        """Attempts not made yet (a sandbox-only view for ``/_local/``), soonest first."""
        rows = self._db.query(
            "SELECT event_id, webhook_id, kind, attempt, retry_of, due_ts, claim"
            " FROM webhook_outbox ORDER BY due_ts, seq"
        )
        entries: builtins.list[JsonDict] = []
        for row in rows:
            entry: JsonDict = {
                "eventId": row["event_id"],
                "webhookId": row["webhook_id"],
                "kind": row["kind"],
                "deliveryAttempt": row["attempt"],
                "dueDate": _date(row["due_ts"]),
                "inFlight": row["claim"] is not None,
            }
            if row["retry_of"] is not None:
                entry["retryOf"] = row["retry_of"]
            entries.append(entry)
        return entries

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        """Queue ``kind`` for every enabled webhook subscribed to it or to ``"*"``.

        Synchronous and cheap: it joins the caller's transaction (nothing is sent if that rolls
        back) and wakes the dispatcher. Safe to call from any thread.
        """
        if kind not in event_kinds():
            raise ValueError(f"unknown webhook event kind {kind!r}")
        targets = [
            webhook_id
            for webhook_id, events in self._subscriptions.get(self._load_subscriptions)
            if kind in events or "*" in events
        ]
        if not targets:
            return
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        now = self._clock.now_ts()
        with self._db.transaction():
            for webhook_id in targets:
                self._db.execute(
                    "INSERT INTO webhook_outbox (event_id, webhook_id, kind, date, data,"
                    " attempt, due_ts) VALUES (?, ?, ?, ?, ?, 1, ?)",
                    (new_id("whe"), webhook_id, kind, _date(now), text, now),
                )
        self.wake()

    def _load_subscriptions(self) -> tuple[tuple[str, frozenset[str]], ...]:
        rows = self._db.query("SELECT id, doc FROM webhooks WHERE status = 'Enabled' ORDER BY seq")
        return tuple((row["id"], frozenset(json.loads(row["doc"])["events"])) for row in rows)

    def wake(self) -> None:
        """Make the dispatcher look at the outbox now (after a clock change, say). Thread-safe."""
        loop, event = self._loop, self._wake_event
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(event.set)

    # --- faults and reset ---------------------------------------------------------------------

    @property
    def faults(self) -> WebhookFaults:
        return self._faults

    def set_faults(self, faults: WebhookFaults) -> None:
        """Apply delivery faults from now on; the seeded generators restart."""
        self._faults = faults
        self._loss_rng = _rng(faults.seed, "loss")
        self._duplicate_rng = _rng(faults.seed, "duplicate")
        self._reorder_rng = _rng(faults.seed, "reorder")
        self.wake()

    def reset(self) -> None:
        """Forget every webhook, pending attempt and event (faults are kept)."""
        with self._db.transaction():
            self._db.execute("DELETE FROM webhook_outbox")
            self._db.execute("DELETE FROM webhook_events")
            self._db.execute("DELETE FROM webhooks")
            self._subscriptions.invalidate()
            self._subjects.clear()

    # --- delivery -------------------------------------------------------------------------------

    async def ping(self, webhook_id: str) -> JsonDict:
        """``POST /webhooks/{webhookId}/ping``: send a fake, unstored event; report the result."""
        row = self._webhook_row(webhook_id)
        webhook = json.loads(row["doc"])
        now = self._clock.now_ts()
        payload: JsonDict = {
            "id": new_id("whe"),
            "kind": PING_KIND,
            "date": _date(now),
            "data": {"webhookId": webhook_id, "message": "Test event from the signgate sandbox"},
            "timestampSent": int(now),
            "deliveryAttempt": 1,
        }
        outcome = await self._post(webhook["url"], row["secret"], encode_body(payload))
        result: JsonDict = {"status": outcome.status}
        if outcome.error is not None:
            result["error"] = outcome.error
        return result

    async def dispatch_due(self) -> int:
        """Make every attempt that is due now, wait for them, and return how many were made.

        :meth:`run` does this continuously; tests call it directly after moving the clock.
        """
        made = 0
        while True:
            batches, _ = self._claim(self._max_concurrency)
            if not batches:
                return made
            await asyncio.gather(*(self._deliver(batch) for batch in batches))
            made += sum(len(batch) for batch in batches)

    async def run(self) -> None:
        """The dispatcher loop: deliver due attempts until cancelled (one per service)."""
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        # Rows in flight under another claim belong to a dispatcher that died: send them again.
        self._db.execute(
            "UPDATE webhook_outbox SET claim = NULL WHERE claim IS NOT NULL AND claim != ?",
            (self._claim_token,),
        )
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake_event.clear()
                self._prune_periodically()
                next_ts: float | None = None
                capacity = self._max_concurrency - len(tasks)
                if capacity > 0:
                    batches, next_ts = self._claim(capacity)
                    for batch in batches:
                        task = asyncio.create_task(self._deliver(batch))
                        tasks.add(task)
                        task.add_done_callback(functools.partial(self._delivery_done, tasks))
                timeout = _MAX_IDLE_SECONDS
                if next_ts is not None:
                    wait = self._clock.real_seconds(next_ts - self._clock.now_ts())
                    timeout = min(timeout, wait)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as the event fires, and the dispatcher would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake_event.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A task cancelled before it ran never released its requests.
            self._busy.clear()
            self._subjects.clear()
            # Interrupted attempts go back to the queue; the next dispatcher makes them. If the
            # database is already closed, the next dispatcher reclaims them as abandoned.
            with contextlib.suppress(sqlite3.ProgrammingError):
                self._db.execute(
                    "UPDATE webhook_outbox SET claim = NULL WHERE claim = ?", (self._claim_token,)
                )
            self._loop = None
            self._wake_event = None
            await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients the service made (new ones are made when needed)."""
        made, self._made, self._idle = self._made, [], []
        for client in made:
            await client.aclose()

    def _checkout(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._idle:
            return self._idle.pop()
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        client = httpx.AsyncClient(
            trust_env=False,
            verify=self._tls,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._made.append(client)
        return client

    def _checkin(self, client: httpx.AsyncClient) -> None:
        if client is not self._http and client in self._made:
            self._idle.append(client)

    def _delivery_done(self, tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("webhook.dispatch_failed", exc_info=task.exception())
        if self._wake_event is not None:
            self._wake_event.set()

    def _claim(self, capacity: int) -> tuple[builtins.list[Batch], float | None]:
        """Claim due rows for delivery; also return when the outbox next needs a look."""
        now = self._clock.now_ts()
        faults = self._faults
        window = faults.reorder_window if faults.reorder_window >= 2 else 1
        batches: builtins.list[Batch] = []
        next_ts: float | None = None
        with self._db.transaction():
            self._cancel_disabled(now)
            if window == 1:
                batches, exhausted = self._in_order(now, capacity)
                rows = []
            else:
                rows = self._due_rows(now, capacity * window, 0)
                exhausted = len(rows) < capacity * window
            for start in range(0, len(rows), window):
                chunk = rows[start : start + window]
                if window > 1 and len(chunk) < window:
                    hold_until = chunk[0]["due_ts"] + faults.reorder_hold_seconds
                    if hold_until > now:
                        next_ts = hold_until
                        break
                batch = [self._claim_row(row) for row in chunk]
                if window > 1:
                    self._reorder_rng.shuffle(batch)
                batches.append(batch)
            if exhausted:
                upcoming = self._db.query_one(
                    "SELECT MIN(due_ts) AS due FROM webhook_outbox"
                    " WHERE claim IS NULL AND due_ts > ?",
                    (now,),
                )
                if upcoming is not None and upcoming["due"] is not None:
                    due = float(upcoming["due"])
                    next_ts = due if next_ts is None else min(next_ts, due)
        return batches, next_ts

    def _due_rows(self, now: float, limit: int, offset: int) -> builtins.list[Any]:
        return self._db.query(
            "SELECT o.*, w.secret, w.doc AS webhook FROM webhook_outbox o"
            " JOIN webhooks w ON w.id = o.webhook_id"
            " WHERE o.claim IS NULL AND o.due_ts <= ? ORDER BY o.due_ts, o.seq LIMIT ? OFFSET ?",
            (now, limit, offset),
        )

    def _in_order(self, now: float, capacity: int) -> tuple[builtins.list[Batch], bool]:
        """Up to ``capacity`` batches of the due rows: one per signature request and webhook,
        its events in order; a request with a delivery to that webhook still in flight waits
        for it. Also whether every due row was looked at."""
        batches: builtins.list[Batch] = []
        by_subject: dict[str, Batch] = {}
        page, offset = capacity * 4, 0
        while True:
            rows = self._due_rows(now, page, offset)
            for row in rows:
                subject = self._subject_of(row)
                if subject is not None and self._busy.get(subject):
                    offset += 1  # behind its request's delivery in flight (which wakes us)
                    continue
                batch = by_subject.get(subject) if subject is not None else None
                if batch is None:
                    if len(batches) >= capacity:
                        offset += 1  # no room for another batch; later rows may join one
                        continue
                    batch = []
                    batches.append(batch)
                    if subject is not None:
                        by_subject[subject] = batch
                batch.append(self._claim_row(row, subject))
            if len(rows) < page or len(batches) >= capacity:
                break
        for subject in by_subject:
            self._busy[subject] = self._busy.get(subject, 0) + 1
        return batches, len(rows) < page

    def _subject_of(self, row: Any) -> str | None:
        """Which request and webhook a row is about (per webhook: a slow receiver holds back
        no other); remembered per event, so a row waiting its turn is parsed once."""
        event_id = row["event_id"]
        if event_id not in self._subjects:
            request_id = _subject(row["data"])
            subject = None if request_id is None else f"{row['webhook_id']}/{request_id}"
            self._subjects[event_id] = subject
        return self._subjects[event_id]

    def _claim_row(self, row: Any, subject: str | None = None) -> _Delivery:
        self._db.execute(
            "UPDATE webhook_outbox SET claim = ? WHERE event_id = ? AND claim IS NULL",
            (self._claim_token, row["event_id"]),
        )
        faults = self._faults
        # Always draw both so one fault's rate does not shift the other's sequence.
        lost = self._loss_rng.random() < faults.loss_rate
        duplicated = self._duplicate_rng.random() < faults.duplicate_rate
        return _Delivery(
            event_id=row["event_id"],
            webhook_id=row["webhook_id"],
            kind=row["kind"],
            date=row["date"],
            data=row["data"],
            attempt=row["attempt"],
            retry_of=row["retry_of"],
            first_ts=row["first_ts"],
            url=json.loads(row["webhook"])["url"],
            secret=row["secret"],
            lost=lost,
            duplicated=duplicated,
            subject=subject,
        )

    def _cancel_disabled(self, now: float) -> None:
        """Dfns cancels an attempt that falls due while its webhook is disabled (§4.5)."""
        rows = self._db.query(
            "SELECT o.event_id, o.retry_of FROM webhook_outbox o JOIN webhooks w"
            " ON w.id = o.webhook_id WHERE o.claim IS NULL AND o.due_ts <= ?"
            " AND w.status != 'Enabled'",
            (now,),
        )
        for row in rows:
            self._db.execute("DELETE FROM webhook_outbox WHERE event_id = ?", (row["event_id"],))
            if row["retry_of"] is not None:
                self._forget_next_attempt(row["retry_of"])
            _log.info("webhook.retry_cancelled", event_id=row["event_id"])

    def _forget_next_attempt(self, event_id: str) -> None:
        previous = self._db.query_one("SELECT doc FROM webhook_events WHERE id = ?", (event_id,))
        if previous is not None:
            doc = json.loads(previous["doc"])
            doc.pop("nextAttemptDate", None)
            self._db.execute(
                "UPDATE webhook_events SET doc = ? WHERE id = ?", (json.dumps(doc), event_id)
            )

    async def _deliver(self, batch: Batch) -> None:
        try:
            await self._deliver_in_turn(batch)
        finally:
            for delivery in batch:
                self._subjects.pop(delivery.event_id, None)
            for subject in {d.subject for d in batch if d.subject is not None}:
                left = self._busy.pop(subject, 0) - 1
                if left > 0:
                    self._busy[subject] = left

    async def _deliver_in_turn(self, batch: Batch) -> None:
        for delivery in batch:
            sent_ts = self._clock.now_ts()
            payload: JsonDict = {
                "id": delivery.event_id,
                "kind": delivery.kind,
                "date": delivery.date,
                "data": json.loads(delivery.data),
                "timestampSent": int(sent_ts),
                "deliveryAttempt": delivery.attempt,
            }
            if delivery.retry_of is not None:
                payload["retryOf"] = delivery.retry_of
            body = encode_body(payload)
            if delivery.lost:
                outcome = _Outcome("200", None)
            else:
                outcome = await self._post(delivery.url, delivery.secret, body)
                if delivery.duplicated:
                    await self._post(delivery.url, delivery.secret, body)
            self._record(delivery, payload, sent_ts, outcome)

    async def _post(self, url: str, secret: str, body: bytes) -> _Outcome:
        client = self._checkout()
        try:
            return await self._post_with(client, url, secret, body)
        finally:
            self._checkin(client)

    async def _post_with(
        self, client: httpx.AsyncClient, url: str, secret: str, body: bytes
    ) -> _Outcome:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(secret, body)}
        try:
            response = await client.post(
                url, content=body, headers=headers, timeout=self._timeout, follow_redirects=False
            )
        except httpx.TimeoutException:
            return _Outcome("ETIMEDOUT", f"no response within {self._timeout:g} seconds")
        except httpx.ConnectError as exc:
            return _Outcome("ECONNREFUSED", str(exc) or "could not connect")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return _Outcome("ECONNRESET", str(exc) or type(exc).__name__)
        if response.status_code == 200:
            return _Outcome("200", None)
        reason = response.reason_phrase or f"HTTP {response.status_code}"
        return _Outcome(str(response.status_code), reason)

    def _record(
        self, delivery: _Delivery, payload: JsonDict, sent_ts: float, outcome: _Outcome
    ) -> None:
        event = dict(payload)
        event["status"] = outcome.status
        if outcome.error is not None:
            event["error"] = outcome.error
        event["deliveryFailed"] = not outcome.delivered
        first_ts = delivery.first_ts if delivery.first_ts is not None else sent_ts
        retry_due: float | None = None
        if not outcome.delivered and delivery.attempt <= len(self._schedule):
            retry_due = first_ts + self._schedule[delivery.attempt - 1]
            event["nextAttemptDate"] = _date(retry_due)
        with self._db.transaction():
            if not self._db.execute(
                "DELETE FROM webhook_outbox WHERE event_id = ? AND claim = ?",
                (delivery.event_id, self._claim_token),
            ):
                return  # the webhook was deleted (or the sandbox reset) meanwhile
            self._db.execute(
                "INSERT INTO webhook_events (id, webhook_id, kind, delivery_failed, sent_ts, doc)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    delivery.event_id,
                    delivery.webhook_id,
                    delivery.kind,
                    int(not outcome.delivered),
                    sent_ts,
                    json.dumps(event, ensure_ascii=False),
                ),
            )
            if retry_due is not None:
                self._db.execute(
                    "INSERT INTO webhook_outbox (event_id, webhook_id, kind, date, data, attempt,"
                    " retry_of, first_ts, due_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new_id("whe"),
                        delivery.webhook_id,
                        delivery.kind,
                        delivery.date,
                        delivery.data,
                        delivery.attempt + 1,
                        delivery.event_id,
                        first_ts,
                        retry_due,
                    ),
                )
        _log.info(
            "webhook.delivery_recorded",
            webhook_id=delivery.webhook_id,
            event_id=delivery.event_id,
            kind=delivery.kind,
            attempt=delivery.attempt,
            status=outcome.status,
            lost=delivery.lost,
            duplicated=delivery.duplicated,
        )

    # --- helpers ------------------------------------------------------------------------------

    def _webhook_row(self, webhook_id: str) -> Any:
        row = self._db.query_one("SELECT doc, secret FROM webhooks WHERE id = ?", (webhook_id,))
        if row is None:
            raise self._not_found(webhook_id)
        return row

    @staticmethod
    def _not_found(webhook_id: str) -> SandboxError:
        return SandboxError(404, "webhook not found", details={"webhookId": webhook_id})

    @staticmethod
    def _page(rows: Sequence[Any], size: int) -> JsonDict:
        page: JsonDict = {"items": [json.loads(row["doc"]) for row in rows[:size]]}
        if len(rows) > size:
            page["nextPageToken"] = _encode_token(rows[size - 1]["seq"])
        return page

    def _prune(self) -> None:
        cutoff = self._clock.now_ts() - self._retention_seconds
        self._db.execute("DELETE FROM webhook_events WHERE sent_ts < ?", (cutoff,))

    def _prune_periodically(self) -> None:
        loop = self._loop
        if loop is not None and loop.time() - self._last_prune >= _PRUNE_EVERY_SECONDS:
            self._last_prune = loop.time()
            self._prune()
