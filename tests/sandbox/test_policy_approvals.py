"""Policy approvals: decision rules, expiry, listing and persistence across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signgate.sandbox.clock import Clock
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.policies import Actor
from tests.sandbox.policy_helpers import (
    INITIATOR,
    Env,
    activity,
    add,
    approval_action,
    group,
    make_env,
    schema_errors,
)

ALICE = Actor("us-alice-00000-0000000000000000", is_service_account=False)
BOB = Actor("us-bobbb-00000-0000000000000000", is_service_account=False)
CAROL = Actor("us-carol-00000-0000000000000000", is_service_account=False)
MALLORY = Actor("us-mallo-00000-0000000000000000", is_service_account=False)
ROBOT = Actor("us-robot-00000-0000000000000000", is_service_account=True, token_id="to-robot")
APPROVE = {"value": "Approved"}
DENY = {"value": "Denied", "reason": "not today"}


@pytest.fixture
def env() -> Iterator[Env]:
    db = Database(":memory:")
    yield make_env(db)
    db.close()


def pending(env: Env, *groups: dict[str, Any], timeout: int | None = None) -> str:
    """A new Pending approval gated by one RequestApproval policy with ``groups``."""
    add(env, approval_action(*groups, timeout=timeout))
    approval = env.service.evaluate(activity()).approval
    assert approval is not None
    approval_id: str = approval["id"]
    return approval_id


def refused(env: Env, actor: Actor, approval_id: str, body: dict[str, Any]) -> SandboxError:
    with pytest.raises(SandboxError) as caught:
        env.service.decide(actor, approval_id, body)
    return caught.value


# -- quorum and resolution ----------------------------------------------------------------


def test_quorum_of_two_approves_and_resolves(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id, BOB.user_id, CAROL.user_id, quorum=2))
    first = env.service.decide(ALICE, approval_id, {"value": "Approved", "reason": "fine"})
    assert first["status"] == "Pending"
    assert first["decisions"] == [
        {
            "userId": ALICE.user_id,
            "date": first["dateUpdated"],
            "value": "Approved",
            "reason": "fine",
        }
    ]
    assert "dateResolved" not in first
    assert env.resolved == []

    final = env.service.decide(BOB, approval_id, APPROVE)
    assert final["status"] == "Approved"
    assert final["dateResolved"] == final["dateUpdated"]
    assert final["decisions"][1]["reason"] is None
    assert schema_errors("approval", final) == []
    assert env.resolved == [final]
    assert env.events[-1] == ("policy.approval.resolved", {"approval": final})
    assert env.service.get_approval(approval_id) == final


def test_any_denial_rejects_even_after_approvals(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id, BOB.user_id, CAROL.user_id, quorum=3))
    env.service.decide(ALICE, approval_id, APPROVE)
    denied = env.service.decide(BOB, approval_id, DENY)
    assert denied["status"] == "Denied"
    assert denied["decisions"][-1] == {
        "userId": BOB.user_id,
        "date": denied["dateResolved"],
        "value": "Denied",
        "reason": "not today",
    }
    assert [a["status"] for a in env.resolved] == ["Denied"]
    assert env.kinds()[-1] == "policy.approval.resolved"


def test_every_group_must_reach_its_quorum(env: Env) -> None:
    approval_id = pending(
        env,
        group(ALICE.user_id, BOB.user_id, quorum=2),
        group(CAROL.user_id, quorum=1),
    )
    env.service.decide(ALICE, approval_id, APPROVE)
    assert env.service.decide(BOB, approval_id, APPROVE)["status"] == "Pending"
    assert env.service.decide(CAROL, approval_id, APPROVE)["status"] == "Approved"


def test_one_approval_counts_in_every_group_the_user_belongs_to(env: Env) -> None:
    approval_id = pending(
        env,
        group(ALICE.user_id, BOB.user_id, quorum=1),
        group(ALICE.user_id, CAROL.user_id, quorum=1),
    )
    assert env.service.decide(ALICE, approval_id, APPROVE)["status"] == "Approved"


def test_open_group_lets_any_user_approve(env: Env) -> None:
    approval_id = pending(env, group(quorum=2))
    env.service.decide(MALLORY, approval_id, APPROVE)
    assert env.service.decide(CAROL, approval_id, APPROVE)["status"] == "Approved"


# -- who may decide -----------------------------------------------------------------------


def test_non_approver_is_refused(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    for body in (APPROVE, DENY):
        error = refused(env, MALLORY, approval_id, body)
        assert error.status == 403
        assert "not an approver" in error.message
    assert env.service.get_approval(approval_id)["decisions"] == []


def test_initiator_may_only_deny(env: Env) -> None:
    approval_id = pending(env, group(INITIATOR.user_id, ALICE.user_id))
    error = refused(env, INITIATOR, approval_id, APPROVE)
    assert error.status == 403
    assert "initiator" in error.message
    assert env.service.get_approval(approval_id)["decisions"] == []
    assert env.service.decide(INITIATOR, approval_id, DENY)["status"] == "Denied"


def test_initiator_may_deny_even_when_not_an_approver(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    refused_approve = refused(env, INITIATOR, approval_id, APPROVE)
    assert refused_approve.status == 403
    assert env.service.decide(INITIATOR, approval_id, DENY)["status"] == "Denied"


def test_initiator_can_approve_when_the_group_allows_it(env: Env) -> None:
    approval_id = pending(
        env,
        group(INITIATOR.user_id, ALICE.user_id, quorum=1, initiatorCanApprove=True),
        group(BOB.user_id, quorum=1),
    )
    assert env.service.decide(INITIATOR, approval_id, APPROVE)["status"] == "Pending"
    assert env.service.decide(BOB, approval_id, APPROVE)["status"] == "Approved"


def test_initiator_approval_does_not_count_in_groups_without_the_flag(env: Env) -> None:
    approval_id = pending(
        env,
        group(INITIATOR.user_id, quorum=1, initiatorCanApprove=True),
        group(INITIATOR.user_id, ALICE.user_id, quorum=1),
    )
    assert env.service.decide(INITIATOR, approval_id, APPROVE)["status"] == "Pending"
    assert env.service.decide(ALICE, approval_id, APPROVE)["status"] == "Approved"


def test_service_accounts_need_the_flag_and_an_explicit_listing(env: Env) -> None:
    listed_without_flag = pending(env, group(ROBOT.user_id, ALICE.user_id))
    error = refused(env, ROBOT, listed_without_flag, APPROVE)
    assert error.status == 403
    assert "serviceAccountsCanApprove" in error.message

    env.service.reset()
    open_with_flag = pending(env, group(quorum=1, serviceAccountsCanApprove=True))
    error = refused(env, ROBOT, open_with_flag, APPROVE)
    assert error.status == 403
    assert "listed explicitly" in error.message
    assert refused(env, ROBOT, open_with_flag, DENY).status == 403

    env.service.reset()
    allowed = pending(env, group(ROBOT.user_id, quorum=1, serviceAccountsCanApprove=True))
    assert env.service.decide(ROBOT, allowed, APPROVE)["status"] == "Approved"

    env.service.reset()
    deniable = pending(
        env, group(ROBOT.user_id, ALICE.user_id, quorum=2, serviceAccountsCanApprove=True)
    )
    assert env.service.decide(ROBOT, deniable, DENY)["status"] == "Denied"


def test_a_user_decides_once(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id, BOB.user_id, quorum=2))
    env.service.decide(ALICE, approval_id, APPROVE)
    for body in (APPROVE, DENY):
        error = refused(env, ALICE, approval_id, body)
        assert error.status == 409
        assert "already decided" in error.message
    approval = env.service.get_approval(approval_id)
    assert approval["status"] == "Pending"
    assert len(approval["decisions"]) == 1


def test_no_decisions_after_resolution(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id, BOB.user_id, quorum=1))
    env.service.decide(ALICE, approval_id, APPROVE)
    error = refused(env, BOB, approval_id, DENY)
    assert error.status == 409
    assert "Approved" in error.message
    assert len(env.resolved) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": "Maybe"}, "body.value"),
        ({}, "body.value"),
        ({"value": "Approved", "reason": "x" * 1001}, "body.reason"),
        ([], "body"),
    ],
)
def test_invalid_decision_body_is_400(env: Env, body: Any, field: str) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    error = refused(env, ALICE, approval_id, body)
    assert error.status == 400
    assert error.message.startswith(f"{field}: ")
    assert env.service.get_approval(approval_id)["decisions"] == []


def test_unknown_approval_is_404(env: Env) -> None:
    assert refused(env, ALICE, "ap-nope", APPROVE).status == 404
    with pytest.raises(SandboxError) as caught:
        env.service.get_approval("ap-nope")
    assert caught.value.status == 404
    with pytest.raises(SandboxError) as update:
        env.service.update_activity("ap-nope", {"id": "sig-x"})
    assert update.value.status == 404


def test_a_failing_resolution_handler_rolls_the_decision_back(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))

    def broken(approval: dict[str, Any]) -> None:
        raise RuntimeError("signing service down")

    env.service.set_resolution_handler(broken)
    with pytest.raises(RuntimeError):
        env.service.decide(ALICE, approval_id, APPROVE)
    approval = env.service.get_approval(approval_id)
    assert approval["status"] == "Pending"
    assert approval["decisions"] == []


# -- expiry -------------------------------------------------------------------------------


def test_approval_expires_after_auto_reject_timeout(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id), timeout=5)
    env.clock.advance(4 * 60)
    assert env.service.expire_due() == 0
    assert env.service.get_approval(approval_id)["status"] == "Pending"
    env.clock.advance(61)
    assert env.service.expire_due() == 1
    expired = env.service.get_approval(approval_id)
    assert expired["status"] == "Expired"
    assert expired["dateResolved"] == expired["dateUpdated"]
    assert env.resolved == [expired]
    assert env.events[-1] == ("policy.approval.resolved", {"approval": expired})
    assert env.service.expire_due() == 0
    error = refused(env, ALICE, approval_id, APPROVE)
    assert error.status == 409
    assert "Expired" in error.message


def test_overdue_approval_expires_before_a_late_decision(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id), timeout=1)
    env.clock.advance(61)
    assert refused(env, ALICE, approval_id, APPROVE).status == 409
    assert [a["status"] for a in env.resolved] == ["Expired"]


def test_reads_expire_overdue_approvals(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id), timeout=1)
    env.clock.advance(61)
    assert env.service.list_approvals(status="Expired")["items"][0]["id"] == approval_id
    assert env.service.get_approval(approval_id)["status"] == "Expired"
    assert len(env.resolved) == 1


def test_approval_without_timeout_never_expires(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    env.clock.advance(1000 * 86400)
    assert env.service.expire_due() == 0
    assert env.service.get_approval(approval_id)["status"] == "Pending"


# -- listing ------------------------------------------------------------------------------


def test_list_approvals_filters(env: Env) -> None:
    add(env, approval_action(group(ALICE.user_id, BOB.user_id)))
    first = env.service.evaluate(activity(initiator=INITIATOR)).approval
    second = env.service.evaluate(activity(initiator=CAROL)).approval
    assert first is not None
    assert second is not None
    env.service.decide(ALICE, first["id"], APPROVE)

    def ids(**query: Any) -> list[str]:
        return [a["id"] for a in env.service.list_approvals(**query)["items"]]

    assert ids() == [second["id"], first["id"]]
    assert ids(status="Approved") == [first["id"]]
    assert ids(status="Pending") == [second["id"]]
    assert ids(initiator_id=CAROL.user_id) == [second["id"]]
    assert ids(approver_id=BOB.user_id) == [second["id"], first["id"]]
    assert ids(approver_id=MALLORY.user_id) == []
    assert ids(approver_id=BOB.user_id, status="Pending", initiator_id=CAROL.user_id) == [
        second["id"]
    ]
    # deciding makes the initiator show up as an approver of its own approval
    env.service.decide(CAROL, second["id"], DENY)
    assert ids(approver_id=CAROL.user_id) == [second["id"]]


def test_list_approvals_includes_open_groups_for_every_approver(env: Env) -> None:
    approval_id = pending(env, group(quorum=1))
    items = env.service.list_approvals(approver_id=MALLORY.user_id)["items"]
    assert [a["id"] for a in items] == [approval_id]


def test_list_approvals_pages_newest_first(env: Env) -> None:
    add(env, approval_action(group(ALICE.user_id)))
    created = []
    for _ in range(25):
        approval = env.service.evaluate(activity()).approval
        assert approval is not None
        created.append(approval["id"])
    first_page = env.service.list_approvals()
    assert len(first_page["items"]) == 20  # default limit
    seen = [a["id"] for a in first_page["items"]]
    token = first_page["nextPageToken"]
    while token:
        page = env.service.list_approvals(limit=2, pagination_token=token)
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        token = page.get("nextPageToken")
    assert seen == list(reversed(created))
    capped = env.service.list_approvals(limit=1000)
    assert len(capped["items"]) == 25


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"status": "AutoApproved"}, "status must be one of"),
        ({"limit": -1}, "limit"),
        ({"pagination_token": "!!"}, "paginationToken"),
    ],
)
def test_list_approvals_rejects_bad_query(env: Env, query: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SandboxError) as caught:
        env.service.list_approvals(**query)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_update_activity_keeps_the_signature_request_current(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    before = env.service.get_approval(approval_id)
    request = {**before["activity"]["signatureRequest"], "status": "Rejected", "reason": "denied"}
    env.service.update_activity(approval_id, request)
    after = env.service.get_approval(approval_id)
    assert after["activity"]["signatureRequest"] == request
    assert after["dateUpdated"] == before["dateUpdated"]


def test_reset_forgets_everything(env: Env) -> None:
    approval_id = pending(env, group(ALICE.user_id))
    env.service.reset()
    assert env.service.list_policies(status=None, pagination_token=None)["items"] == []
    assert env.service.list_approvals()["items"] == []
    with pytest.raises(SandboxError):
        env.service.get_approval(approval_id)


# -- persistence --------------------------------------------------------------------------


def test_restart_mid_approval_keeps_the_approval_and_its_decisions(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    clock = Clock(scale=1e-9)
    db = Database(path)
    before = make_env(db, clock)
    policy_id = add(
        before,
        approval_action(group(ALICE.user_id, BOB.user_id, CAROL.user_id, quorum=2), timeout=60),
    )
    velocity = {"kind": "TransactionCountVelocity", "configuration": {"limit": 1, "timeframe": 60}}
    add(before, {"kind": "NoAction"}, velocity)
    approval = before.service.evaluate(activity()).approval
    assert approval is not None
    half = before.service.decide(ALICE, approval["id"], APPROVE)
    db.close()

    db = Database(path)
    after = make_env(db, clock)
    assert after.service.get_policy(policy_id)["status"] == "Active"
    assert after.service.get_approval(approval["id"]) == half
    assert refused(after, ALICE, approval["id"], APPROVE).status == 409  # still decided once
    # the activity log survived too: the count velocity policy sees the earlier request
    again = after.service.evaluate(activity())
    assert any(
        e["triggered"] and "2 signature activities" in e["reason"] for e in again.evaluations
    )
    final = after.service.decide(BOB, approval["id"], APPROVE)
    assert final["status"] == "Approved"
    assert final["decisions"][0] == half["decisions"][0]
    assert after.resolved == [final]
    db.close()


def test_restart_keeps_the_expiry_deadline(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    clock = Clock(scale=1e-9)
    db = Database(path)
    before = make_env(db, clock)
    approval_id = pending(before, group(ALICE.user_id), timeout=10)
    db.close()

    db = Database(path)
    after = make_env(db, clock)
    clock.advance(10 * 60 + 1)
    assert after.service.expire_due() == 1
    assert after.service.get_approval(approval_id)["status"] == "Expired"
    assert [a["id"] for a in after.resolved] == [approval_id]
    db.close()
