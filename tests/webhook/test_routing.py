"""Routing logic against a scripted Temporal client: cache, visibility race, duplicates, 503s.

The same router runs against a real dev server in ``test_e2e.py``; here each branch is
driven deliberately and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from signgate import ids
from signgate.contracts import ApprovalEvent, StatusEvent
from signgate.webhook.events import Notice, parse_notice
from signgate.webhook.routing import TemporalRouter, TemporalUnavailable, is_our_external_id
from tests.support.eventually import eventually
from tests.webhook.support import EXTERNAL_ID, approval, event, signature_request

RUNNING = WorkflowExecutionStatus.RUNNING
COMPLETED = WorkflowExecutionStatus.COMPLETED


@dataclass
class Execution:
    id: str
    status: WorkflowExecutionStatus


@dataclass
class FakeTemporal:
    """Visibility: ``executions`` appear after ``invisible_for`` queries; signals recorded."""

    executions: list[Execution] = field(default_factory=list)
    invisible_for: int = 0
    queries: list[str] = field(default_factory=list)
    signals: list[tuple[str, str, Any]] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    down: bool = False
    query_delay: float = 0.0

    def list_workflows(
        self, query: str, *, limit: int, rpc_timeout: timedelta
    ) -> AsyncIterator[Execution]:
        self.queries.append(query)
        visible = len(self.queries) > self.invisible_for

        async def results() -> AsyncIterator[Execution]:
            if self.query_delay:
                await asyncio.sleep(self.query_delay)
            if self.down:
                raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")
            for execution in self.executions if visible else []:
                yield execution

        return results()

    def get_workflow_handle(self, workflow_id: str) -> Handle:
        return Handle(self, workflow_id)


@dataclass
class Handle:
    temporal: FakeTemporal
    workflow_id: str

    async def signal(self, name: str, arg: Any, *, rpc_timeout: timedelta) -> None:
        if self.temporal.down:
            raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
        if self.workflow_id in self.temporal.closed:
            raise RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b"")
        self.temporal.signals.append((self.workflow_id, name, arg))


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def router_for(temporal: FakeTemporal, **kwargs: Any) -> TemporalRouter:
    clock = Clock()
    kwargs.setdefault("sleep", clock.advance)
    kwargs.setdefault("monotonic", clock.monotonic)
    return TemporalRouter(cast(Client, temporal), **kwargs)


def signed_notice(status: str = "Signed", *, attempt: int = 1, **kwargs: Any) -> Notice:
    return parse_notice(
        event(data={"signatureRequest": signature_request(status, **kwargs)}, attempt=attempt)
    )


@pytest.fixture
def temporal() -> FakeTemporal:
    return FakeTemporal(executions=[Execution("order-42", RUNNING)])


async def test_a_status_event_is_signalled_to_the_workflow(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    delivery = await router.deliver(signed_notice())
    assert delivery.outcome == "delivered"
    assert delivery.workflow_ids == ("order-42",)
    [(workflow_id, name, arg)] = temporal.signals
    assert (workflow_id, name) == ("order-42", ids.SIGNAL_STATUS_EVENT)
    assert isinstance(arg, StatusEvent) and arg.status == "Signed"
    assert temporal.queries == [f"SignGateExternalId = '{EXTERNAL_ID}'"]


async def test_an_approval_event_is_signalled_as_approval_progress(
    temporal: FakeTemporal,
) -> None:
    router = router_for(temporal)
    notice = parse_notice(event("policy.approval.resolved", {"approval": approval()}))
    assert (await router.deliver(notice)).outcome == "delivered"
    [(_, name, arg)] = temporal.signals
    assert name == ids.SIGNAL_APPROVAL_EVENT
    assert isinstance(arg, ApprovalEvent) and arg.status == "Approved"


async def test_a_resolved_approval_after_the_final_status_is_not_signalled(
    temporal: FakeTemporal,
) -> None:
    router = router_for(temporal)
    resolved = parse_notice(event("policy.approval.resolved", {"approval": approval()}))
    assert (await router.deliver(signed_notice())).outcome == "delivered"
    # The workflow is finishing and reads the approval itself; a signal now would only make
    # Temporal refuse its completion and run the workflow task again.
    delivery = await router.deliver(resolved)
    assert delivery.outcome == "ignored" and "past its approval" in delivery.detail
    assert [name for _, name, _ in temporal.signals] == [ids.SIGNAL_STATUS_EVENT]


async def test_approval_events_before_the_final_status_are_signalled(
    temporal: FakeTemporal,
) -> None:
    router = router_for(temporal)
    pending = parse_notice(event("policy.approval.pending", {"approval": approval("Pending")}))
    resolved = parse_notice(event("policy.approval.resolved", {"approval": approval()}))
    assert (await router.deliver(signed_notice("Executing"))).outcome == "delivered"
    assert (await router.deliver(pending)).outcome == "delivered"
    assert (await router.deliver(resolved)).outcome == "delivered"
    assert (await router.deliver(signed_notice())).outcome == "delivered"
    assert [name for _, name, _ in temporal.signals] == [
        ids.SIGNAL_STATUS_EVENT,
        ids.SIGNAL_APPROVAL_EVENT,
        ids.SIGNAL_APPROVAL_EVENT,
        ids.SIGNAL_STATUS_EVENT,
    ]


async def test_the_second_event_of_a_request_costs_no_query(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    await router.deliver(
        parse_notice(event("policy.approval.pending", {"approval": approval("Pending")}))
    )
    await router.deliver(signed_notice())
    assert len(temporal.queries) == 1 and router.lookups == 1
    assert len(temporal.signals) == 2


async def test_a_requested_event_warms_the_cache_without_a_signal(
    temporal: FakeTemporal,
) -> None:
    router = router_for(temporal)
    delivery = await router.deliver(signed_notice("Pending"))
    assert delivery.outcome == "ignored"
    assert temporal.signals == []
    await router.deliver(signed_notice())
    assert len(temporal.queries) == 1


async def test_duplicates_cost_no_signal(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    assert (await router.deliver(signed_notice(attempt=1))).outcome == "delivered"
    assert (await router.deliver(signed_notice(attempt=2))).outcome == "duplicate"
    assert (await router.deliver(signed_notice("Failed"))).outcome == "delivered"
    assert len(temporal.signals) == 2


async def test_not_yet_visible_is_retried_briefly_then_found(temporal: FakeTemporal) -> None:
    temporal.invisible_for = 3
    router = router_for(temporal, lookup_timeout=3.0)
    assert (await router.deliver(signed_notice())).outcome == "delivered"
    assert len(temporal.queries) == 4


async def test_still_invisible_on_a_first_attempt_is_503(temporal: FakeTemporal) -> None:
    temporal.invisible_for = 10_000
    router = router_for(temporal, lookup_timeout=1.0)
    with pytest.raises(TemporalUnavailable, match="is visible yet"):
        await router.deliver(signed_notice(attempt=1))
    # Bounded: a handful of queries within the second, not a spin.
    assert 3 <= len(temporal.queries) <= 8
    assert temporal.signals == []


async def test_still_invisible_on_a_retry_is_someone_elses(temporal: FakeTemporal) -> None:
    temporal.invisible_for = 10_000
    router = router_for(temporal, lookup_timeout=0.5)
    delivery = await router.deliver(signed_notice(attempt=2))
    assert delivery.outcome == "not-ours"
    assert temporal.signals == []


async def test_external_ids_that_are_not_ours_query_nothing(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    for external_id in (None, "invoice-7", "sg-UPPER", "sg-x' OR 1=1 --", "sg-" + "a" * 60):
        delivery = await router.deliver(signed_notice(external_id=external_id))
        assert delivery.outcome == "not-ours"
    assert temporal.queries == [] and temporal.signals == []


def test_our_external_ids_are_recognised() -> None:
    assert is_our_external_id(ids.external_id_for("order-42"))
    assert is_our_external_id(ids.external_id_for("Ünïcode key / with spaces"))
    assert not is_our_external_id("sg-")
    assert not is_our_external_id("order-42")


async def test_a_finished_workflow_is_answered_closed(temporal: FakeTemporal) -> None:
    temporal.executions = [Execution("order-42", COMPLETED)]
    router = router_for(temporal)
    delivery = await router.deliver(signed_notice())
    assert delivery.outcome == "closed"
    assert temporal.signals == []


async def test_a_cached_route_to_a_workflow_that_finished_since(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    await router.deliver(signed_notice("Signed"))
    temporal.closed.add("order-42")
    temporal.executions = [Execution("order-42", COMPLETED)]
    assert (await router.deliver(signed_notice("Failed"))).outcome == "closed"
    # The stale route was dropped: the next event asks visibility again.
    await router.deliver(signed_notice("Rejected"))
    assert len(temporal.queries) == 2


async def test_continued_as_new_runs_route_to_the_running_one(temporal: FakeTemporal) -> None:
    temporal.executions = [
        Execution("order-42", WorkflowExecutionStatus.CONTINUED_AS_NEW),
        Execution("order-42", RUNNING),
    ]
    router = router_for(temporal)
    delivery = await router.deliver(signed_notice())
    assert delivery.workflow_ids == ("order-42",)
    assert len(temporal.signals) == 1


async def test_temporal_down_is_503_and_nothing_is_remembered(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    temporal.down = True
    with pytest.raises(TemporalUnavailable):
        await router.deliver(signed_notice())
    temporal.down = False
    assert (await router.deliver(signed_notice())).outcome == "delivered"


async def test_a_failed_signal_is_not_remembered_as_delivered(temporal: FakeTemporal) -> None:
    router = router_for(temporal)
    await router.deliver(signed_notice("Pending"))  # route cached
    temporal.down = True
    with pytest.raises(TemporalUnavailable, match="signal"):
        await router.deliver(signed_notice())
    temporal.down = False
    assert (await router.deliver(signed_notice())).outcome == "delivered"


async def test_concurrent_events_share_one_lookup(temporal: FakeTemporal) -> None:
    temporal.query_delay = 0.05
    router = TemporalRouter(cast(Client, temporal))
    notices = [signed_notice("Signed")] + [
        parse_notice(event("policy.approval.resolved", {"approval": approval()})) for _ in range(5)
    ]
    deliveries = await asyncio.gather(*(router.deliver(n) for n in notices))
    assert len(temporal.queries) == 1
    assert {d.outcome for d in deliveries} <= {"delivered", "duplicate"}


async def test_the_cache_is_bounded(temporal: FakeTemporal) -> None:
    router = router_for(temporal, cache_size=2)
    temporal.executions = [Execution("wf", RUNNING)]
    external_ids = [ids.external_id_for(f"key-{n}") for n in range(3)]
    for external_id in external_ids:
        await router.deliver(signed_notice("Pending", external_id=external_id))
    await router.deliver(signed_notice("Pending", external_id=external_ids[0]))
    # The oldest entry was evicted, so it was looked up again.
    assert len(temporal.queries) == 4


async def test_a_lazy_connection_is_made_once_and_failures_are_503() -> None:
    temporal = FakeTemporal(executions=[Execution("order-42", RUNNING)])
    attempts = 0

    async def connect() -> Client:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("Failed client connect: connection refused")
        return cast(Client, temporal)

    router = TemporalRouter(connect, sleep=no_sleep)
    with pytest.raises(TemporalUnavailable, match="cannot connect"):
        await router.deliver(signed_notice())
    await router.deliver(signed_notice())
    await router.deliver(signed_notice("Failed"))
    assert attempts == 2
    assert len(temporal.signals) == 2


# --- resolved approvals held for the status event ----------------------------------------


class Gate:
    """A pause that lasts until the test opens the gate (then every pause is instant)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.slept: list[float] = []

    async def pause(self, seconds: float) -> None:
        self.slept.append(seconds)
        await self.opened.wait()


def resolved_notice(**kwargs: Any) -> Notice:
    return parse_notice(event("policy.approval.resolved", {"approval": approval(**kwargs)}))


def holding_router(temporal: FakeTemporal, gate: Gate) -> TemporalRouter:
    return TemporalRouter(cast(Client, temporal), hold_approvals=2.0, sleep=gate.pause)


def approval_signals(temporal: FakeTemporal) -> list[ApprovalEvent]:
    return [arg for _, name, arg in temporal.signals if name == ids.SIGNAL_APPROVAL_EVENT]


async def test_a_held_approval_travels_in_the_status_events_signal(
    temporal: FakeTemporal,
) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    held = await router.deliver(resolved_notice())
    assert held.outcome == "held" and held.workflow_ids == ("order-42",)
    assert temporal.signals == []
    assert (await router.deliver(resolved_notice())).outcome == "duplicate"

    delivery = await router.deliver(signed_notice())
    assert delivery.outcome == "delivered" and "approval" in delivery.detail
    [(workflow_id, name, arg)] = temporal.signals
    assert (workflow_id, name) == ("order-42", ids.SIGNAL_STATUS_EVENT)
    assert isinstance(arg, StatusEvent) and arg.status == "Signed"
    assert arg.approval is not None and arg.approval.status == "Approved"
    assert [d.user_id for d in arg.approval.decisions] == ["us-alice"]

    # The hold's end finds nothing left to send, and the news stays delivered.
    gate.opened.set()
    await eventually(lambda: not router._releases, within=5)
    await router.aclose()
    assert len(temporal.signals) == 1
    assert (await router.deliver(resolved_notice())).outcome == "duplicate"


async def test_a_held_approval_no_status_event_claims_is_signalled_when_the_hold_ends(
    temporal: FakeTemporal,
) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    assert (await router.deliver(resolved_notice())).outcome == "held"
    assert await eventually(lambda: gate.slept, within=5) == [2.0]
    assert temporal.signals == []
    gate.opened.set()
    [signalled] = await eventually(lambda: approval_signals(temporal), within=5)
    assert signalled.status == "Approved"
    # Delivered now: a redelivery is a duplicate, and the status event goes alone.
    assert (await router.deliver(resolved_notice())).outcome == "duplicate"
    await router.deliver(signed_notice())
    assert [name for _, name, _ in temporal.signals] == [
        ids.SIGNAL_APPROVAL_EVENT,
        ids.SIGNAL_STATUS_EVENT,
    ]
    assert temporal.signals[1][2].approval is None


async def test_a_pending_approval_is_signalled_at_once(temporal: FakeTemporal) -> None:
    router = holding_router(temporal, Gate())
    pending = parse_notice(event("policy.approval.pending", {"approval": approval("Pending")}))
    assert (await router.deliver(pending)).outcome == "delivered"
    [signalled] = approval_signals(temporal)
    assert signalled.status == "Pending"


async def test_a_failed_status_signal_keeps_the_approval_for_dfns_redelivery(
    temporal: FakeTemporal,
) -> None:
    router = holding_router(temporal, Gate())
    assert (await router.deliver(resolved_notice())).outcome == "held"
    temporal.down = True
    with pytest.raises(TemporalUnavailable):
        await router.deliver(signed_notice())  # answered 503: Dfns delivers it again
    temporal.down = False
    assert (await router.deliver(signed_notice(attempt=2))).outcome == "delivered"
    [(_, name, arg)] = temporal.signals
    assert name == ids.SIGNAL_STATUS_EVENT and arg.approval is not None
    await router.aclose()
    assert len(temporal.signals) == 1


def count_signal_attempts(
    temporal: FakeTemporal, *, then: Callable[[list[str]], None] | None = None
) -> list[str]:
    """Record every workflow a signal is attempted to (even one Temporal then refuses);
    ``then`` sees the attempts so far before each one goes on."""
    attempts: list[str] = []
    original = temporal.get_workflow_handle

    def counting(workflow_id: str) -> Handle:
        attempts.append(workflow_id)
        if then is not None:
            then(attempts)
        return original(workflow_id)

    temporal.get_workflow_handle = counting  # type: ignore[method-assign]
    return attempts


async def test_a_held_approval_outlasts_a_short_temporal_outage(temporal: FakeTemporal) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    assert (await router.deliver(resolved_notice())).outcome == "held"
    temporal.down = True

    def back_on_the_third_try(attempts: list[str]) -> None:
        temporal.down = len(attempts) < 3

    attempts = count_signal_attempts(temporal, then=back_on_the_third_try)
    gate.opened.set()
    [signalled] = await eventually(lambda: approval_signals(temporal), within=5)
    assert signalled.status == "Approved" and len(attempts) == 3
    assert router.approvals_dropped == 0


async def test_a_held_approval_temporal_never_takes_is_dropped_after_its_retries(
    temporal: FakeTemporal,
) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    assert (await router.deliver(resolved_notice())).outcome == "held"
    temporal.down = True
    attempts = count_signal_attempts(temporal)
    gate.opened.set()
    await eventually(lambda: router.approvals_dropped == 1, within=5)
    assert len(attempts) == 5 and temporal.signals == []  # the first try and four retries
    # Not remembered as delivered: a redelivery of it would be held again.
    temporal.down = False
    assert (await router.deliver(resolved_notice())).outcome == "held"


async def test_a_later_approval_replaces_the_held_one(temporal: FakeTemporal) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    alice = {"userId": "us-alice", "date": "2025-01-01T00:00:04.000Z", "value": "Approved"}
    bob = {"userId": "us-bob", "date": "2025-01-01T00:00:05.000Z", "value": "Approved"}
    assert (await router.deliver(resolved_notice(decisions=[alice]))).outcome == "held"
    assert (await router.deliver(resolved_notice(decisions=[alice, bob]))).outcome == "held"
    gate.opened.set()
    [signalled] = await eventually(lambda: approval_signals(temporal), within=5)
    assert [d.user_id for d in signalled.decisions] == ["us-alice", "us-bob"]
    await router.aclose()
    assert len(approval_signals(temporal)) == 1


async def test_a_held_approval_of_another_request_stays_out_of_the_status_signal(
    temporal: FakeTemporal,
) -> None:
    gate = Gate()
    router = holding_router(temporal, gate)
    assert (await router.deliver(resolved_notice())).outcome == "held"  # about sig-1
    assert (await router.deliver(signed_notice(signature_id="sig-2"))).outcome == "delivered"
    [(_, name, arg)] = temporal.signals
    assert name == ids.SIGNAL_STATUS_EVENT and arg.approval is None
    # The request has settled since: when the hold ends, the approval is left to the
    # workflow, which reads it itself, instead of landing on a workflow that is finishing.
    gate.opened.set()
    await router.aclose()
    assert approval_signals(temporal) == [] and router.approvals_dropped == 0


async def test_stopping_with_temporal_down_tries_each_held_approval_once(
    temporal: FakeTemporal,
) -> None:
    router = holding_router(temporal, Gate())  # never opened: only the stop releases them
    assert (await router.deliver(resolved_notice())).outcome == "held"
    temporal.down = True
    attempts = count_signal_attempts(temporal)
    await router.aclose()
    assert len(attempts) == 1 and router.approvals_dropped == 1


async def test_stopping_the_router_sends_what_it_holds(temporal: FakeTemporal) -> None:
    gate = Gate()  # never opened: only aclose releases it
    router = holding_router(temporal, gate)
    assert (await router.deliver(resolved_notice())).outcome == "held"
    await router.aclose()
    [signalled] = approval_signals(temporal)
    assert signalled.status == "Approved"


def test_a_negative_hold_is_refused(temporal: FakeTemporal) -> None:
    with pytest.raises(ValueError, match="hold_approvals must be >= 0"):
        TemporalRouter(cast(Client, temporal), hold_approvals=-1)
