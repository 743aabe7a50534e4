"""Signature requests through the policy engine: Pending -> Executing -> Signed, Rejected
on denial, expiry or Block; webhooks published on the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signgate.sandbox.server import SandboxServer
from tests.sandbox.helpers import Dfns, approval_policy, sandbox_settings
from tests.support.eventually import eventually_sync
from tests.support.recorder import HttpRecorder

HASH_BODY = {"kind": "Hash", "hash": "0x" + "5a" * 32}


@pytest.fixture
def receiver() -> Iterator[HttpRecorder]:
    with HttpRecorder() as endpoint:
        yield endpoint


def kinds(receiver: HttpRecorder) -> list[str]:
    """The kinds of the webhook events received so far, in arrival order."""
    return [str(request.json()["kind"]) for request in receiver.received]


def approvers(dfns: Dfns) -> list[str]:
    return [dfns.identity(name).user_id for name in ("alice", "bob", "carol")]


def pending(dfns: Dfns, key: str = "evm") -> dict[str, Any]:
    response = dfns.sign(key, HASH_BODY)
    assert response.status_code == 200, response.text
    request: dict[str, Any] = response.json()
    assert request["status"] == "Pending" and request["approvalId"].startswith("ap-")
    return request


def test_approved_request_executes_then_signs(dfns: Dfns, receiver: HttpRecorder) -> None:
    hook = dfns.write("POST", "/webhooks", {"url": receiver.url("/hook"), "events": ["*"]})
    assert hook.status_code == 200, hook.text
    dfns.create_policy(approval_policy(approvers(dfns)))
    request = pending(dfns)
    approval_id = request["approvalId"]

    listed = dfns.get("/v2/policy-approvals", as_="alice", status="Pending").json()
    assert [a["id"] for a in listed["items"]] == [approval_id]
    activity = listed["items"][0]["activity"]
    assert activity["kind"] == "Wallets:Sign"
    assert activity["signatureRequest"]["id"] == request["id"]

    assert dfns.decide(approval_id, "Approved", as_="alice").json()["status"] == "Pending"
    assert dfns.decide(approval_id, "Approved", as_="carol").json()["status"] == "Approved"
    executing = dfns.signature("evm", request["id"])
    assert executing["status"] == "Executing" and "datePolicyResolved" in executing
    dfns.advance(5)
    done = dfns.signature("evm", request["id"])
    assert done["status"] == "Signed" and done["signature"]["r"].startswith("0x")
    approval = dfns.get(f"/v2/policy-approvals/{approval_id}").json()
    assert approval["activity"]["signatureRequest"]["status"] == "Signed"

    eventually_sync(lambda: "wallet.signature.signed" in kinds(receiver), what="signed event")
    seen = kinds(receiver)
    for kind in (
        "policy.triggered",
        "policy.approval.pending",
        "wallet.signature.requested",
        "policy.approval.resolved",
    ):
        assert kind in seen
    events = [r.json() for r in receiver.received]
    signed_event = next(e for e in events if e["kind"] == "wallet.signature.signed")
    assert signed_event["data"]["signatureRequest"]["id"] == request["id"]
    assert receiver.received[0].headers["X-DFNS-WEBHOOK-SIGNATURE"].startswith("sha256=")


def test_denied_request_is_rejected_with_reason(dfns: Dfns) -> None:
    dfns.create_policy(approval_policy(approvers(dfns)))
    request = pending(dfns)
    denied = dfns.decide(request["approvalId"], "Denied", as_="bob", reason="not today")
    assert denied.json()["status"] == "Denied"
    rejected = dfns.signature("evm", request["id"])
    assert rejected["status"] == "Rejected"
    assert "not today" in rejected["reason"] and "datePolicyResolved" in rejected
    assert "signature" not in rejected


def test_expired_approval_rejects_the_request(dfns: Dfns) -> None:
    dfns.create_policy(approval_policy(approvers(dfns), autoRejectTimeout=10))
    request = pending(dfns)
    dfns.advance(10 * 60 + 1)
    rejected = dfns.signature("evm", request["id"])
    assert rejected["status"] == "Rejected" and "expired" in rejected["reason"]
    approval = dfns.get(f"/v2/policy-approvals/{request['approvalId']}").json()
    assert approval["status"] == "Expired"


def test_block_policy_rejects_by_default(dfns: Dfns) -> None:
    policy = dfns.create_policy(
        {
            "name": "no treasury signatures",
            "activityKind": "Wallets:Sign",
            "rule": {"kind": "AlwaysTrigger"},
            "action": {"kind": "Block"},
            "filters": {"walletTags": {"hasAny": ["treasury"]}},
        }
    )
    response = dfns.sign("evm", HASH_BODY)
    assert response.status_code == 200
    assert response.json()["status"] == "Rejected"
    assert policy["id"] in response.json()["reason"]
    # The filter only matches the treasury wallet's key.
    assert dfns.sign("ed", HASH_BODY).json()["status"] == "Signed"


def test_block_can_answer_403_and_pending_202(tmp_path: Path) -> None:
    settings = sandbox_settings(tmp_path, block_response="error", pending_response_status=202)
    with SandboxServer(settings) as server:
        dfns = Dfns(server.base_url, settings.resolved_credentials_path())
        try:
            dfns.create_policy(approval_policy(approvers(dfns)))
            waiting = dfns.sign("ed", HASH_BODY)
            assert waiting.status_code == 202 and waiting.json()["status"] == "Pending"
            dfns.create_policy(
                {
                    "name": "block all",
                    "activityKind": "Wallets:Sign",
                    "rule": {"kind": "AlwaysTrigger"},
                    "action": {"kind": "Block"},
                }
            )
            response = dfns.sign("evm", {**HASH_BODY, "externalId": "blocked-1"})
            assert response.status_code == 403
            assert response.json()["error"]["details"]["policyIds"]
            listed = dfns.get(f"/keys/{dfns.key_id('evm')}/signatures").json()
            assert listed["items"] == []
        finally:
            dfns.close()


def test_initiator_can_deny_its_own_request(dfns: Dfns) -> None:
    dfns.create_policy(approval_policy(approvers(dfns)))
    request = pending(dfns)
    assert dfns.decide(request["approvalId"], "Approved", as_="engine").status_code == 403
    assert dfns.decide(request["approvalId"], "Denied", as_="engine").status_code == 200
    assert dfns.signature("evm", request["id"])["status"] == "Rejected"


def test_forced_failure_of_a_pending_request(dfns: Dfns, receiver: HttpRecorder) -> None:
    dfns.write(
        "POST", "/webhooks", {"url": receiver.url("/hook"), "events": ["wallet.signature.failed"]}
    )
    dfns.create_policy(approval_policy(approvers(dfns)))
    request = pending(dfns)
    failed = dfns.http.post(f"/_local/signatures/{request['id']}/fail", json={"reason": "HSM down"})
    assert failed.status_code == 200
    assert dfns.signature("evm", request["id"])["status"] == "Failed"
    assert dfns.signature("evm", request["id"])["reason"] == "HSM down"
    again = dfns.http.post(f"/_local/signatures/{request['id']}/fail")
    assert again.status_code == 409
    eventually_sync(lambda: kinds(receiver) == ["wallet.signature.failed"], what="failed event")
