"""Builders shared by the webhook tests: Dfns-shaped events, signed as Dfns signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

SECRET = "whs-unit-test-secret-0123456789abcdef"
OLD_SECRET = "whs-the-secret-being-rotated-out-000"
EXTERNAL_ID = "sg-order-42-abcdefghijklmnopqrstuvwxyz"


def event_id() -> str:
    return f"whe-{uuid.uuid4().hex[:5]}-{uuid.uuid4().hex[:5]}-{uuid.uuid4().hex[:16]}"


def signature_request(
    status: str = "Signed", *, external_id: str | None = EXTERNAL_ID, signature_id: str = "sig-1"
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "id": signature_id,
        "keyId": "key-1",
        "requester": {"userId": "us-engine", "tokenId": "to-1"},
        "requestBody": {"kind": "Hash", "hash": "0x" + "ab" * 32},
        "status": status,
        "dateRequested": "2025-01-01T00:00:00.000Z",
    }
    if external_id is not None:
        request["externalId"] = external_id
    return request


def approval(
    status: str = "Approved",
    *,
    external_id: str | None = EXTERNAL_ID,
    decisions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": "ap-1",
        "initiatorId": "us-engine",
        "status": status,
        "dateUpdated": "2025-01-01T00:00:05.000Z",
        "activity": {
            "kind": "Wallets:Sign",
            "signatureRequest": signature_request("Pending", external_id=external_id),
        },
        "policyEvaluations": [{"policyId": "plc-1", "triggered": True, "reason": "always"}],
        "decisions": decisions
        if decisions is not None
        else [
            {"userId": "us-alice", "date": "2025-01-01T00:00:04.000Z", "value": "Approved"},
        ],
    }


def event(
    kind: str = "wallet.signature.signed",
    data: dict[str, Any] | None = None,
    *,
    sent: int | None = None,
    attempt: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    if data is None:
        data = (
            {"approval": approval()}
            if kind.startswith("policy.approval.")
            else {"signatureRequest": signature_request()}
        )
    payload: dict[str, Any] = {
        "id": event_id(),
        "kind": kind,
        "date": "2025-01-01T00:00:06.000Z",
        "data": data,
        "timestampSent": int(time.time()) if sent is None else sent,
        "deliveryAttempt": attempt,
    }
    payload.update(extra)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON, as Dfns sends it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    """Written here with hmac directly, not with signgate's code."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(payload: dict[str, Any], secret: str = SECRET) -> tuple[bytes, str]:
    body = encode(payload)
    return body, sign(body, secret)
