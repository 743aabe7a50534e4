"""Fault injection and the clock, under /_local/ only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.helpers import Dfns, recover

HASH = "0x" + "77" * 32


def test_faults_round_trip_and_validation(dfns: Dfns) -> None:
    initial = dfns.http.get("/_local/faults").json()
    assert initial["rate429"] == 0 and initial["dropAfterCommit"] == 0
    updated = dfns.faults(latencyMs=1, webhookReorder=3)
    assert updated["latencyMs"] == 1 and updated["webhookReorder"] == 3
    assert dfns.http.get("/_local/faults").json() == updated
    bad = dfns.http.put("/_local/faults", json={"rate429": 2})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("body.rate429:")
    unknown = dfns.http.put("/_local/faults", json={"explode": True})
    assert unknown.status_code == 400


def test_429_with_retry_after_only_on_dfns_paths(dfns: Dfns) -> None:
    dfns.faults(rate429=1.0, retryAfterSeconds=7)
    response = dfns.get("/keys")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["status"] == 429
    assert dfns.http.get("/_local/clock").status_code == 200
    dfns.faults(rate429=0.0)
    assert dfns.get("/keys").status_code == 200


def test_injected_5xx_changes_nothing(dfns: Dfns) -> None:
    path = f"/keys/{dfns.key_id('ed')}/signatures"
    body = {"kind": "Hash", "hash": HASH}
    token = dfns.user_action("POST", path, body)
    dfns.faults(errorRate=1.0, errorStatus=503)
    response = dfns.send("POST", path, body, token=token)
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("unexpected error")
    dfns.faults(errorRate=0.0)
    # The request never reached the handler: the token is still good and nothing exists.
    assert dfns.get(path).json()["items"] == []
    assert dfns.send("POST", path, body, token=token).status_code == 200


def test_drop_after_commit_leaves_exactly_one_request(dfns: Dfns) -> None:
    body = {"kind": "Hash", "hash": HASH, "externalId": "drop-me"}
    dfns.faults(dropAfterCommit=1)
    with pytest.raises(httpx.RemoteProtocolError):
        dfns.sign("ed", body)
    assert dfns.http.get("/_local/faults").json()["dropAfterCommit"] == 0
    listed = dfns.get(f"/keys/{dfns.key_id('ed')}/signatures").json()["items"]
    assert len(listed) == 1 and listed[0]["externalId"] == "drop-me"
    retry = dfns.sign("ed", body)
    assert retry.status_code == 200 and retry.json()["id"] == listed[0]["id"]
    assert len(dfns.get(f"/keys/{dfns.key_id('ed')}/signatures").json()["items"]) == 1


def test_drop_path_prefix_limits_which_writes_drop(dfns: Dfns) -> None:
    dfns.faults(dropAfterCommit=1, dropPathPrefix="/webhooks")
    assert dfns.sign("ed", {"kind": "Hash", "hash": HASH}).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        dfns.write("POST", "/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["*"]})
    assert len(dfns.get("/webhooks").json()["items"]) == 1


def _verifies(dfns: Dfns, result: dict[str, Any]) -> bool:
    recovered = recover(bytes.fromhex(HASH[2:]), result["signature"])
    return bool(recovered.hex() == dfns.key("evm")["publicKey"])


def test_corrupt_next_signatures(dfns: Dfns) -> None:
    dfns.faults(corruptSignatures=1)
    tampered = dfns.sign("evm", {"kind": "Hash", "hash": HASH}).json()
    honest = dfns.sign("evm", {"kind": "Hash", "hash": HASH}).json()
    assert tampered["status"] == honest["status"] == "Signed"
    assert tampered["signature"]["r"] == honest["signature"]["r"]
    assert tampered["signature"]["s"] != honest["signature"]["s"]
    assert not _verifies(dfns, tampered)
    assert _verifies(dfns, honest)


def test_fail_next_signatures(dfns: Dfns) -> None:
    dfns.faults(failSignatures=1)
    failed = dfns.sign("ed", {"kind": "Hash", "hash": HASH}).json()
    assert failed["status"] == "Failed" and "fault injection" in failed["reason"]
    assert dfns.sign("ed", {"kind": "Hash", "hash": HASH}).json()["status"] == "Signed"


def test_clock_advance_and_scale(dfns: Dfns) -> None:
    before = dfns.http.get("/_local/clock").json()
    after = dfns.advance(3600)
    assert after["nowTs"] - before["nowTs"] >= 3600
    scaled = dfns.http.post("/_local/clock", json={"scale": 60}).json()
    assert scaled["scale"] == 60
    assert dfns.http.post("/_local/clock", json={"advanceSeconds": -5}).status_code == 400
    assert dfns.http.post("/_local/clock", json={}).status_code == 400
    dfns.reset()
    assert dfns.http.get("/_local/clock").json()["scale"] == 1
    assert dfns.http.get("/_local/faults").json()["latencyMs"] == 0
