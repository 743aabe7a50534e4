"""SignatureWorkflow's logic on the time-skipping server, against an in-memory Dfns.

Timers of hours and days run in milliseconds; the fake (``tests.workflows.fakes``) reads
the server's clock, so a status scripted three days after submit appears three workflow
days later. The sandbox-backed tests in ``test_signature_sandbox.py`` cover the same
paths against real HTTP and real signatures.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from signgate import ids
from signgate.contracts import (
    ApprovalDecisionInfo,
    ApprovalEvent,
    CallbackDelivery,
    LedgerDelivery,
    PollingPolicy,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
    SigningTarget,
    StatusEvent,
    SubmitResolution,
)
from signgate.dfns.requests import HashRequest, MessageRequest, TransactionRequest
from tests.support.eventually import eventually
from tests.support.temporal import skip_time
from tests.workflows.fakes import FakeDfns, S, unknown_submit
from worker import engine_workers
from workflows.signature import SignatureWorkflow

HASH = "ab" * 32
Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]


def _input(**overrides: Any) -> SignatureWorkflowInput:
    values: dict[str, Any] = {
        "target": SigningTarget(kind="key", id="key-fake"),
        "request": HashRequest(hash=HASH),
    }
    values.update(overrides)
    return SignatureWorkflowInput.model_validate(values)


@asynccontextmanager
async def _running(
    env: WorkflowEnvironment, task_queue: str, fake: FakeDfns, inp: SignatureWorkflowInput
) -> AsyncIterator[Handle]:
    async with engine_workers(
        env.client,
        task_queue=task_queue,
        workflows=[SignatureWorkflow],
        activities=fake.activities(),
    ):
        handle: Handle = await env.client.start_workflow(
            SignatureWorkflow.run, inp, id=f"wf-{task_queue}", task_queue=task_queue
        )
        yield handle


async def _submitted(handle: Handle) -> str:
    """Wait until the workflow knows its signature id."""

    async def signature_id() -> str | None:
        return (await handle.query(SignatureWorkflow.state)).signature_id

    return await eventually(signature_id, what="the workflow submitted")


async def _state_if(
    handle: Handle, condition: Callable[[SignatureProgress], bool]
) -> SignatureProgress | None:
    """The workflow's state when ``condition`` holds for it, else ``None``."""
    progress = await handle.query(SignatureWorkflow.state)
    return progress if condition(progress) else None


async def _waiting_for_resolution(handle: Handle) -> str:
    async def why() -> str | None:
        return (await handle.query(SignatureWorkflow.state)).submit_unknown

    return await eventually(why, what="the workflow waits for its submit to be resolved")


def _gaps(fake: FakeDfns) -> list[float]:
    times = fake.fetch_times
    return [round((b - a).total_seconds()) for a, b in itertools.pairwise(times)]


async def test_approval_after_three_days_found_by_polling(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(days=3), S.SIGNED)])
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.dfns_status is S.SIGNED
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert outcome.approval is not None and outcome.approval.decisions[0].user_id == "us-alice"
    assert (fake.submits, fake.created) == (1, 1)
    gaps = _gaps(fake)
    # 5 s doubling to the 1 h cap: ~80 polls for three days instead of 51,840 at 5 s.
    assert gaps[:6] == [10, 20, 40, 80, 160, 320]
    assert max(gaps) <= 3601
    assert outcome.polls == len(fake.fetch_times) < 90
    assert outcome.date_requested is not None
    assert outcome.finished_at - outcome.date_requested >= timedelta(days=3)


async def test_status_event_wakes_the_workflow_at_once(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(milliseconds=1), S.SIGNED)])
    inp = _input(polling=PollingPolicy(initial_interval=timedelta(hours=1)))
    async with _running(ts_env, task_queue, fake, inp) as handle:
        signature_id = await _submitted(handle)
        ack = await handle.execute_update(
            SignatureWorkflow.report_status_event,
            StatusEvent(signature_id=signature_id, status=S.SIGNED),
        )
        outcome = await handle.result()
    assert ack.applied
    assert outcome.kind == "signed"
    assert outcome.polls == 1
    assert outcome.date_requested is not None
    assert outcome.finished_at - outcome.date_requested < timedelta(minutes=1)


async def test_stale_and_duplicate_events_are_ignored(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(
        steps=[(timedelta(milliseconds=1), S.EXECUTING), (timedelta(hours=2), S.SIGNED)]
    )
    inp = _input(polling=PollingPolicy(initial_interval=timedelta(hours=1)))
    async with _running(ts_env, task_queue, fake, inp) as handle:
        sid = await _submitted(handle)
        first = await handle.execute_update(
            SignatureWorkflow.report_status_event, StatusEvent(signature_id=sid, status=S.EXECUTING)
        )
        duplicate = await handle.execute_update(
            SignatureWorkflow.report_status_event, StatusEvent(signature_id=sid, status=S.EXECUTING)
        )
        stale = await handle.execute_update(
            SignatureWorkflow.report_status_event, StatusEvent(signature_id=sid, status=S.PENDING)
        )
        await handle.signal(
            SignatureWorkflow.status_event, StatusEvent(signature_id=sid, status=S.EXECUTING)
        )
        progress = await eventually(
            lambda: _state_if(handle, lambda p: p.events_ignored == 3), what="3 events ignored"
        )
        assert progress.status is S.EXECUTING
        outcome = await handle.result()
        final = await handle.query(SignatureWorkflow.state)
    assert first.applied
    assert not duplicate.applied and "stale or duplicate" in duplicate.reason
    assert not stale.applied
    assert (final.events_applied, final.events_ignored) == (1, 3)
    assert outcome.kind == "signed"
    # One poll for the hint, then 1 h (reset by the change) and 2 h: signed after ~3 h.
    assert outcome.polls == 3


async def test_update_validator_rejects_another_signature_id(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=1), S.SIGNED)])
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        await _submitted(handle)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(
                SignatureWorkflow.report_status_event,
                StatusEvent(signature_id="sig-someone-else", status=S.SIGNED),
            )
        await handle.result()
        history = await handle.fetch_history()
    assert "not this workflow's request" in str(caught.value.cause)
    # Rejected by the validator: nothing about it reached history.
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in kinds


async def test_continue_as_new_in_a_wait_keeps_the_state(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(days=1), S.SIGNED)])
    inp = _input(polling=PollingPolicy(continue_as_new_after_polls=3))
    async with _running(ts_env, task_queue, fake, inp) as handle:
        first_run = handle.result_run_id
        sid = await _submitted(handle)
        outcome = await handle.result()
        final = await handle.query(SignatureWorkflow.state)
        description = await handle.describe()
    assert outcome.kind == "signed"
    assert (fake.submits, fake.created) == (1, 1), "no second submit after continue-as-new"
    assert outcome.signature_id == sid
    assert final.run > 3
    assert description.run_id != first_run
    # The backoff carried on across runs instead of restarting at 5 s.
    assert _gaps(fake)[:6] == [10, 20, 40, 80, 160, 320]
    assert outcome.polls == len(fake.fetch_times)
    attrs = description.typed_search_attributes
    assert attrs.get(ids.SA_SIGNATURE_ID) == sid
    assert attrs.get(ids.SA_STATUS) == "Signed"
    assert attrs.get(ids.SA_OUTCOME) == "signed"
    assert attrs.get(ids.SA_IDEMPOTENCY_KEY) == f"wf-{task_queue}"


async def test_deadline_denies_the_own_approval(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns()
    deadline = await ts_env.get_current_time() + timedelta(hours=2)
    async with _running(ts_env, task_queue, fake, _input(deadline=deadline)) as handle:
        outcome = await handle.result()
    assert outcome.kind == "expired" and outcome.expiry == "deadline"
    assert outcome.dfns_status is S.REJECTED
    assert outcome.denial is not None and outcome.denial.denied
    assert len(fake.denials) == 1 and "deadline passed" in fake.denials[0].reason
    assert deadline <= outcome.finished_at < deadline + timedelta(minutes=1)


async def test_a_deadline_already_past_sends_nothing(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns()
    deadline = await ts_env.get_current_time() - timedelta(minutes=1)
    inp = _input(deadline=deadline, deliveries=[LedgerDelivery()])
    async with _running(ts_env, task_queue, fake, inp) as handle:
        outcome = await handle.result()
    assert (outcome.kind, outcome.expiry) == ("expired", "deadline")
    assert outcome.signature_id is None and outcome.dfns_status is None
    assert fake.submits == 0 and fake.denials == []
    assert any("nothing was sent" in note for note in outcome.notes)
    [entry] = fake.ledger.values()
    assert entry.outcome == "expired"


async def test_deadline_with_a_failed_denial_says_so(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(deny_succeeds=False)
    deadline = await ts_env.get_current_time() + timedelta(minutes=30)
    async with _running(ts_env, task_queue, fake, _input(deadline=deadline)) as handle:
        outcome = await handle.result()
    assert outcome.kind == "expired"
    assert outcome.dfns_status is S.PENDING
    assert outcome.denial is not None and not outcome.denial.denied
    assert any("may yet be signed" in note for note in outcome.notes)


async def test_cancel_denies_and_reports_cancelled(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns()
    ledger = LedgerDelivery()
    async with _running(ts_env, task_queue, fake, _input(deliveries=[ledger])) as handle:
        await _submitted(handle)
        await handle.cancel()
        outcome = await handle.result()
    assert outcome.kind == "cancelled" and outcome.cancel_requested
    assert outcome.dfns_status is S.REJECTED
    assert len(fake.denials) == 1 and "cancelled" in fake.denials[0].reason
    # The deliveries still ran for the cancelled outcome.
    [entry] = fake.ledger.values()
    assert entry.outcome == "cancelled"


async def test_cancel_while_executing_is_reported_as_signed(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(
        steps=[(timedelta(milliseconds=1), S.EXECUTING), (timedelta(minutes=30), S.SIGNED)]
    )
    inp = _input(polling=PollingPolicy(initial_interval=timedelta(hours=1)))
    async with _running(ts_env, task_queue, fake, inp) as handle:
        sid = await _submitted(handle)
        await handle.execute_update(
            SignatureWorkflow.report_status_event, StatusEvent(signature_id=sid, status=S.EXECUTING)
        )
        await eventually(
            lambda: _state_if(handle, lambda p: p.status is S.EXECUTING), what="Executing"
        )
        await handle.cancel()
        outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.cancel_requested
    assert fake.denials == []
    assert any("reported as is" in note for note in outcome.notes)


@pytest.mark.parametrize(
    ("final", "expired", "kind", "expiry"),
    [
        (S.REJECTED, False, "rejected", None),
        (S.FAILED, False, "failed", None),
        (S.REJECTED, True, "expired", "approval_timeout"),
    ],
)
async def test_terminal_statuses_are_outcomes(
    ts_env: WorkflowEnvironment,
    task_queue: str,
    final: S,
    expired: bool,
    kind: str,
    expiry: str | None,
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=1), final)], approval_expired=expired)
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        outcome = await handle.result()
    assert (outcome.kind, outcome.expiry) == (kind, expiry)
    assert outcome.dfns_status is final
    assert outcome.signature is None and outcome.verification is None
    assert fake.verifications == 0


@pytest.mark.parametrize(("wait", "kind"), [(True, "confirmed"), (False, "signed")])
async def test_transactions_can_wait_for_confirmed(
    ts_env: WorkflowEnvironment, task_queue: str, wait: bool, kind: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=1), S.SIGNED), (timedelta(hours=5), S.CONFIRMED)])
    inp = _input(
        request=TransactionRequest(transaction="0x02c0", blockchain_kind="Evm"),
        wait_for_confirmed=wait,
    )
    async with _running(ts_env, task_queue, fake, inp) as handle:
        outcome = await handle.result()
    assert outcome.kind == kind
    assert fake.verifications == 1, "verified once, when Signed"


@pytest.mark.parametrize("found_by", ["submit", "poll"])
async def test_a_signature_that_does_not_verify_fails_and_is_never_delivered(
    ts_env: WorkflowEnvironment, task_queue: str, found_by: str
) -> None:
    # "submit": signed at once, verified on its own; "poll": found signed by a read that
    # verifies in the same activity.
    if found_by == "submit":
        fake = FakeDfns(approval=False, verdict="invalid")
    else:
        fake = FakeDfns(steps=[(timedelta(minutes=5), S.SIGNED)], verdict="invalid")
    deliveries = [LedgerDelivery(), CallbackDelivery(url="http://127.0.0.1:9/hook")]
    async with _running(ts_env, task_queue, fake, _input(deliveries=deliveries)) as handle:
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        description = await handle.describe()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ids.ERR_VERIFICATION_FAILED and cause.non_retryable
    assert "does not verify" in cause.message
    assert fake.callbacks == [] and fake.ledger == {}
    assert fake.verifications == 1
    attributes = description.typed_search_attributes
    assert attributes.get(ids.SA_OUTCOME) == "verification-failed"
    assert attributes.get(ids.SA_STATUS) == "Signed"


@pytest.mark.parametrize("opt_in", [False, True])
async def test_unverifiable_results_are_delivered_only_on_request(
    ts_env: WorkflowEnvironment, task_queue: str, opt_in: bool
) -> None:
    fake = FakeDfns(approval=False, verdict="unverifiable")
    inp = _input(deliveries=[LedgerDelivery()], deliver_unverifiable=opt_in)
    async with _running(ts_env, task_queue, fake, inp) as handle:
        outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "unverifiable"
    assert len(fake.ledger) == (1 if opt_in else 0)
    assert len(outcome.deliveries) == (1 if opt_in else 0)
    expected = "delivered because" if opt_in else "not delivered"
    assert any(expected in note for note in outcome.notes)


async def test_deliveries_get_the_outcome_and_honour_their_filter(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(approval=False)
    deliveries = [
        LedgerDelivery(),
        CallbackDelivery(url="http://127.0.0.1:9/signed"),
        CallbackDelivery(url="http://127.0.0.1:9/rejected", on=["rejected"]),
    ]
    async with _running(ts_env, task_queue, fake, _input(deliveries=deliveries)) as handle:
        outcome = await handle.result()
    assert [r.kind for r in outcome.deliveries] == ["ledger", "callback"]
    [callback] = fake.callbacks
    assert callback.spec.url.endswith("/signed")
    assert callback.payload["kind"] == "signed"
    assert callback.payload["signature_id"] == outcome.signature_id
    assert "deliveries" not in callback.payload
    [entry] = fake.ledger.values()
    assert entry.idempotency_key == f"wf-{task_queue}/0-ledger"
    assert callback.idempotency_key == f"wf-{task_queue}/1-callback"


async def test_a_refused_submit_fails_at_once(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    refusal = ApplicationError(
        "Dfns returned HTTP 400: body.hash is invalid",
        type=ids.ERR_INVALID_REQUEST,
        non_retryable=True,
    )
    fake = FakeDfns(submit_error=refusal)
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ids.ERR_INVALID_REQUEST and cause.non_retryable
    assert "refused" in cause.message and "body.hash" in cause.message
    assert fake.submits == 1


async def test_failing_polls_do_not_end_the_wait(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=2), S.SIGNED)], failing_fetches=2)
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        outcome = await handle.result()
        progress = await handle.query(SignatureWorkflow.state)
    assert outcome.kind == "signed"
    assert progress.poll_failures == 2


async def test_a_request_signed_at_once_is_verified_by_its_submit(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(approval=False)
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        outcome = await handle.result()
        history = await handle.fetch_history()
    assert outcome.kind == "signed"
    assert outcome.verification is not None and outcome.verification.status == "verified"
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # One activity does it all: no read, no separate verification.
    assert scheduled == [ids.ACTIVITY_SUBMIT]
    assert (fake.fetches, fake.verifications) == (0, 1)


async def test_a_poll_refused_with_429_is_no_failure_and_waits_for_retry_after(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=2), S.SIGNED)], rate_limited_fetches=2, retry_after=900)
    polling = PollingPolicy(
        initial_interval=timedelta(minutes=1), max_interval=timedelta(minutes=1)
    )
    async with _running(ts_env, task_queue, fake, _input(polling=polling)) as handle:
        outcome = await handle.result()
        progress = await handle.query(SignatureWorkflow.state)
    assert outcome.kind == "signed"
    assert progress.poll_failures == 0, "Dfns's 429 says nothing about the request"
    first, second, third = fake.fetch_times[:3]
    # Each refused read: the next one waits Dfns's Retry-After, not the one-minute interval.
    assert second - first >= timedelta(seconds=900)
    assert third - second >= timedelta(seconds=900)
    assert fake.fetch_times[3] - third < timedelta(minutes=2), "then back to the policy"


async def test_query_reports_time_in_status_and_polls(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(days=2), S.SIGNED)])
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        await _submitted(handle)
        await skip_time(ts_env, timedelta(hours=3))
        progress = await handle.query(SignatureWorkflow.state)
        await handle.result()
    assert progress.status is S.PENDING
    assert progress.approval_id == "ap-fake"
    # Measured to the workflow's last activation (the last poll), not to the query itself.
    assert progress.time_in_status == progress.as_of - progress.status_since
    assert progress.time_in_status >= timedelta(hours=2)
    assert 8 <= progress.polls <= 12
    assert progress.next_poll_in is not None and progress.next_poll_in <= timedelta(hours=1)


async def test_approval_events_record_decisions_and_bring_the_next_poll_forward(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=10), S.SIGNED)])
    minute, six_hours = timedelta(minutes=1), timedelta(hours=6)
    inp = _input(polling=PollingPolicy(initial_interval=minute, max_interval=six_hours))
    alice = ApprovalDecisionInfo(user_id="us-alice", value="Approved")
    bob = ApprovalDecisionInfo(user_id="us-bob", value="Approved")
    async with _running(ts_env, task_queue, fake, inp) as handle:
        await _submitted(handle)
        await handle.signal(
            SignatureWorkflow.approval_event,
            ApprovalEvent(approval_id="ap-fake", status="Pending", decisions=[alice], quorum=2),
        )
        await handle.signal(
            SignatureWorkflow.approval_event,
            ApprovalEvent(approval_id="ap-other", status="Denied"),
        )
        progress = await eventually(
            lambda: _state_if(handle, lambda p: p.approval is not None), what="approval merged"
        )
        # Backed off by now: without news the next poll is hours away.
        await skip_time(ts_env, timedelta(hours=10, minutes=5))
        before = await handle.query(SignatureWorkflow.state)
        await handle.signal(
            SignatureWorkflow.approval_event,
            ApprovalEvent(approval_id="ap-fake", status="Approved", decisions=[bob]),
        )
        outcome = await handle.result()
    assert progress.approval is not None and progress.approval.quorum == 2
    assert [d.user_id for d in progress.approval.decisions] == ["us-alice"]
    assert progress.events_ignored == 1
    assert before.next_poll_in is not None and before.next_poll_in > timedelta(hours=1)
    assert outcome.kind == "signed"
    assert outcome.date_requested is not None
    # The resolved approval did not read the request at once (its status event is the
    # wake-up); it brought the next poll forward to the initial interval.
    assert outcome.polls == before.polls + 1
    took = outcome.finished_at - outcome.date_requested
    assert timedelta(hours=10, minutes=5) < took < timedelta(hours=10, minutes=7)


async def test_a_status_hint_is_followed_up_by_one_read_on_the_dfns_reads_queue(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(milliseconds=1), S.SIGNED)])
    inp = _input(polling=PollingPolicy(initial_interval=timedelta(hours=1)))
    async with _running(ts_env, task_queue, fake, inp) as handle:
        sid = await _submitted(handle)
        await handle.signal(
            SignatureWorkflow.status_event, StatusEvent(signature_id=sid, status=S.SIGNED)
        )
        outcome = await handle.result()
        history = await handle.fetch_history()
    assert outcome.kind == "signed"
    assert outcome.approval is not None and outcome.approval.status == "Approved"
    assert (fake.fetches, fake.verifications, fake.describes) == (1, 1, 1)
    events = list(history.events)
    first = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in events[first:]
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # Every Dfns call goes through the rate-limited reads queue: no local activity, which
    # would bypass the budget.
    assert [(a.activity_type.name, a.task_queue.name) for a in scheduled] == [
        (ids.ACTIVITY_READ_AND_VERIFY, ids.dfns_task_queue(task_queue, "reads")),
        (ids.ACTIVITY_DESCRIBE_APPROVAL, ids.dfns_task_queue(task_queue, "reads")),
    ]
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds, "no local activity, no patch"
    after = kinds[first:]
    # Signed shown while the approval is read, then the outcome: one upsert each.
    assert after.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES) == 2
    assert after[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.parametrize("carried_in_full", [True, False], ids=["full", "partial"])
async def test_a_resolved_approval_its_event_carried_is_not_read_again(
    ts_env: WorkflowEnvironment, task_queue: str, carried_in_full: bool
) -> None:
    fake = FakeDfns(steps=[(timedelta(milliseconds=1), S.SIGNED)])
    inp = _input(polling=PollingPolicy(initial_interval=timedelta(hours=1)))
    decisions = [
        ApprovalDecisionInfo(user_id="us-alice", value="Approved"),
        ApprovalDecisionInfo(user_id="us-bob", value="Approved"),
    ]
    resolved = await ts_env.get_current_time()
    event = ApprovalEvent(
        approval_id="ap-fake",
        status="Approved",
        decisions=decisions,
        initiator_id="us-engine",
        date_resolved=resolved if carried_in_full else None,
    )
    async with _running(ts_env, task_queue, fake, inp) as handle:
        sid = await _submitted(handle)
        await handle.signal(SignatureWorkflow.approval_event, event)
        await handle.signal(
            SignatureWorkflow.status_event, StatusEvent(signature_id=sid, status=S.SIGNED)
        )
        outcome = await handle.result()
    assert outcome.kind == "signed"
    assert outcome.approval is not None
    if carried_in_full:
        assert fake.describes == 0
        assert [d.user_id for d in outcome.approval.decisions] == ["us-alice", "us-bob"]
        assert outcome.approval.initiator_id == "us-engine"
        assert outcome.approval.date_resolved == resolved
    else:
        # Without dateResolved the event may not be the whole approval: read it.
        assert fake.describes == 1
        assert [d.user_id for d in outcome.approval.decisions] == ["us-alice"]


async def test_starting_twice_attaches_to_the_running_request(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=1), S.SIGNED)])
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        again: Handle = await ts_env.client.start_workflow(
            SignatureWorkflow.run,
            _input(),
            id=handle.id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        outcome = await again.result()
    assert again.result_run_id == handle.result_run_id
    assert outcome.kind == "signed"
    assert fake.created == 1


def test_inputs_that_cannot_be_sent_are_refused_by_the_caller() -> None:
    key = SigningTarget(kind="key", id="key-1")
    with pytest.raises(ValidationError, match="wait_for_confirmed needs a Transaction"):
        _input(target=key, wait_for_confirmed=True)
    with pytest.raises(ValidationError, match="external_id must be left unset"):
        _input(request=HashRequest(hash=HASH, external_id="mine"))
    with pytest.raises(ValidationError, match="signs only Hash requests"):
        _input(
            target=SigningTarget(kind="public-key", id="pk-1"),
            request=MessageRequest(message="0x00"),
        )
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SignatureWorkflowInput.model_validate(
            {"target": key, "request": HashRequest(hash=HASH), "wait_for_confirm": True}
        )


LEGACY = SigningTarget(kind="public-key", id="pk-fake")


async def _resolve(handle: Handle, resolution: SubmitResolution) -> str:
    answer: str = await handle.execute_update(
        ids.UPDATE_RESOLVE_SUBMIT, resolution, result_type=str
    )
    return answer


async def test_an_unknown_legacy_submit_waits_for_the_caller_to_resubmit(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(approval=False, submit_error=unknown_submit())
    async with _running(ts_env, task_queue, fake, _input(target=LEGACY)) as handle:
        why = await _waiting_for_resolution(handle)
        assert "504" in why and fake.submits == 1
        ack = await _resolve(handle, SubmitResolution(resubmit=True))
        outcome = await handle.result()
    assert ack == "resubmitting"
    assert outcome.kind == "signed" and (fake.submits, fake.created) == (2, 1)


async def test_an_unknown_legacy_submit_adopts_the_request_the_caller_names(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(approval=False, lose_submit_answer=True)
    async with _running(ts_env, task_queue, fake, _input(target=LEGACY)) as handle:
        await _waiting_for_resolution(handle)
        [existing] = fake.request_ids()
        wrong = await _resolve(handle, SubmitResolution(signature_id="sig-nope"))
        assert "could not be read" in wrong and "still waiting" in wrong
        right = await _resolve(handle, SubmitResolution(signature_id=existing))
        outcome = await handle.result()
    assert right == f"adopted {existing}"
    assert outcome.kind == "signed" and outcome.signature_id == existing
    assert (fake.submits, fake.created) == (1, 1), "no second request"
    assert any("adopted" in note for note in outcome.notes)


async def test_a_cancel_while_the_submit_is_unknown_sends_nothing_more(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(lose_submit_answer=True)
    async with _running(ts_env, task_queue, fake, _input(target=LEGACY)) as handle:
        await _waiting_for_resolution(handle)
        await handle.cancel()
        outcome = await handle.result()
    assert outcome.kind == "cancelled" and fake.submits == 1
    assert any("may exist at Dfns" in note for note in outcome.notes)


async def test_resolving_a_submit_that_is_not_unknown_is_refused(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    fake = FakeDfns(steps=[(timedelta(hours=1), S.SIGNED)])
    async with _running(ts_env, task_queue, fake, _input()) as handle:
        await _submitted(handle)
        with pytest.raises(WorkflowUpdateFailedError):
            await _resolve(handle, SubmitResolution(resubmit=True))
        await handle.result()


def test_a_resolution_names_exactly_one_thing() -> None:
    with pytest.raises(ValidationError, match="either signature_id"):
        SubmitResolution()
    with pytest.raises(ValidationError, match="either signature_id"):
        SubmitResolution(signature_id="sig-1", resubmit=True)
