"""Shared builders for the policy engine tests (policies, signature activities, a service)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.db import Database
from signgate.sandbox.ids import new_id
from signgate.sandbox.policies import Actor, PolicyOutcome, PolicyService, SignActivity
from signgate.sandbox.validation import load_schema

ADMIN = Actor("us-admin-00000-0000000000000000", is_service_account=False)
INITIATOR = Actor("us-initi-00000-0000000000000000", is_service_account=False)
KEY = "key-aaaaa-aaaaa-aaaaaaaaaaaaaaaa"
OTHER_KEY = "key-bbbbb-bbbbb-bbbbbbbbbbbbbbbb"
HASH_BODY = {"kind": "Hash", "hash": "0x" + "ab" * 32}
RECIPIENT = "0x" + "1a" * 20
ONE_ETHER = 10**18
ALWAYS = {"kind": "AlwaysTrigger"}


@dataclass
class Env:
    db: Database
    clock: Clock
    service: PolicyService
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def make_env(db: Database, clock: Clock | None = None, **kwargs: Any) -> Env:
    events: list[tuple[str, dict[str, Any]]] = []
    # Nearly frozen: sandbox time moves only when a test advances it.
    clock = clock or Clock(scale=1e-9)
    service = PolicyService(db, clock, lambda kind, data: events.append((kind, data)), **kwargs)
    env = Env(db, clock, service, events)
    service.set_resolution_handler(env.resolved.append)
    return env


def transfer(value_wei: int = ONE_ETHER, to: str = RECIPIENT, **extra: Any) -> dict[str, Any]:
    """An EVM JSON Transaction request body (a plain value transfer on chain 1)."""
    return {
        "kind": "Transaction",
        "transaction": {"to": to, "value": str(value_wei), "chainId": 1, **extra},
    }


def activity(
    body: dict[str, Any] | None = None,
    *,
    key_id: str = KEY,
    wallet_ids: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
    initiator: Actor = INITIATOR,
) -> SignActivity:
    request = {
        "id": new_id("sig"),
        "keyId": key_id,
        "requester": {"userId": initiator.user_id},
        "requestBody": body or HASH_BODY,
        "status": "Pending",
        "dateRequested": isoformat(datetime.now().astimezone()),
    }
    return SignActivity(initiator, request, wallet_ids, tags)


def group(*users: str, quorum: int = 1, **flags: Any) -> dict[str, Any]:
    approvers: dict[str, Any] = {"userId": {"in": list(users)}} if users else {}
    return {"name": "approvers", "quorum": quorum, "approvers": approvers, **flags}


def policy_body(
    action: dict[str, Any], rule: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"name": "p", "activityKind": "Wallets:Sign", "rule": rule or ALWAYS, "action": action}
    return copy.deepcopy({**body, **extra})


def approval_action(*groups: dict[str, Any], timeout: int | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"kind": "RequestApproval", "approvalGroups": list(groups)}
    if timeout is not None:
        action["autoRejectTimeout"] = timeout
    return action


BLOCK = {"kind": "Block"}
NO_ACTION = {"kind": "NoAction"}


def add(env: Env, action: dict[str, Any], rule: dict[str, Any] | None = None, **extra: Any) -> str:
    policy_id: str = env.service.create_policy(ADMIN, policy_body(action, rule, **extra))["id"]
    return policy_id


def evaluation(outcome: PolicyOutcome, policy_id: str) -> dict[str, Any]:
    matches = [e for e in outcome.evaluations if e["policyId"] == policy_id]
    assert len(matches) == 1, outcome.evaluations
    return matches[0]


def schema_errors(name: str, instance: Any) -> list[str]:
    return [
        e.message
        for e in Draft202012Validator(load_schema(f"policies#{name}")).iter_errors(instance)
    ]
