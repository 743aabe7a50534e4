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

**A resolved approval travels with the status event.** Dfns sends a request's
``policy.approval.resolved`` and, moments later, its ``wallet.signature.signed`` (or
``.rejected``): two signals, two history events and a second workflow wake-up for one piece of
news, which in a mass approval is most of what Temporal does. With ``hold_approvals`` seconds
(the ``webhook_approval_hold_seconds`` setting), a resolved approval is answered 200 at once
and held: the request's next status event carries it in its own signal
(``StatusEvent.approval``), or, if none comes in time, it is signalled alone when the hold
ends (retried briefly if Temporal cannot take it). This is the one notice answered before
Temporal has it, and it may be lost: with a crash of the receiver while it holds it, or with
Temporal unreachable for the whole retry. Nothing depends on it: the workflow then reads the
approval itself for its outcome (one Dfns read), and its polls find the status as they would
without webhooks. Stopping the receiver (:meth:`TemporalRouter.aclose`) sends what it holds,
one try each within two seconds, so a stop never waits out the retries.

**Old news.** Once a request's ``Signed``, ``Confirmed``, ``Failed`` or ``Rejected`` reached
its workflow, a resolved-approval event for it arriving later is not signalled (nor is a
held one whose hold ends after that): the workflow is finishing and reads the approval
itself, and a signal landing while it finishes would only make Temporal refuse that
completion and run the task again. (A
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
# A held approval Temporal could not take when its hold ended is tried again after these.
_RELEASE_RETRY_DELAYS: Final = (0.5, 1.0, 2.0, 4.0)
_CLOSE_WITHIN: Final = 2.0

_log = get_logger("signgate.webhook.routing")

DeliveryOutcome = Literal["delivered", "held", "duplicate", "not-ours", "closed", "ignored"]

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

    async def aclose(self) -> None:
        """Send whatever is held back; the receiver calls it as it stops."""


def is_our_external_id(external_id: str | None) -> bool:
    """Whether ``external_id`` has the shape :func:`signgate.ids.external_id_for` gives.

    Checked before the id goes into a visibility query, so nothing else ever does.
    """
    return external_id is not None and _OUR_EXTERNAL_ID.fullmatch(external_id) is not None


@dataclass(frozen=True, slots=True)
class _Lookup:
    running: tuple[str, ...]
    closed: tuple[str, ...]


@dataclass(slots=True)
class _Held:
    """A resolved approval waiting to travel with its request's next status event."""

    notice: ApprovalNotice
    workflow_ids: tuple[str, ...]
    seen_key: tuple[Hashable, ...]
    release: asyncio.Task[None] | None = None


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
    ``lookup_timeout`` bounds the wait for the visibility index (seconds);
    ``hold_approvals`` how long a resolved approval waits for its request's status event
    (seconds; 0 signals it at once).
    """

    def __init__(
        self,
        client: ClientSource,
        *,
        cache_size: int = 10_000,
        lookup_timeout: float = 3.0,
        hold_approvals: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if hold_approvals < 0:
            raise ValueError("hold_approvals must be >= 0 seconds")
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
        self._hold = hold_approvals
        self._held: dict[str, _Held] = {}
        self._releases: set[asyncio.Task[None]] = set()  # strong references while they run
        self._waiting: set[asyncio.Task[None]] = set()  # releases not sending yet
        self._sleep = sleep
        self._monotonic = monotonic
        self.lookups = 0
        """Visibility queries made (a cache hit makes none)."""
        self.approvals_dropped = 0
        """Held approvals Temporal never took (the workflows read them themselves)."""

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
        held = self._held.get(external_id)
        if held is not None and held.seen_key == seen_key:
            return Delivery("duplicate", "this news is already held for the request's status")
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
        if isinstance(notice, ApprovalNotice):
            if self._hold > 0 and notice.event.status != "Pending":
                # Also behind a status signal on its way: the release then finds the request
                # settled and leaves the approval to the workflow, as any late one.
                self._hold_approval(_Held(notice, workflow_ids, seen_key))
                return Delivery(
                    "held",
                    f"held up to {self._hold:g}s to travel with the request's status event",
                    workflow_ids,
                )
            return await self._signal_approval(external_id, workflow_ids, notice, seen_key)
        held = self._held.pop(external_id, None)
        if held is not None and held.notice.event.signature_id not in (None, notice.signature_id):
            self._hold_approval(held, returned=True)  # another request's: not this signal's
            held = None
        try:
            signalled = await self._signal_all(
                external_id, workflow_ids, _status_signal(notice, held)
            )
        except TemporalUnavailable:
            if held is not None:
                self._hold_approval(held, returned=True)
            raise
        if not signalled:
            return Delivery("closed", "the workflow has already finished", workflow_ids)
        self._delivered.put(seen_key, True)
        if held is not None:
            self._delivered.put(held.seen_key, True)
        if notice.status in _SETTLING:
            self._delivered.put(settled_key, True)
        detail = "signalled" if held is None else "signalled with the approval held for it"
        return Delivery("delivered", detail, signalled)

    async def aclose(self, *, within: float = _CLOSE_WITHIN) -> None:
        """Signal every held approval now, once each and within ``within`` seconds in all (the
        receiver is stopping: a stop must not wait out the retries); log what is dropped."""
        held = list(self._held.values())
        self._held.clear()
        for task in list(self._waiting):
            task.cancel()  # their approvals are released here
        try:
            async with asyncio.timeout(within):
                await asyncio.gather(*(self._release(item, retries=()) for item in held))
                await asyncio.gather(*self._releases, return_exceptions=True)
        except TimeoutError:
            for item in held:
                if self._delivered.get(item.seen_key) is None:
                    self._dropped(item, f"not sent within {within:g}s of the stop")

    # --- held approvals -------------------------------------------------------------------

    async def _signal_approval(
        self,
        external_id: str,
        workflow_ids: tuple[str, ...],
        notice: ApprovalNotice,
        seen_key: tuple[Hashable, ...],
    ) -> Delivery:
        signalled = await self._signal_all(
            external_id, workflow_ids, (ids.SIGNAL_APPROVAL_EVENT, notice.event)
        )
        if not signalled:
            return Delivery("closed", "the workflow has already finished", workflow_ids)
        self._delivered.put(seen_key, True)
        return Delivery("delivered", "signalled", signalled)

    def _hold_approval(self, held: _Held, *, returned: bool = False) -> None:
        """Hold ``held`` for ``hold_approvals`` seconds; a later approval of the same request
        replaces an earlier one, with a hold of its own.

        ``returned``: it comes back from a status signal that did not take it; an approval
        held since is newer and wins, and one whose hold ended meanwhile is released at once.
        """
        external_id = held.notice.external_id
        assert external_id is not None
        if returned and external_id in self._held:
            return
        self._held[external_id] = held
        if not returned or held.release is None or held.release.done():
            task = asyncio.create_task(
                self._release_after(held, 0.0 if returned else self._hold),
                name=f"signgate-webhook-hold-{external_id}",
            )
            self._releases.add(task)
            self._waiting.add(task)
            task.add_done_callback(self._releases.discard)
            task.add_done_callback(self._waiting.discard)
            held.release = task

    async def _release_after(self, held: _Held, delay: float) -> None:
        """When the hold ends, release ``held`` if it is still the one held (not taken by a
        status event, nor replaced by a later approval)."""
        external_id = held.notice.external_id
        assert external_id is not None
        await self._sleep(delay)
        task = asyncio.current_task()
        assert task is not None
        self._waiting.discard(task)  # sending now: a stop lets it finish
        if self._held.get(external_id) is held:
            del self._held[external_id]
            await self._release(held)

    async def _release(self, held: _Held, *, retries: tuple[float, ...] | None = None) -> None:
        """Signal a held approval on its own, trying again (after ``retries`` seconds) while
        Temporal cannot take it; nothing is sent once the request's status has settled."""
        notice = held.notice
        external_id = notice.external_id
        assert external_id is not None
        delays = _RELEASE_RETRY_DELAYS if retries is None else retries
        for delay in (*delays, None):
            if self._delivered.get((external_id, "settled")) is not None:
                _log.debug(
                    "webhook.held_approval_ignored",
                    event_id=notice.event_id,
                    approval_id=notice.event.approval_id,
                    detail="the request is past its approval; the workflow reads it itself",
                )
                return
            try:
                delivery = await self._signal_approval(
                    external_id, held.workflow_ids, notice, held.seen_key
                )
            except TemporalUnavailable as exc:
                if delay is None:
                    self._dropped(held, str(exc))
                    return
                await self._sleep(delay)
                continue
            _log.info(
                f"webhook.held_approval_{delivery.outcome}",
                event_id=notice.event_id,
                approval_id=notice.event.approval_id,
                external_id=external_id,
                workflow_ids=list(delivery.workflow_ids),
            )
            return

    def _dropped(self, held: _Held, why: str) -> None:
        notice = held.notice
        self.approvals_dropped += 1
        _log.warning(
            "webhook.held_approval_dropped",
            event_id=notice.event_id,
            approval_id=notice.event.approval_id,
            external_id=notice.external_id,
            error=why,
            consequence="the workflow reads the approval itself",
        )

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
        self, external_id: str, workflow_ids: tuple[str, ...], signal: tuple[str, Any]
    ) -> tuple[str, ...]:
        client = await self._get_client()
        name, argument = signal
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


def _status_signal(notice: SignatureNotice, held: _Held | None) -> tuple[str, Any]:
    approval = held.notice.event if held is not None else None
    return ids.SIGNAL_STATUS_EVENT, notice.status_event(approval)
