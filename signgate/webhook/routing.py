"""Deliver a verified webhook notice to the ``SignatureWorkflow`` it concerns, by signal.

**Routing without a lookup table.** The workflow derives its Dfns ``externalId`` from its
idempotency key (``sg-<slug>-<hash>``, :func:`signgate.ids.external_id_for`) and upserts it
as the ``SignGateExternalId`` search attribute before it submits anything. An event carries
the signature request, the request carries ``externalId``, and a visibility query
``SignGateExternalId = '<externalId>'`` names the workflow. Temporal's visibility index is
the only index; the receiver keeps just a bounded in-memory cache of recent answers, so the
second and later events of a request cost no query.

**Visibility is eventually consistent.** An event can beat the index (the first events of
a request come within milliseconds of the submit). An ``sg-`` id that is not visible yet is
looked up again with a short, bounded backoff; if it is still unknown, a first delivery
attempt is answered 503 so Dfns delivers it again. A *retry* (``deliveryAttempt`` >= 2,
a minute or more later at Dfns) that is still unknown is not a lag but a request of some
other deployment sharing the Dfns org: answered 200 as "not ours" so it is not retried for a
day. Ids without the ``sg-`` prefix, or events without ``externalId``, are not ours at once.

**Signal, not update.** A signal is acknowledged by the Temporal server alone, so events
are taken while every worker is down or restarting; an update would need a live worker and
turn a worker restart into webhook retries. The workflow treats both the same way (a hint
that makes it poll), ignores stale and duplicate hints, and only polls tell it the truth.

**Duplicates.** Dfns may deliver the same news several times, each attempt with a new event
id. Delivered news is remembered per request and status (per approval, status and
decisions for approvals), bounded, so a duplicate costs no signal and no history events.
Only a signal Temporal accepted is remembered: a failed one is retried by Dfns.

**Old news.** Once a request's ``Signed``, ``Confirmed``, ``Failed`` or ``Rejected`` reached
its workflow, a resolved-approval event for it arriving later is not signalled: the
workflow is finishing and reads the approval itself, and a signal landing while it
finishes would only make Temporal refuse that completion and run the task again. (A
transaction that waits for ``Confirmed`` then shows its approval resolved in the outcome,
not in the progress query.)

Outcomes: :class:`Delivery` (answer 200) or :class:`TemporalUnavailable` (answer 503).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal, Protocol

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from signgate import ids
from signgate.dfns.models import SignatureStatus
from signgate.logs import get_logger
from signgate.webhook.events import ApprovalNotice, IgnoredNotice, Notice, SignatureNotice

__all__ = [
    "FOREIGN_AFTER_ATTEMPT",
    "Delivery",
    "DeliveryOutcome",
    "EventRouter",
    "TemporalRouter",
    "TemporalUnavailable",
    "is_our_external_id",
]

FOREIGN_AFTER_ATTEMPT: Final = 2
"""From this ``deliveryAttempt`` on, an ``sg-`` id nobody can see is someone else's."""

_OUR_EXTERNAL_ID = re.compile(
    rf"^{re.escape(ids.EXTERNAL_ID_PREFIX)}[a-z0-9-]{{1,{ids.EXTERNAL_ID_MAX_LENGTH - 3}}}$"
)
_RPC_TIMEOUT: Final = timedelta(seconds=5)
_FIRST_RETRY_DELAY: Final = 0.05
_MAX_RETRY_DELAY: Final = 0.5
_MAX_MATCHES: Final = 20

_log = get_logger("signgate.webhook.routing")

DeliveryOutcome = Literal["delivered", "duplicate", "not-ours", "closed", "ignored"]

# Statuses at which a workflow stops waiting (Signed: unless it waits for Confirmed).
_SETTLING: Final = frozenset(
    {
        SignatureStatus.SIGNED,
        SignatureStatus.CONFIRMED,
        SignatureStatus.FAILED,
        SignatureStatus.REJECTED,
    }
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of a notice; every outcome is answered 200."""

    outcome: DeliveryOutcome
    detail: str
    workflow_ids: tuple[str, ...] = ()


class TemporalUnavailable(Exception):
    """Temporal could not take the event (down, timing out, or not indexed yet): answer 503."""


class EventRouter(Protocol):
    """Takes a verified notice to its workflow."""

    async def deliver(self, notice: Notice) -> Delivery: ...


def is_our_external_id(external_id: str | None) -> bool:
    """Whether ``external_id`` has the shape :func:`signgate.ids.external_id_for` gives.

    Checked before the id goes into a visibility query, so nothing else ever does.
    """
    return external_id is not None and _OUR_EXTERNAL_ID.fullmatch(external_id) is not None


@dataclass(frozen=True, slots=True)
class _Lookup:
    running: tuple[str, ...]
    closed: tuple[str, ...]


class _Bounded:
    """An insertion-ordered map that forgets its least recently used entries."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


ClientSource = Client | Callable[[], Awaitable[Client]]


class TemporalRouter:
    """:class:`EventRouter` over a Temporal client (see the module docstring).

    ``client`` is a connected client or a coroutine function that connects one; the
    connection is then made on the first event and retried on later ones if it fails.
    ``lookup_timeout`` bounds the wait for the visibility index (seconds).
    """

    def __init__(
        self,
        client: ClientSource,
        *,
        cache_size: int = 10_000,
        lookup_timeout: float = 3.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client: Client | None = None
        self._connect: Callable[[], Awaitable[Client]] | None = None
        if callable(client):
            self._connect = client
        else:
            self._client = client
        self._connecting = asyncio.Lock()
        self._routes = _Bounded(cache_size)
        self._delivered = _Bounded(cache_size)
        self._inflight: dict[str, asyncio.Future[_Lookup]] = {}
        self._lookup_timeout = lookup_timeout
        self._sleep = sleep
        self._monotonic = monotonic
        self.lookups = 0
        """Visibility queries made (a cache hit makes none)."""

    async def deliver(self, notice: Notice) -> Delivery:
        """Signal the workflow(s) ``notice`` concerns; raises :class:`TemporalUnavailable`."""
        if isinstance(notice, IgnoredNotice):
            return Delivery("ignored", notice.reason)
        external_id = notice.external_id
        if not is_our_external_id(external_id):
            return Delivery("not-ours", "the request's externalId is not one signgate made")
        assert external_id is not None
        if isinstance(notice, SignatureNotice) and not notice.worth_delivering:
            await self._warm(external_id)
            return Delivery("ignored", f"status {notice.raw_status or notice.status} moves nothing")
        seen_key = (external_id, *notice.dedupe_key)
        if self._delivered.get(seen_key) is not None:
            return Delivery("duplicate", "this news was already delivered")
        settled_key = (external_id, "settled")
        if (
            isinstance(notice, ApprovalNotice)
            and notice.event.status != "Pending"
            and self._delivered.get(settled_key) is not None
        ):
            return Delivery(
                "ignored", "the request is past its approval; the workflow reads it itself"
            )
        workflow_ids = await self._resolve(external_id, notice.attempt)
        if isinstance(workflow_ids, Delivery):
            return workflow_ids
        signalled = await self._signal_all(external_id, workflow_ids, notice)
        if not signalled:
            return Delivery("closed", "the workflow has already finished", workflow_ids)
        self._delivered.put(seen_key, True)
        if isinstance(notice, SignatureNotice) and notice.status in _SETTLING:
            self._delivered.put(settled_key, True)
        return Delivery("delivered", "signalled", signalled)

    # --- resolution -----------------------------------------------------------------------

    async def _resolve(self, external_id: str, attempt: int) -> tuple[str, ...] | Delivery:
        cached: tuple[str, ...] | None = self._routes.get(external_id)
        if cached is not None:
            return cached
        deadline = self._monotonic() + self._lookup_timeout
        delay = _FIRST_RETRY_DELAY
        while True:
            found = await self._lookup(external_id)
            if found.running:
                return found.running
            if found.closed:
                return Delivery("closed", "the workflow has already finished", found.closed)
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            await self._sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_RETRY_DELAY)
        if attempt >= FOREIGN_AFTER_ATTEMPT:
            return Delivery(
                "not-ours",
                f"no workflow has externalId {external_id} (delivery attempt {attempt})",
            )
        raise TemporalUnavailable(
            f"no workflow with externalId {external_id} is visible yet; deliver it again"
        )

    async def _warm(self, external_id: str) -> None:
        """Look the route up once, without waiting, so later events find it cached."""
        if self._routes.get(external_id) is not None:
            return
        try:
            await self._lookup(external_id)
        except TemporalUnavailable as exc:
            _log.debug("webhook.route_warm_failed", external_id=external_id, error=str(exc))

    async def _lookup(self, external_id: str) -> _Lookup:
        """One visibility query; concurrent callers for the same id share it."""
        pending = self._inflight.get(external_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Lookup] = asyncio.get_running_loop().create_future()
        self._inflight[external_id] = future
        try:
            found = await self._query(external_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Mark it retrieved: the sharers, if any, have seen it through their await.
            future.exception()
            raise
        else:
            future.set_result(found)
            if found.running:
                self._routes.put(external_id, found.running)
            return found
        finally:
            del self._inflight[external_id]

    async def _query(self, external_id: str) -> _Lookup:
        client = await self._get_client()
        self.lookups += 1
        query = f"{ids.SA_EXTERNAL_ID.name} = '{external_id}'"
        running: dict[str, None] = {}
        closed: dict[str, None] = {}
        try:
            async for execution in client.list_workflows(
                query, limit=_MAX_MATCHES, rpc_timeout=_RPC_TIMEOUT
            ):
                if execution.status == WorkflowExecutionStatus.RUNNING:
                    running[execution.id] = None
                else:
                    closed[execution.id] = None
        except RPCError as exc:
            raise TemporalUnavailable(f"visibility query failed: {exc.message}") from exc
        return _Lookup(tuple(running), tuple(i for i in closed if i not in running))

    async def _get_client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._connecting:
            if self._client is None:
                assert self._connect is not None
                try:
                    self._client = await self._connect()
                except (RuntimeError, OSError) as exc:
                    raise TemporalUnavailable(f"cannot connect to Temporal: {exc}") from exc
            return self._client

    # --- signalling -----------------------------------------------------------------------

    async def _signal_all(
        self, external_id: str, workflow_ids: tuple[str, ...], notice: Notice
    ) -> tuple[str, ...]:
        client = await self._get_client()
        name, argument = _signal_for(notice)
        signalled: list[str] = []
        for workflow_id in workflow_ids:
            try:
                await client.get_workflow_handle(workflow_id).signal(
                    name, argument, rpc_timeout=_RPC_TIMEOUT
                )
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue
                raise TemporalUnavailable(f"signal to {workflow_id} failed: {exc.message}") from exc
            signalled.append(workflow_id)
        if len(signalled) != len(workflow_ids):
            # A finished workflow: the next event for this id asks visibility again.
            self._routes.pop(external_id)
        return tuple(signalled)


def _signal_for(notice: Notice) -> tuple[str, Any]:
    if isinstance(notice, SignatureNotice):
        return ids.SIGNAL_STATUS_EVENT, notice.status_event()
    if isinstance(notice, ApprovalNotice):
        return ids.SIGNAL_APPROVAL_EVENT, notice.event
    raise TypeError(f"nothing to signal for {type(notice).__name__}")
