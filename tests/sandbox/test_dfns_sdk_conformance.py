"""A client nobody here wrote: the official PyPI ``dfns-sdk`` (1.0.2) drives the sandbox.

The SDK is synchronous; the sandbox serves from its own thread (``SandboxServer``), so the
SDK's blocking calls talk to a live server over 127.0.0.1. It signs a compact,
ASCII-escaped ``userActionPayload`` and sends httpx's own serialisation of the body, which
the sandbox must accept (payloads compared as JSON, as Dfns evidently does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dfns_sdk import DfnsClient, DfnsClientConfig, DfnsError, KeySigner

from signgate.sandbox.server import SandboxServer
from tests.sandbox.helpers import Dfns, recover

HASH = "0x" + "3c" * 32


@pytest.fixture
def sdk(server: SandboxServer, dfns: Dfns) -> Iterator[dict[str, DfnsClient]]:
    clients: dict[str, DfnsClient] = {}
    for name in ("engine", "alice", "bob", "carol"):
        identity = dfns.identity(name)
        signer = KeySigner(credential_id=identity.cred_id, private_key=identity.private_key_pem)
        config = DfnsClientConfig(
            auth_token=identity.auth_token, base_url=server.base_url, signer=signer
        )
        clients[name] = DfnsClient(config)
    yield clients
    for client in clients.values():
        client.close()


def test_full_flow_with_the_official_sdk(sdk: dict[str, DfnsClient], dfns: Dfns) -> None:
    engine = sdk["engine"]
    key_id = dfns.key_id("evm")
    approvers = [dfns.identity(n).user_id for n in ("alice", "bob", "carol")]
    policy: dict[str, Any] = engine.policies.create_policy(
        {
            "name": "Trésorerie: deux signatures ✓",
            "activityKind": "Wallets:Sign",
            "rule": {"kind": "AlwaysTrigger"},
            "action": {
                "kind": "RequestApproval",
                "approvalGroups": [
                    {"name": "Approvers", "quorum": 2, "approvers": {"userId": {"in": approvers}}}
                ],
            },
        }
    )
    assert policy["status"] == "Active"

    created: dict[str, Any] = dict(
        engine.keys.generate_signature(
            key_id, {"kind": "Hash", "hash": HASH, "externalId": "sdk-flow-1"}
        )
    )
    assert created["status"] == "Pending"
    read_back: dict[str, Any] = dict(engine.keys.get_signature(key_id, created["id"]))
    assert read_back["approvalId"] == created["approvalId"]
    listed: dict[str, Any] = dict(engine.keys.list_signatures(key_id))
    assert [item["id"] for item in listed["items"]] == [created["id"]]

    # Same externalId, other body: the SDK surfaces Dfns's 409 with details.duplicate.
    with pytest.raises(DfnsError) as conflict:
        engine.keys.generate_signature(
            key_id, {"kind": "Hash", "hash": "0x" + "00" * 32, "externalId": "sdk-flow-1"}
        )
    assert conflict.value.status_code == 409
    assert conflict.value.details["duplicate"]["id"] == created["id"]

    pending: dict[str, Any] = dict(sdk["alice"].policies.list_approvals({"status": "Pending"}))
    assert [a["id"] for a in pending["items"]] == [created["approvalId"]]
    first = dict(
        sdk["alice"].policies.create_approval_decision(created["approvalId"], {"value": "Approved"})
    )
    assert first["status"] == "Pending"
    second = dict(
        sdk["carol"].policies.create_approval_decision(created["approvalId"], {"value": "Approved"})
    )
    assert second["status"] == "Approved"
    with pytest.raises(DfnsError) as late:
        sdk["bob"].policies.create_approval_decision(created["approvalId"], {"value": "Denied"})
    assert late.value.status_code == 409

    dfns.advance(5)
    final: dict[str, Any] = dict(engine.keys.get_signature(key_id, created["id"]))
    assert final["status"] == "Signed"
    recovered = recover(bytes.fromhex(HASH[2:]), final["signature"])
    assert recovered.hex() == dfns.key("evm")["publicKey"]

    # A body-less signed DELETE: the SDK signs "" and sends nothing.
    archived: dict[str, Any] = dict(engine.policies.delete_policy(policy["id"]))
    assert archived["status"] == "Archived"


def test_sdk_errors_follow_the_dfns_envelope(sdk: dict[str, DfnsClient], dfns: Dfns) -> None:
    with pytest.raises(DfnsError) as missing:
        sdk["engine"].keys.get_key("key-xxxxx-xxxxx-xxxxxxxxxxxxxxxx")
    assert missing.value.status_code == 404
    with pytest.raises(DfnsError) as schnorr:
        sdk["engine"].keys.generate_signature(
            dfns.key_id("taproot"), {"kind": "Hash", "hash": HASH}
        )
    assert schnorr.value.status_code == 400
    assert "taprootMerkleRoot" in schnorr.value.message
    keys: dict[str, Any] = dict(sdk["alice"].keys.list_keys())
    assert len(keys["items"]) == 3
