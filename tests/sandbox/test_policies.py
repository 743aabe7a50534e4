"""The sandbox policy engine: policy CRUD and validation, rules, filters and actions."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.policies import Actor, PolicyOutcome
from tests.sandbox.policy_helpers import (
    ADMIN,
    ALWAYS,
    BLOCK,
    HASH_BODY,
    INITIATOR,
    KEY,
    NO_ACTION,
    ONE_ETHER,
    OTHER_KEY,
    RECIPIENT,
    Env,
    activity,
    add,
    approval_action,
    evaluation,
    group,
    make_env,
    policy_body,
    schema_errors,
    transfer,
)


@pytest.fixture
def env() -> Iterator[Env]:
    db = Database(":memory:")
    yield make_env(db, usd_prices={1: "40"})
    db.close()


# -- policy CRUD -------------------------------------------------------------------------


def test_create_get_policy_matches_spec(env: Env) -> None:
    body = policy_body(
        approval_action(group("us-a", quorum=1), timeout=60),
        filters={"walletTags": {"hasAny": ["hot"]}},
    )
    created = env.service.create_policy(ADMIN, body)
    assert created["id"].startswith("plc-")
    assert created["status"] == "Active"
    assert created["dateCreated"] == created["dateUpdated"]
    assert {k: created[k] for k in body} == body
    assert schema_errors("policy", created) == []
    assert env.service.get_policy(created["id"]) == created


def test_every_spec_activity_kind_is_accepted_but_only_sign_is_evaluated(env: Env) -> None:
    bodies = [
        {"name": "a", "activityKind": "Alias:Modify", "rule": ALWAYS, "action": BLOCK},
        {
            "name": "b",
            "activityKind": "Permissions:Assign",
            "rule": ALWAYS,
            "action": approval_action(group("us-a")),
            "filters": {"permissionId": {"in": ["pm-1"]}},
        },
        {"name": "c", "activityKind": "Permissions:Modify", "rule": ALWAYS, "action": BLOCK},
        {
            "name": "d",
            "activityKind": "Policies:Modify",
            "rule": ALWAYS,
            "action": approval_action(group()),
        },
    ]
    for body in bodies:
        assert env.service.create_policy(ADMIN, body)["activityKind"] == body["activityKind"]
    outcome = env.service.evaluate(activity())
    assert outcome.kind == "Proceed"
    assert outcome.evaluations == []
    assert env.events == []


def test_get_unknown_policy_is_404(env: Env) -> None:
    with pytest.raises(SandboxError) as caught:
        env.service.get_policy("plc-nope")
    assert caught.value.status == 404


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    body = policy_body(approval_action(group("us-a", quorum=1), timeout=5))
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ("not an object", "body", "must be a JSON object"),
        (
            {"name": "x", "activityKind": "Policies:Modify", "rule": ALWAYS, "action": BLOCK},
            "body.action.kind",
            "'Block' is not one of ['RequestApproval']",
        ),
        (_mutated(["name"], _DELETE), "body.name", "is required"),
        (_mutated(["activityKind"], "Keys:Sign"), "body.activityKind", "is not one of"),
        (_mutated(["rule", "kind"], "Sometimes"), "body.rule.kind", "'Sometimes' is not one of"),
        (
            _mutated(["rule"], {"kind": "TransactionAmountLimit", "configuration": {"limit": 5}}),
            "body.rule.configuration.currency",
            "is required",
        ),
        (
            _mutated(
                ["rule"],
                {
                    "kind": "TransactionAmountLimit",
                    "configuration": {"limit": 5, "currency": "EUR"},
                },
            ),
            "body.rule.configuration.currency",
            "'EUR' is not one of ['USD']",
        ),
        (
            _mutated(
                ["rule"],
                {"kind": "TransactionCountVelocity", "configuration": {"limit": 5, "timeframe": 0}},
            ),
            "body.rule.configuration.timeframe",
            "less than the minimum of 1",
        ),
        (
            _mutated(
                ["rule"],
                {
                    "kind": "TransactionCountVelocity",
                    "configuration": {"limit": 5, "timeframe": 43201},
                },
            ),
            "body.rule.configuration.timeframe",
            "greater than the maximum of 43200",
        ),
        (
            _mutated(["action", "approvalGroups", 0, "quorum"], 0),
            "body.action.approvalGroups[0].quorum",
            "minimum of 1",
        ),
        (
            _mutated(["action", "approvalGroups"], []),
            "body.action.approvalGroups",
            "should be non-empty",
        ),
        (
            _mutated(["action", "autoRejectTimeout"], "5"),
            "body.action.autoRejectTimeout",
            "is not of type",
        ),
        (_mutated(["action", "kind"], "Allow"), "body.action.kind", "'Allow' is not one of"),
        (_mutated(["color"], "red"), "body.color", "is not allowed"),
        (_mutated(["filters"], {"walletId": {}}), "body.filters.walletId.in", "is required"),
        (
            _mutated(["filters"], {"walletTags": {"hasAny": []}}),
            "body.filters.walletTags.hasAny",
            "non-empty",
        ),
        (
            {
                "name": "x",
                "activityKind": "Policies:Modify",
                "rule": {"kind": "TransactionAmountLimit"},
                "action": approval_action(group()),
            },
            "body.rule.kind",
            "is not one of ['AlwaysTrigger']",
        ),
    ],
)
def test_invalid_policy_bodies_are_400_naming_the_field(
    env: Env, body: Any, field: str, fragment: str
) -> None:
    with pytest.raises(SandboxError) as caught:
        env.service.create_policy(ADMIN, body)
    assert caught.value.status == 400
    assert caught.value.message.startswith(f"{field}: ")
    assert fragment in caught.value.message
    assert caught.value.details == {"field": field}
    assert env.service.list_policies(status=None, pagination_token=None)["items"] == []


def test_update_replaces_the_policy_and_keeps_its_creation_date(env: Env) -> None:
    created = env.service.create_policy(
        ADMIN, policy_body(BLOCK, filters={"walletId": {"in": ["wa-1"]}})
    )
    env.clock.advance(5)
    new_body = policy_body(
        NO_ACTION,
        {"kind": "TransactionCountVelocity", "configuration": {"limit": 3, "timeframe": 60}},
    )
    new_body["name"] = "renamed"
    updated = env.service.update_policy(ADMIN, created["id"], new_body)
    assert updated["name"] == "renamed"
    assert updated["action"] == NO_ACTION
    assert "filters" not in updated
    assert updated["dateCreated"] == created["dateCreated"]
    assert updated["dateUpdated"] > created["dateUpdated"]
    assert env.service.get_policy(created["id"]) == updated
    assert schema_errors("policy", updated) == []

    with pytest.raises(SandboxError) as caught:
        env.service.update_policy(ADMIN, created["id"], {**new_body, "rule": {"kind": "Nope"}})
    assert caught.value.status == 400
    assert env.service.get_policy(created["id"]) == updated
    with pytest.raises(SandboxError) as missing:
        env.service.update_policy(ADMIN, "plc-nope", new_body)
    assert missing.value.status == 404


def test_archived_policy_stops_applying_and_cannot_be_updated(env: Env) -> None:
    policy_id = add(env, BLOCK)
    assert env.service.evaluate(activity()).kind == "Blocked"
    archived = env.service.archive_policy(ADMIN, policy_id)
    assert archived["status"] == "Archived"
    assert env.service.archive_policy(ADMIN, policy_id) == archived  # idempotent
    assert env.service.evaluate(activity()).kind == "Proceed"
    with pytest.raises(SandboxError) as caught:
        env.service.update_policy(ADMIN, policy_id, policy_body(BLOCK))
    assert caught.value.status == 409
    with pytest.raises(SandboxError) as missing:
        env.service.archive_policy(ADMIN, "plc-nope")
    assert missing.value.status == 404


def test_list_policies_pages_newest_first_and_filters_status(env: Env) -> None:
    ids = [add(env, NO_ACTION) for _ in range(5)]
    env.service.archive_policy(ADMIN, ids[1])
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = env.service.list_policies(status=None, limit=2, pagination_token=token)
        pages += 1
        seen += [p["id"] for p in page["items"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))
    active = env.service.list_policies(status="Active", limit=None, pagination_token=None)
    assert [p["id"] for p in active["items"]] == [ids[4], ids[3], ids[2], ids[0]]
    assert "nextPageToken" not in active
    archived = env.service.list_policies(status="Archived", limit=10, pagination_token=None)
    assert [p["id"] for p in archived["items"]] == [ids[1]]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"status": "Deleted"}, "status must be one of"),
        ({"limit": 0}, "limit must be a positive integer"),
        ({"pagination_token": "%%%not-a-token"}, "paginationToken"),
        ({"pagination_token": "eyJmb28iOjF9"}, "paginationToken"),  # {"foo":1}
    ],
)
def test_list_policies_rejects_bad_query(env: Env, kwargs: dict[str, Any], fragment: str) -> None:
    query: dict[str, Any] = {"status": None, "limit": None, "pagination_token": None, **kwargs}
    with pytest.raises(SandboxError) as caught:
        env.service.list_policies(**query)
    assert caught.value.status == 400
    assert fragment in caught.value.message


# -- actions ----------------------------------------------------------------------------


def test_no_policies_means_proceed_without_events(env: Env) -> None:
    outcome = env.service.evaluate(activity())
    assert outcome == PolicyOutcome("Proceed", [], None, [])
    assert env.events == []


def test_block_action_blocks_and_announces_the_trigger(env: Env) -> None:
    policy_id = add(env, BLOCK)
    request = activity()
    outcome = env.service.evaluate(request)
    assert outcome.kind == "Blocked"
    assert outcome.blocking_policy_ids == [policy_id]
    assert outcome.approval is None
    assert evaluation(outcome, policy_id)["triggered"] is True
    assert env.kinds() == ["policy.triggered"]
    payload = env.events[0][1]["policyEvaluation"]
    assert payload["id"].startswith("plce-")
    assert payload["triggered"] is True
    assert payload["reason"]
    assert payload["policy"] == env.service.get_policy(policy_id)
    assert payload["activity"] == {
        "kind": "Wallets:Sign",
        "signatureRequest": request.signature_request,
    }
    assert payload["context"] == {}
    assert env.service.list_approvals()["items"] == []


def test_no_action_is_recorded_only(env: Env) -> None:
    policy_id = add(env, NO_ACTION)
    outcome = env.service.evaluate(activity())
    assert outcome.kind == "Proceed"
    assert evaluation(outcome, policy_id) == {
        "policyId": policy_id,
        "triggered": True,
        "reason": "AlwaysTrigger rule always triggers",
    }
    assert env.kinds() == ["policy.triggered"]


def test_request_approval_creates_a_pending_approval(env: Env) -> None:
    policy_id = add(env, approval_action(group("us-a", "us-b", quorum=1), timeout=60))
    request = activity()
    outcome = env.service.evaluate(request)
    assert outcome.kind == "ApprovalRequired"
    approval = outcome.approval
    assert approval is not None
    assert approval["id"].startswith("ap-")
    assert approval["status"] == "Pending"
    assert approval["initiatorId"] == INITIATOR.user_id
    assert approval["decisions"] == []
    assert approval["policyEvaluations"] == outcome.evaluations
    assert evaluation(outcome, policy_id)["triggered"] is True
    signature_request = approval["activity"]["signatureRequest"]
    assert approval["activity"]["kind"] == "Wallets:Sign"
    assert signature_request == {**request.signature_request, "approvalId": approval["id"]}
    created = datetime.fromisoformat(approval["dateCreated"])
    assert datetime.fromisoformat(approval["expirationDate"]) - created == timedelta(minutes=60)
    assert schema_errors("approval", approval) == []
    assert env.kinds() == ["policy.triggered", "policy.approval.pending"]
    assert env.events[1][1] == {"approval": approval}
    assert env.service.get_approval(approval["id"]) == approval


def test_block_wins_over_approval_and_no_action(env: Env) -> None:
    approve_id = add(env, approval_action(group("us-a")))
    block_id = add(env, BLOCK)
    noop_id = add(env, NO_ACTION)
    outcome = env.service.evaluate(activity())
    assert outcome.kind == "Blocked"
    assert outcome.blocking_policy_ids == [block_id]
    assert [e["policyId"] for e in outcome.evaluations] == [approve_id, block_id, noop_id]
    assert all(e["triggered"] for e in outcome.evaluations)
    assert env.kinds() == ["policy.triggered"] * 3
    assert env.service.list_approvals()["items"] == []


def test_triggered_approval_groups_merge_into_one_approval_with_the_strictest_timeout(
    env: Env,
) -> None:
    add(env, approval_action(group("us-a"), timeout=60))
    add(env, approval_action(group("us-b"), timeout=30))
    add(env, approval_action(group("us-c")))
    outcome = env.service.evaluate(activity())
    assert outcome.approval is not None
    approval = outcome.approval
    assert len(env.service.list_approvals()["items"]) == 1
    assert env.kinds().count("policy.approval.pending") == 1
    created = datetime.fromisoformat(approval["dateCreated"])
    assert datetime.fromisoformat(approval["expirationDate"]) - created == timedelta(minutes=30)
    # every merged group must reach its quorum
    for user in ("us-a", "us-b"):
        after = env.service.decide(Actor(user, False), approval["id"], {"value": "Approved"})
        assert after["status"] == "Pending"
    final = env.service.decide(Actor("us-c", False), approval["id"], {"value": "Approved"})
    assert final["status"] == "Approved"


def test_only_triggered_policies_contribute_groups(env: Env) -> None:
    add(env, approval_action(group("us-a")))
    whitelist = {
        "kind": "TransactionRecipientWhitelist",
        "configuration": {"addresses": [RECIPIENT]},
    }
    skipped_id = add(env, approval_action(group("us-b")), whitelist)
    outcome = env.service.evaluate(activity(transfer()))
    assert outcome.approval is not None
    assert evaluation(outcome, skipped_id)["triggered"] is False
    decided = env.service.decide(
        Actor("us-a", False), outcome.approval["id"], {"value": "Approved"}
    )
    assert decided["status"] == "Approved"


def test_approval_without_timeout_has_no_expiration(env: Env) -> None:
    add(env, approval_action(group("us-a")))
    approval = env.service.evaluate(activity()).approval
    assert approval is not None
    assert "expirationDate" not in approval


# -- filters ----------------------------------------------------------------------------


def test_wallet_id_filter(env: Env) -> None:
    policy_id = add(env, BLOCK, filters={"walletId": {"in": ["wa-1", "wa-2"]}})
    hit = env.service.evaluate(activity(wallet_ids=("wa-9", "wa-2")))
    assert hit.kind == "Blocked"
    miss = env.service.evaluate(activity(wallet_ids=("wa-3",)))
    assert miss.kind == "Proceed"
    assert miss.evaluations == []
    assert evaluation(hit, policy_id)["triggered"] is True


def test_wallet_tags_has_any_filter(env: Env) -> None:
    add(env, BLOCK, filters={"walletTags": {"hasAny": ["hot", "treasury"]}})
    assert (
        env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("treasury",))).kind == "Blocked"
    )
    assert env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("cold",))).kind == "Proceed"
    assert env.service.evaluate(activity(wallet_ids=("wa-1",))).kind == "Proceed"


def test_wallet_tags_has_all_filter(env: Env) -> None:
    add(env, BLOCK, filters={"walletTags": {"hasAll": ["hot", "eu"]}})
    assert env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("hot",))).kind == "Proceed"
    both = activity(wallet_ids=("wa-1", "wa-2"), tags=("hot", "eu", "x"))
    assert env.service.evaluate(both).kind == "Blocked"


def test_wallet_id_and_tags_filters_combine_with_and(env: Env) -> None:
    add(env, BLOCK, filters={"walletId": {"in": ["wa-1"]}, "walletTags": {"hasAny": ["hot"]}})
    assert env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("cold",))).kind == "Proceed"
    assert env.service.evaluate(activity(wallet_ids=("wa-2",), tags=("hot",))).kind == "Proceed"
    assert env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("hot",))).kind == "Blocked"


def test_filtered_policies_never_match_a_key_without_wallets(env: Env) -> None:
    filtered_id = add(env, BLOCK, filters={"walletTags": {"hasAny": ["hot"]}})
    unfiltered_id = add(env, NO_ACTION)
    empty_filters_id = add(env, NO_ACTION, filters={})
    outcome = env.service.evaluate(activity(wallet_ids=(), tags=("hot",)))
    assert outcome.kind == "Proceed"
    evaluated = [e["policyId"] for e in outcome.evaluations]
    assert filtered_id not in evaluated
    assert evaluated == [unfiltered_id, empty_filters_id]


# -- rules ------------------------------------------------------------------------------

AMOUNT_LIMIT = {
    "kind": "TransactionAmountLimit",
    "configuration": {"limit": 100, "currency": "USD"},
}


@pytest.mark.parametrize(
    "body",
    [
        HASH_BODY,
        {"kind": "Message", "message": "0x68656c6c6f"},
        {"kind": "Eip712", "types": {}, "domain": {}, "message": {}},
        {"kind": "Transaction", "transaction": "0x02e783aa36a7"},
        transfer(data="0xa9059cbb"),  # contract call
        transfer(value_wei=0),
        transfer(to="not-an-address"),
    ],
)
@pytest.mark.parametrize(
    "rule",
    [
        AMOUNT_LIMIT,
        {
            "kind": "TransactionAmountVelocity",
            "configuration": {"limit": 100, "currency": "USD", "timeframe": 60},
        },
        {"kind": "TransactionRecipientWhitelist", "configuration": {"addresses": [RECIPIENT]}},
    ],
)
def test_amount_and_recipient_rules_fail_closed_when_nothing_can_be_inferred(
    env: Env, rule: dict[str, Any], body: dict[str, Any]
) -> None:
    policy_id = add(env, NO_ACTION, rule)
    result = evaluation(env.service.evaluate(activity(body)), policy_id)
    assert result["triggered"] is True
    assert "cannot be inferred" in result["reason"]


def test_amount_limit_values_a_plain_transfer(env: Env) -> None:
    policy_id = add(env, NO_ACTION, AMOUNT_LIMIT)
    below = evaluation(env.service.evaluate(activity(transfer(2 * ONE_ETHER))), policy_id)  # 80 USD
    assert below["triggered"] is False
    equal = evaluation(env.service.evaluate(activity(transfer(5 * ONE_ETHER // 2))), policy_id)
    assert equal["triggered"] is False  # 100 USD is not greater than the limit
    above = evaluation(env.service.evaluate(activity(transfer(3 * ONE_ETHER))), policy_id)  # 120
    assert above["triggered"] is True
    assert "120" in above["reason"]
    contexts = [data["policyEvaluation"]["context"] for _, data in env.events]
    assert contexts == [{"transactionAmount": {"value": "120", "currency": "USD"}}]


def test_amount_limit_fails_closed_without_a_price() -> None:
    db = Database(":memory:")
    env = make_env(db)  # no usd_prices
    policy_id = add(env, NO_ACTION, AMOUNT_LIMIT)
    result = evaluation(env.service.evaluate(activity(transfer(1))), policy_id)
    assert result["triggered"] is True
    assert "no price" in result["reason"]
    db.close()


def test_recipient_whitelist_compares_evm_addresses_case_insensitively(env: Env) -> None:
    rule = {
        "kind": "TransactionRecipientWhitelist",
        "configuration": {"addresses": [RECIPIENT.upper().replace("0X", "0x")]},
    }
    policy_id = add(env, NO_ACTION, rule)
    allowed = evaluation(env.service.evaluate(activity(transfer(to=RECIPIENT))), policy_id)
    assert allowed["triggered"] is False
    stranger = "0x" + "2b" * 20
    denied = evaluation(env.service.evaluate(activity(transfer(to=stranger))), policy_id)
    assert denied["triggered"] is True
    assert stranger in denied["reason"]


def test_amount_velocity_sums_the_window(env: Env) -> None:
    rule = {
        "kind": "TransactionAmountVelocity",
        "configuration": {"limit": 100, "currency": "USD", "timeframe": 10},
    }
    policy_id = add(env, NO_ACTION, rule)
    results = [
        evaluation(env.service.evaluate(activity(transfer())), policy_id)["triggered"]
        for _ in range(3)
    ]
    assert results == [False, False, True]  # 40, 80, 120 USD
    env.clock.advance(10 * 60 + 1)
    assert evaluation(env.service.evaluate(activity(transfer())), policy_id)["triggered"] is False
    # another key's transfers do not count
    for _ in range(3):
        other = activity(transfer(), key_id=OTHER_KEY)
        env.service.evaluate(other)
    assert evaluation(env.service.evaluate(activity(transfer())), policy_id)["triggered"] is False


def test_amount_velocity_fails_closed_when_the_window_holds_an_unvalued_activity(env: Env) -> None:
    rule = {
        "kind": "TransactionAmountVelocity",
        "configuration": {"limit": 1000, "currency": "USD", "timeframe": 10},
    }
    policy_id = add(env, NO_ACTION, rule)
    env.service.evaluate(activity(HASH_BODY))
    result = evaluation(env.service.evaluate(activity(transfer())), policy_id)
    assert result["triggered"] is True
    assert "no known amount" in result["reason"]


def test_count_velocity_triggers_when_the_count_with_this_request_exceeds_the_limit(
    env: Env,
) -> None:
    rule = {"kind": "TransactionCountVelocity", "configuration": {"limit": 2, "timeframe": 60}}
    policy_id = add(env, NO_ACTION, rule)
    results = [evaluation(env.service.evaluate(activity()), policy_id) for _ in range(3)]
    assert [r["triggered"] for r in results] == [False, False, True]  # 1, 2, 3 > 2
    other = env.service.evaluate(activity(key_id=OTHER_KEY))
    assert evaluation(other, policy_id)["triggered"] is False
    contexts = [data["policyEvaluation"]["context"] for _, data in env.events]
    assert contexts == [{"transactionCount": 3, "timeframe": 60}]


def test_count_velocity_window_slides_with_the_clock(env: Env) -> None:
    rule = {"kind": "TransactionCountVelocity", "configuration": {"limit": 1, "timeframe": 10}}
    policy_id = add(env, NO_ACTION, rule)
    env.service.evaluate(activity(key_id=KEY))
    env.service.evaluate(activity(key_id=OTHER_KEY))
    env.clock.advance(599)
    inside = env.service.evaluate(activity(key_id=KEY))
    assert evaluation(inside, policy_id)["triggered"] is True
    env.clock.advance(2)
    outside = env.service.evaluate(activity(key_id=OTHER_KEY))
    assert evaluation(outside, policy_id)["triggered"] is False


def test_count_velocity_shares_the_count_between_keys_of_one_wallet(env: Env) -> None:
    rule = {"kind": "TransactionCountVelocity", "configuration": {"limit": 1, "timeframe": 60}}
    policy_id = add(env, NO_ACTION, rule)
    env.service.evaluate(activity(key_id=KEY, wallet_ids=("wa-shared",)))
    shared = env.service.evaluate(activity(key_id=OTHER_KEY, wallet_ids=("wa-shared",)))
    assert evaluation(shared, policy_id)["triggered"] is True
    lonely = env.service.evaluate(activity(key_id="key-ccccc-ccccc-cccccccccccccccc"))
    assert evaluation(lonely, policy_id)["triggered"] is False


def test_blocked_and_denied_requests_do_not_count_towards_velocity(env: Env) -> None:
    count_rule = {
        "kind": "TransactionCountVelocity",
        "configuration": {"limit": 1, "timeframe": 60},
    }
    counter_id = add(env, NO_ACTION, count_rule)
    block_id = add(env, BLOCK, filters={"walletTags": {"hasAny": ["frozen"]}})
    approval_id = add(
        env, approval_action(group("us-a")), filters={"walletTags": {"hasAny": ["gated"]}}
    )
    blocked = env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("frozen",)))
    assert blocked.blocking_policy_ids == [block_id]
    gated = env.service.evaluate(activity(wallet_ids=("wa-1",), tags=("gated",)))
    assert gated.approval is not None
    assert evaluation(gated, approval_id)["triggered"] is True
    assert evaluation(gated, counter_id)["triggered"] is False  # the blocked one did not count
    env.service.decide(Actor("us-a", False), gated.approval["id"], {"value": "Denied"})
    after = env.service.evaluate(activity(wallet_ids=("wa-1",)))
    assert evaluation(after, counter_id)["triggered"] is False  # the denied one no longer counts


def test_chainalysis_prescreening_cannot_screen_offline(env: Env) -> None:
    def rule(skip: bool) -> dict[str, Any]:
        return {
            "kind": "ChainalysisTransactionPrescreening",
            "configuration": {
                "alerts": {"alertLevel": "HIGH", "categoryIds": []},
                "exposures": {"direct": {"categoryIds": []}},
                "addresses": {"categoryIds": []},
                "fallbackBehaviours": {
                    "skipUnscreenableTransaction": skip,
                    "skipUnsupportedNetwork": False,
                    "skipUnsupportedAsset": False,
                    "skipChainalysisFailure": False,
                },
            },
        }

    strict_id = add(env, NO_ACTION, rule(False))
    lenient_id = add(env, NO_ACTION, rule(True))
    travel_id = add(
        env,
        NO_ACTION,
        {
            "kind": "TravelRuleTransactionPrescreening",
            "configuration": {"vendor": "Notabene", "autoTriggerTimeoutSeconds": 0},
        },
    )
    outcome = env.service.evaluate(activity())
    assert evaluation(outcome, strict_id)["triggered"] is True
    assert evaluation(outcome, lenient_id)["triggered"] is False
    assert evaluation(outcome, travel_id)["triggered"] is False


def test_evaluate_does_not_mutate_the_callers_request(env: Env) -> None:
    add(env, approval_action(group("us-a")))
    request = activity()
    before = copy.deepcopy(request.signature_request)
    env.service.evaluate(request)
    assert request.signature_request == before
