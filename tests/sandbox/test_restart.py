"""A restart on the same SQLite file loses nothing: identities, keys, requests, approvals,
in-flight transitions, faults and the clock."""

from __future__ import annotations

import json
from pathlib import Path

from signgate.sandbox.server import SandboxServer
from tests.sandbox.helpers import Dfns, approval_policy, sandbox_settings

HASH_BODY = {"kind": "Hash", "hash": "0x" + "99" * 32}


def test_restart_keeps_everything(tmp_path: Path) -> None:
    settings = sandbox_settings(tmp_path)
    with SandboxServer(settings) as first:
        dfns = Dfns(first.base_url, settings.resolved_credentials_path())
        users = [dfns.identity(n).user_id for n in ("alice", "bob", "carol")]
        dfns.create_policy(approval_policy(users))
        waiting = dfns.sign("evm", HASH_BODY).json()
        executing = dfns.sign("evm", {**HASH_BODY, "externalId": "exec-1"}).json()
        dfns.decide(executing["approvalId"], "Approved", as_="alice")
        dfns.decide(executing["approvalId"], "Approved", as_="bob")
        assert dfns.signature("evm", executing["id"])["status"] == "Executing"
        dfns.faults(latencyMs=1, corruptSignatures=3)
        clock_before = dfns.advance(2)["nowTs"]
        credentials_before = json.loads(settings.resolved_credentials_path().read_text())
        dfns.close()

    with SandboxServer(settings) as second:
        dfns = Dfns(second.base_url, settings.resolved_credentials_path())
        try:
            credentials_after = json.loads(settings.resolved_credentials_path().read_text())
            assert credentials_after["identities"] == credentials_before["identities"]
            assert credentials_after["keys"] == credentials_before["keys"]
            assert dfns.http.get("/_local/clock").json()["nowTs"] >= clock_before
            faults = dfns.http.get("/_local/faults").json()
            assert faults["latencyMs"] == 1 and faults["corruptSignatures"] == 3
            dfns.faults(corruptSignatures=0)

            # The interrupted Executing -> Signed transition resumes.
            dfns.advance(5)
            assert dfns.signature("evm", executing["id"])["status"] == "Signed"
            # The pending approval is still there and still decides the request.
            approval = dfns.get(f"/v2/policy-approvals/{waiting['approvalId']}").json()
            assert approval["status"] == "Pending"
            dfns.decide(waiting["approvalId"], "Approved", as_="carol")
            dfns.decide(waiting["approvalId"], "Approved", as_="bob")
            dfns.advance(5)
            assert dfns.signature("evm", waiting["id"])["status"] == "Signed"
            # externalId idempotency spans the restart.
            again = dfns.sign("evm", {**HASH_BODY, "externalId": "exec-1"})
            assert again.json()["id"] == executing["id"]
        finally:
            dfns.close()
