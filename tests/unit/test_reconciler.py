"""The reconciler's rules: which waiting requests a sweep wakes, and with which hint; when a
safety-net poll may be skipped; how its budget and the polls' jitter come from settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.reconciling import VISIBILITY_MARGIN, swept_since, waiting_query
from signgate.contracts import ReconcilerInput, ReconcilerProgress, WaitingRequest
from signgate.dfns.models import SignatureStatus
from signgate.settings import Settings
from workflows.reconciler import to_wake
from workflows.state import jittered

P, E = SignatureStatus.PENDING, SignatureStatus.EXECUTING


def _req(workflow_id: str, signature_id: str, status: SignatureStatus) -> WaitingRequest:
    return WaitingRequest(workflow_id=workflow_id, signature_id=signature_id, status=status)


def test_a_pending_request_whose_approval_is_still_pending_is_left_alone() -> None:
    assert to_wake([_req("wf-1", "sig-1", P)], {"sig-1"}) == []


def test_a_pending_request_whose_approval_left_pending_gets_an_executing_hint() -> None:
    woken = to_wake([_req("wf-1", "sig-1", P), _req("wf-2", "sig-2", P)], {"sig-2"})
    assert [(r.workflow_id, s) for r, s in woken] == [("wf-1", E)]


def test_a_request_waiting_for_the_signer_is_read_on_every_sweep() -> None:
    # No approval list shows a request that is already Executing: its hint is Signed, the
    # least status past it, and the workflow's read decides what it really is.
    woken = to_wake([_req("wf-1", "sig-1", E)], {"sig-1"})
    assert [(r.workflow_id, s) for r, s in woken] == [("wf-1", SignatureStatus.SIGNED)]


def test_a_workflow_seen_twice_in_one_sweep_is_woken_once() -> None:
    # Visibility pages can shift while they are read: one workflow may show up twice.
    twice = [_req("wf-1", "sig-1", P), _req("wf-1", "sig-1", P)]
    assert len(to_wake(twice, set())) == 1


def test_nothing_waiting_wakes_nothing() -> None:
    assert to_wake([], {"sig-9"}) == []


def test_the_waiting_query_names_the_queue_and_the_waiting_statuses() -> None:
    query = waiting_query("payouts")
    assert "TaskQueue = 'payouts'" in query
    assert "SignGateStatus IN ('Pending', 'Executing')" in query
    assert "ExecutionStatus = 'Running'" in query


@pytest.mark.parametrize("queue", ["it's", "back\\slash"])
def test_a_task_queue_that_cannot_be_quoted_is_refused(queue: str) -> None:
    with pytest.raises(ValueError, match="cannot be quoted"):
        waiting_query(queue)


def test_the_reconciler_input_refuses_a_page_dfns_would_not_serve() -> None:
    with pytest.raises(ValueError, match="less than or equal to 100"):
        ReconcilerInput(page_size=101)


def test_requests_waiting_for_the_signer_are_left_alone_on_a_sweep_that_skips_them() -> None:
    waiting = [_req("wf-1", "sig-1", E), _req("wf-2", "sig-2", P)]
    assert to_wake(waiting, set(), signer=False) == [(waiting[1], E)]


WAIT_BEGAN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _progress(last_ok: datetime | None) -> ReconcilerProgress:
    return ReconcilerProgress(
        sweeps=3,
        woken=0,
        last_sweep_at=last_ok,
        last_waiting=1,
        last_pending=1,
        last_error=None,
        last_ok_sweep_started_at=last_ok,
    )


@pytest.mark.parametrize(
    ("last_ok", "swept"),
    [
        (None, False),  # never finished a sweep
        (WAIT_BEGAN - timedelta(seconds=1), False),  # before the wait began
        (WAIT_BEGAN, False),  # the index may not have shown the request yet
        (WAIT_BEGAN + VISIBILITY_MARGIN - timedelta(milliseconds=1), False),
        (WAIT_BEGAN + VISIBILITY_MARGIN, True),
        (WAIT_BEGAN + timedelta(minutes=30), True),
    ],
)
def test_a_poll_is_skipped_only_after_a_full_sweep_that_began_late_enough(
    last_ok: datetime | None, swept: bool
) -> None:
    assert swept_since(_progress(last_ok), WAIT_BEGAN) is swept


@pytest.mark.parametrize(("draw", "seconds"), [(0.0, 1350), (0.5, 1800), (0.999999, 2250)])
def test_jitter_spreads_a_wait_by_its_fraction_either_way(draw: float, seconds: int) -> None:
    spread = jittered(timedelta(seconds=1800), 0.25, draw)
    assert abs(spread - timedelta(seconds=seconds)) < timedelta(milliseconds=1)


def test_no_jitter_keeps_the_wait() -> None:
    assert jittered(timedelta(seconds=60), 0.0, 0.9) == timedelta(seconds=60)


def test_the_reconciler_spends_its_share_of_the_engine_budget() -> None:
    settings = Settings.from_env({"SIGNGATE_RECONCILER_ENABLED": "true"})
    assert settings.reconciler_calls_per_minute() == pytest.approx(50.0)
    trial = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "100"})
    assert trial.reconciler_calls_per_minute() == pytest.approx(5.0)
    unbudgeted = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "0"})
    assert unbudgeted.reconciler_calls_per_minute() is None


def test_reconciled_polls_are_a_jittered_safety_net_and_others_are_not() -> None:
    reconciled = Settings.from_env({"SIGNGATE_RECONCILER_ENABLED": "true"}).polling_policy()
    assert reconciled.reconciled and reconciled.jitter == 0.25
    assert reconciled.initial_interval == timedelta(minutes=30)
    plain = Settings.from_env({}).polling_policy()
    assert not plain.reconciled and plain.jitter == 0.0


def test_a_jitter_over_half_is_refused_with_the_variable_named() -> None:
    with pytest.raises(Exception, match="SIGNGATE_RECONCILED_POLL_JITTER"):
        Settings.from_env({"SIGNGATE_RECONCILED_POLL_JITTER": "0.9"})
