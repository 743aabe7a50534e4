"""The reconciler's rule: which waiting requests a sweep wakes, and with which hint."""

from __future__ import annotations

import pytest

from activities.reconciling import waiting_query
from signgate.contracts import ReconcilerInput, WaitingRequest
from signgate.dfns.models import SignatureStatus
from workflows.reconciler import to_wake

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
