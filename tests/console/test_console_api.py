"""The approval console's page and JSON endpoints, against the sandbox over real HTTP.

Decisions made through the console go through User Action Signing as the chosen user and
meet every rule the Dfns API applies: eligibility, one decision per user, the initiator may
only deny, permissions, resolved approvals take no decisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from activities.payout import serialize_eip1559
from signgate.contracts import BuildTransferInput
from signgate.sandbox.console import summarize_body
from signgate.sandbox.server import SandboxServer
from tests.sandbox.helpers import Dfns, approval_policy, client_for, serve

CONSOLE = {"X-Signgate-Console": "1"}
TYPED_DATA: dict[str, Any] = {
    "kind": "Eip712",
    "types": {
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 11155111,
        "verifyingContract": "0x" + "cc" * 20,
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0x" + "cd" * 20},
        "to": {"name": "Bob", "wallet": "0x" + "bb" * 20},
        "contents": "<script>alert(1)</script>",
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    yield from serve(tmp_path_factory)


@pytest.fixture
def dfns(server: SandboxServer) -> Iterator[Dfns]:
    yield from client_for(server)


def _unsigned_transfer() -> str:
    spec = BuildTransferInput(
        chain_id=11155111,
        nonce=9,
        to="0x" + "42" * 20,
        value_wei=1_234_500_000_000_000_000,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
    )
    return "0x" + serialize_eip1559(spec).hex()


def _gate(dfns: Dfns, *, quorum: int = 2, **extra: Any) -> dict[str, Any]:
    users = [dfns.identity("alice").user_id, dfns.identity("bob").user_id]
    return dfns.create_policy(approval_policy(users, quorum=quorum, **extra))


def _request(dfns: Dfns, body: dict[str, Any]) -> dict[str, Any]:
    response = dfns.write("POST", f"/wallets/{dfns.wallet_id('evm')}/signatures", body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    assert created["status"] == "Pending"
    return created


def _pending(dfns: Dfns) -> dict[str, dict[str, Any]]:
    response = dfns.http.get("/_local/console/approvals")
    assert response.status_code == 200, response.text
    return {a["id"]: a for a in response.json()["pending"]}


def _rows(approval: dict[str, Any]) -> dict[str, str]:
    return {row["label"]: row["value"] for row in approval["request"]["summary"]}


def _decide(
    dfns: Dfns,
    approval_id: str,
    user: str,
    value: str = "Approved",
    *,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"user": user, "value": value}
    if reason is not None:
        body["reason"] = reason
    return dfns.http.post(
        f"/_local/console/approvals/{approval_id}/decisions",
        json=body,
        headers=CONSOLE if headers is None else headers,
    )


def _message(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


# --- the page ---------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_locked_down(dfns: Dfns) -> None:
    first = dfns.http.get("/console")
    second = dfns.http.get("/console")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    csp = first.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in first.text
    assert f'<style nonce="{nonce.group(1)}">' in first.text
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert nonce.group(1) not in second.headers["content-security-policy"]
    # Offline: nothing is loaded from anywhere else.
    assert re.findall(r"\b(?:src|href)\s*=\s*\"([^\"]*)\"", first.text) == ["data:,"]
    assert "://" not in first.text
    assert first.headers["x-frame-options"] == "DENY"


def test_users_lists_who_may_decide_without_secrets(dfns: Dfns) -> None:
    response = dfns.http.get("/_local/console/users")
    assert response.status_code == 200
    body = response.json()
    users = {u["name"]: u for u in body["users"]}
    assert set(users) == {"alice", "bob", "carol", "reader", "engine"}
    assert [u["name"] for u in body["users"]][-1] == "engine", "people come first"
    assert users["alice"]["canDecide"] and users["alice"]["kind"] == "User"
    assert not users["reader"]["canDecide"]
    assert users["engine"]["isInitiator"] and users["engine"]["kind"] == "ServiceAccount"
    assert users["bob"]["userId"] == dfns.identity("bob").user_id
    assert body["org"]["name"] == "sandbox tests"
    for name in users:
        identity = dfns.identity(name)
        assert identity.auth_token not in response.text
        assert identity.private_key_pem.splitlines()[1] not in response.text


# --- listing ------------------------------------------------------------------------------------


def test_pending_approvals_show_the_request_decoded(dfns: Dfns) -> None:
    policy = _gate(dfns, autoRejectTimeout=30)
    eip712 = _request(dfns, TYPED_DATA)
    transfer = _request(
        dfns, {"kind": "Transaction", "transaction": _unsigned_transfer(), "externalId": "p-1"}
    )
    hashed = _request(dfns, {"kind": "Hash", "hash": "ab" * 32})
    message = _request(dfns, {"kind": "Message", "message": "0x" + b"pay 10 USDC".hex()})

    pending = _pending(dfns)
    assert set(pending) == {r["approvalId"] for r in (eip712, transfer, hashed, message)}, (
        "every Pending approval is listed"
    )

    typed = pending[eip712["approvalId"]]
    rows = _rows(typed)
    assert rows["Domain name"] == "Ether Mail"
    assert rows["Domain chain id"] == "11155111"
    assert rows["Primary type"] == "Mail"
    assert rows["message.contents"] == "<script>alert(1)</script>"
    assert rows["message.to"] == '{"name":"Bob","wallet":"0x' + "bb" * 20 + '"}'
    assert re.fullmatch(r"0x[0-9a-f]{64}", rows["EIP-712 digest"])
    request = typed["request"]
    assert request["kind"] == "Eip712"
    assert request["keyId"] == dfns.key_id("evm") and request["keyName"] == "evm"
    assert request["walletId"] == dfns.wallet_id("evm")
    assert request["network"] == "EthereumSepolia"
    assert request["signatureId"] == eip712["id"] and request["status"] == "Pending"
    assert typed["initiator"] == {"userId": dfns.identity("engine").user_id, "name": "engine"}
    assert typed["policies"] == [{"id": policy["id"], "name": "needs approval"}]
    assert typed["groups"] == [
        {
            "name": None,
            "policyId": policy["id"],
            "policyName": "needs approval",
            "quorum": 2,
            "approvals": 0,
            "approvedBy": [],
            "approvers": ["alice", "bob"],
            "initiatorCanApprove": False,
        }
    ]
    assert typed["decisions"] == []
    assert typed["expirationDate"] is not None
    assert 0 < typed["expiresInSeconds"] <= 30 * 60

    tx = _rows(pending[transfer["approvalId"]])
    assert tx["Transaction type"] == "EIP-1559"
    assert tx["To"] == "0x" + "42" * 20
    assert tx["Value"] == "1234500000000000000 wei (1.2345 ETH)"
    assert tx["Chain id"] == "11155111" and tx["Nonce"] == "9" and tx["Data"] == "(none)"
    assert pending[transfer["approvalId"]]["request"]["externalId"] == "p-1"

    assert _rows(pending[hashed["approvalId"]]) == {"Hash": "ab" * 32}
    assert _rows(pending[message["approvalId"]])["Message (text)"] == "pay 10 USDC"


def test_an_approval_without_timeout_never_expires_on_the_page(dfns: Dfns) -> None:
    _gate(dfns)
    created = _request(dfns, {"kind": "Hash", "hash": "cd" * 32})
    shown = _pending(dfns)[created["approvalId"]]
    assert shown["expirationDate"] is None and shown["expiresInSeconds"] is None


# --- deciding -----------------------------------------------------------------------------------


def test_two_approvers_approve_and_the_request_is_signed(dfns: Dfns) -> None:
    _gate(dfns)
    created = _request(dfns, {"kind": "Hash", "hash": "12" * 32})
    approval_id = created["approvalId"]

    first = _decide(dfns, approval_id, "alice", reason="checked the invoice")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user"] == "alice" and body["status"] == "Pending"
    assert body["groups"][0]["approvals"] == 1 and body["groups"][0]["approvedBy"] == ["alice"]
    assert body["decisions"][0]["name"] == "alice"
    assert body["decisions"][0]["reason"] == "checked the invoice"

    # The decision is the user's own: Dfns's API shows alice's decision on the approval.
    seen = dfns.get(f"/v2/policy-approvals/{approval_id}", as_="alice").json()
    assert seen["decisions"][0]["userId"] == dfns.identity("alice").user_id

    second = _decide(dfns, approval_id, dfns.identity("bob").user_id)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "Approved" and second.json()["user"] == "bob"
    assert approval_id not in _pending(dfns)

    dfns.advance(6)  # past the test org's executing delay
    assert dfns.signature("evm", created["id"])["status"] == "Signed"
    resolved = dfns.http.get("/_local/console/approvals").json()["resolved"]
    shown = next(a for a in resolved if a["id"] == approval_id)
    assert shown["status"] == "Approved"
    assert shown["request"]["status"] == "Signed"
    assert [d["name"] for d in shown["decisions"]] == ["alice", "bob"]


def test_a_decision_is_a_signed_user_action(server: SandboxServer, dfns: Dfns) -> None:
    _gate(dfns)
    approval_id = _request(dfns, {"kind": "Hash", "hash": "34" * 32})["approvalId"]
    assert _decide(dfns, approval_id, "bob", "Denied", reason="no").status_code == 200
    rows = server.sandbox.db.query(
        "SELECT user_id, method, path, payload, used_ts FROM sandbox_user_actions WHERE path = ?",
        (f"/v2/policy-approvals/{approval_id}/decisions",),
    )
    assert [(r["user_id"], r["method"], r["payload"]) for r in rows] == [
        (dfns.identity("bob").user_id, "POST", '{"value":"Denied","reason":"no"}')
    ]
    assert rows[0]["used_ts"] is not None, "the user-action token was checked and spent"


def test_the_initiator_may_deny_but_not_approve(dfns: Dfns) -> None:
    _gate(dfns)
    created = _request(dfns, {"kind": "Hash", "hash": "56" * 32})
    approval_id = created["approvalId"]
    refused = _decide(dfns, approval_id, "engine")
    assert refused.status_code == 403
    assert _message(refused) == "user engine is not an approver of this approval"
    denied = _decide(dfns, approval_id, "engine", "Denied", reason="deadline passed")
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "Denied"
    signature = dfns.signature("evm", created["id"])
    assert signature["status"] == "Rejected"
    assert "deadline passed" in signature["reason"]


def test_refusals_name_the_problem_and_change_nothing(dfns: Dfns) -> None:
    _gate(dfns)
    approval_id = _request(dfns, {"kind": "Hash", "hash": "78" * 32})["approvalId"]
    assert _decide(dfns, approval_id, "bob").status_code == 200

    again = _decide(dfns, approval_id, "bob", "Denied")
    assert again.status_code == 409
    assert _message(again) == "user bob has already decided on this approval"

    outsider = _decide(dfns, approval_id, "carol")
    assert outsider.status_code == 403
    assert _message(outsider) == "user carol is not an approver of this approval"

    unpermitted = _decide(dfns, approval_id, "reader")
    assert unpermitted.status_code == 403
    assert _message(unpermitted) == (
        "CustomerEmployee reader is not authorized to perform operation "
        "(Policies:Approvals:Approve)"
    )

    unknown = _decide(dfns, approval_id, "mallory")
    assert unknown.status_code == 400
    assert _message(unknown) == "body.user: 'mallory' is not a user of this org"

    bad_value = _decide(dfns, approval_id, "alice", "Maybe")
    assert bad_value.status_code == 400
    assert _message(bad_value) == "body.value: must be 'Approved' or 'Denied'"

    too_long = _decide(dfns, approval_id, "alice", reason="x" * 1001)
    assert too_long.status_code == 400 and "body.reason" in _message(too_long)

    missing = _decide(dfns, "ap-nope", "alice")
    assert missing.status_code == 404

    shown = _pending(dfns)[approval_id]
    assert [d["name"] for d in shown["decisions"]] == ["bob"]
    assert shown["groups"][0]["approvals"] == 1

    assert _decide(dfns, approval_id, "alice").json()["status"] == "Approved"
    late = _decide(dfns, approval_id, "carol", "Denied")
    assert late.status_code == 409
    assert _message(late) == f"approval {approval_id} is Approved; it takes no decisions"


def test_decisions_come_only_from_the_console_on_a_loopback_address(dfns: Dfns) -> None:
    _gate(dfns)
    approval_id = _request(dfns, {"kind": "Hash", "hash": "9a" * 32})["approvalId"]
    without_header = _decide(dfns, approval_id, "alice", headers={})
    assert without_header.status_code == 403
    assert "X-Signgate-Console" in _message(without_header)

    foreign = _decide(
        dfns, approval_id, "alice", headers={**CONSOLE, "Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert _message(foreign) == "console decisions must come from the console's own origin"

    rebound = _decide(dfns, approval_id, "alice", headers={**CONSOLE, "Host": "evil.example"})
    assert rebound.status_code == 403
    assert dfns.http.get("/console", headers={"Host": "evil.example"}).status_code == 403

    same_origin = _decide(dfns, approval_id, "alice", headers={**CONSOLE, "Origin": dfns.base_url})
    assert same_origin.status_code == 200, same_origin.text
    assert dfns.http.get("/console", headers={"Host": "localhost:1"}).status_code == 200


def test_injected_faults_never_hit_the_console(dfns: Dfns) -> None:
    _gate(dfns)
    approval_id = _request(dfns, {"kind": "Hash", "hash": "bc" * 32})["approvalId"]
    dfns.faults(errorRate=1.0, errorStatus=503)
    assert dfns.get("/keys").status_code == 503
    assert dfns.http.get("/console").status_code == 200
    assert dfns.http.get("/_local/console/users").status_code == 200
    assert approval_id in _pending(dfns)
    assert _decide(dfns, approval_id, "alice").status_code == 200


# --- decoding ------------------------------------------------------------------------------------


def test_bodies_that_cannot_be_decoded_are_still_described() -> None:
    decoded = dict(summarize_body({"kind": "Transaction", "transaction": "0xdeadbeef"}))
    assert decoded["Transaction"] == "0xdeadbeef"
    assert decoded["Decoded"].startswith("not an unsigned EVM transaction")
    binary = dict(summarize_body({"kind": "Message", "message": "0xff00ff"}))
    assert binary == {"Message (hex)": "0xff00ff"}
    long = dict(summarize_body({"kind": "Message", "message": "0x" + "61" * 500}))
    assert long["Message (hex)"].endswith("… (500 bytes)")
    assert long["Message (text)"].endswith("…")
    taproot = dict(summarize_body({"kind": "Hash", "hash": "00" * 32, "taprootMerkleRoot": ""}))
    assert taproot["Taproot merkle root"] == "(none: key-path spend, BIP-86)"
    other = summarize_body({"kind": "Psbt", "psbt": "0x00"})
    assert other == [("Body", '{"kind":"Psbt","psbt":"0x00"}')]
    ambiguous = dict(
        summarize_body(
            {
                "kind": "Eip712",
                "types": {"A": [{"name": "x", "type": "uint256"}], "B": []},
                "domain": {},
                "message": {f"f{i}": i for i in range(8)},
            }
        )
    )
    assert ambiguous["Primary type"] == "(cannot tell)"
    assert ambiguous["message"] == "… 2 more fields"
    assert ambiguous["EIP-712 digest"].startswith("cannot compute")
