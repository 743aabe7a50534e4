"""activities.signing against a scripted Dfns (httpx.MockTransport), user actions included."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.signing import SigningActivities, same_request
from activities.verification import VerificationActivities
from signgate import ids
from signgate.contracts import DenyApprovalInput, DescribeApprovalInput, SigningTarget, SubmitInput
from signgate.dfns.auth import CredentialSigner
from signgate.dfns.client import DfnsClient
from signgate.dfns.requests import HashRequest

HASH = "ab" * 32
KEY = SigningTarget(kind="key", id="key-1")
LEGACY = SigningTarget(kind="public-key", id="pk-1")
CRED = "cred-1"
Handler = Callable[[httpx.Request], httpx.Response | None]


def _signature(
    external_id: str | None, body_hash: str = HASH, status: str = "Pending"
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Hash", "hash": body_hash}
    if external_id is not None:
        body["externalId"] = external_id
    return {
        "id": "sig-1",
        "keyId": "key-1",
        "requester": {"userId": "us-1"},
        "requestBody": body,
        "status": status,
        "approvalId": "ap-1",
        "externalId": external_id,
        "dateRequested": "2026-11-21T10:00:00.000Z",
    }


def _approval(status: str) -> dict[str, Any]:
    return {
        "id": "ap-1",
        "initiatorId": "us-1",
        "status": status,
        "dateUpdated": "2026-11-21T10:00:00.000Z",
        "activity": {"kind": "Wallets:Sign"},
        "decisions": [],
    }


def _client(handler: Handler) -> tuple[DfnsClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/action/init":
            return httpx.Response(
                200,
                json={
                    "challenge": "c",
                    "challengeIdentifier": "ci",
                    "allowCredentials": {"key": [{"type": "public-key", "id": CRED}]},
                },
            )
        if request.url.path == "/auth/action":
            return httpx.Response(200, json={"userAction": "ua-token"})
        response = handler(request)
        return response if response is not None else httpx.Response(404, json={})

    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    http = httpx.AsyncClient(base_url="https://dfns.test", transport=httpx.MockTransport(route))
    return DfnsClient(http, auth_token="token", signer=CredentialSigner(CRED, pem)), seen


def _submit(external_id: str = "sg-abc") -> SubmitInput:
    return SubmitInput(target=KEY, request=HashRequest(hash=HASH, external_id=external_id))


async def test_submit_returns_the_request_without_its_echoed_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/keys/key-1/signatures":
            assert json.loads(request.content)["externalId"] == "sg-abc"
            return httpx.Response(200, json=_signature("sg-abc"))
        return None

    dfns, _ = _client(handler)
    view = (await ActivityEnvironment().run(SigningActivities(dfns).submit, _submit())).view
    assert (view.id, view.status, view.approval_id) == ("sig-1", "Pending", "ap-1")
    assert view.request_body == {}


_KEY = {
    "id": "key-1",
    "scheme": "ECDSA",
    "curve": "secp256k1",
    "publicKey": "02" + "11" * 32,
    "status": "Active",
}


async def test_a_waiting_request_has_the_worker_hold_its_key_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/keys/key-1/signatures":
            return httpx.Response(200, json=_signature("sg-abc"))
        if request.method == "GET" and request.url.path == "/keys/key-1":
            return httpx.Response(200, json=_KEY)
        return None

    dfns, seen = _client(handler)
    verifier = VerificationActivities(dfns)
    signing = SigningActivities(dfns, verifier=verifier)
    for external_id in ("sg-abc", "sg-def"):
        result = await ActivityEnvironment().run(signing.submit, _submit(external_id))
        assert result.view.status == "Pending" and result.verification is None
    # Read at the first submit, so a signed event's copy can be checked without a call.
    assert [r.url.path for r in seen if r.method == "GET"] == ["/keys/key-1"]
    held = verifier.held_public_key(KEY)
    assert held is not None and held.public_key.hex() == _KEY["publicKey"]


async def test_a_key_that_cannot_be_read_does_not_fail_the_submit() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/keys/key-1/signatures":
            return httpx.Response(200, json=_signature("sg-abc"))
        if request.method == "GET" and request.url.path == "/keys/key-1":
            return httpx.Response(503, json={"message": "unavailable"})
        return None

    dfns, _ = _client(handler)
    verifier = VerificationActivities(dfns)
    signing = SigningActivities(dfns, verifier=verifier)
    result = await ActivityEnvironment().run(signing.submit, _submit())
    assert result.view.id == "sig-1" and result.view.status == "Pending"
    assert verifier.held_public_key(KEY) is None


async def test_a_409_is_resolved_by_fetching_the_duplicate() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(
                409,
                json={
                    "error": {
                        "status": 409,
                        "message": "Conflicting signature request with same externalId",
                        "details": {"duplicate": {"id": "sig-1", "externalId": "sg-abc"}},
                    }
                },
            )
        if request.url.path == "/keys/key-1/signatures/sig-1":
            return httpx.Response(200, json=_signature("sg-abc", body_hash="0x" + HASH.upper()))
        return None

    dfns, seen = _client(handler)
    view = (await ActivityEnvironment().run(SigningActivities(dfns).submit, _submit())).view
    assert view.id == "sig-1"
    assert [r.url.path for r in seen][-1] == "/keys/key-1/signatures/sig-1"


async def test_a_409_for_a_different_request_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            details = {"duplicate": {"id": "sig-1", "externalId": "sg-abc"}}
            return httpx.Response(409, json={"error": {"message": "dup", "details": details}})
        return httpx.Response(200, json=_signature("sg-abc", body_hash="cd" * 32))

    dfns, _ = _client(handler)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(SigningActivities(dfns).submit, _submit())
    assert caught.value.type == ids.ERR_REQUEST_MISMATCH and caught.value.non_retryable
    assert "use a new idempotency key" in caught.value.message


async def test_a_400_fails_the_submit_for_good() -> None:
    dfns, _ = _client(
        lambda r: (
            httpx.Response(400, json={"error": {"message": "body.hash: invalid"}})
            if r.method == "POST"
            else None
        )
    )
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(SigningActivities(dfns).submit, _submit())
    assert caught.value.type == ids.ERR_INVALID_REQUEST and caught.value.non_retryable
    assert "body.hash: invalid" in caught.value.message


async def test_a_legacy_submit_with_an_unknown_outcome_is_not_retried() -> None:
    def unavailable(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(503, json={"message": "down"}) if request.method == "POST" else None

    dfns, _ = _client(unavailable)
    legacy = SubmitInput(target=LEGACY, request=HashRequest(hash=HASH))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(SigningActivities(dfns).submit, legacy)
    assert caught.value.non_retryable and "no idempotency key" in caught.value.message
    assert caught.value.type == ids.ERR_SUBMIT_UNKNOWN

    def limited(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow"})
        return None

    dfns, _ = _client(limited)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(SigningActivities(dfns).submit, legacy)
    assert caught.value.type == ids.ERR_RATE_LIMITED and not caught.value.non_retryable


async def test_reads_map_errors() -> None:
    dfns, _ = _client(lambda _r: httpx.Response(500, json={"error": {"message": "boom"}}))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            SigningActivities(dfns).describe_approval, DescribeApprovalInput(approval_id="ap-1")
        )
    assert caught.value.type == ids.ERR_SERVER_ERROR and not caught.value.non_retryable


def _decided_by(status: str, user: str) -> dict[str, Any]:
    approval = _approval(status)
    approval["decisions"] = [
        {"userId": user, "value": status, "date": "2026-11-21T10:00:00.000Z", "reason": None}
    ]
    return approval


@pytest.mark.parametrize(
    ("decision", "read", "denied", "status", "calls"),
    [
        # The usual path: challenge, signed answer, decision; no read.
        (200, None, True, "Denied", 3),
        # Decided by someone else before the engine came to deny it.
        (409, _decided_by("Approved", "us-2"), False, "Approved", 4),
        # An earlier attempt's decision committed and its answer was lost: still ours.
        (409, _decided_by("Denied", "us-1"), True, "Denied", 4),
        (400, _decided_by("Denied", "us-2"), False, "Denied", 4),
        # Dfns does not document the status for a decided approval: any refusal is read.
        (403, _decided_by("Approved", "us-2"), False, "Approved", 4),
        (422, _decided_by("Expired", "us-2"), False, "Expired", 4),
    ],
)
async def test_deny_own_approval(
    decision: int, read: dict[str, Any] | None, denied: bool, status: str, calls: int
) -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET":
            assert read is not None, "the approval must not be read before the decision"
            return httpx.Response(200, json=read)
        assert json.loads(request.content) == {"value": "Denied", "reason": "deadline"}
        if decision == 200:
            return httpx.Response(200, json=_approval("Denied"))
        return httpx.Response(decision, json={"error": {"message": "approval is not pending"}})

    dfns, seen = _client(handler)
    result = await ActivityEnvironment().run(
        SigningActivities(dfns).deny_own_approval,
        DenyApprovalInput(approval_id="ap-1", reason="deadline"),
    )
    assert (result.denied, result.approval_status) == (denied, status)
    assert len(seen) == calls


@pytest.mark.parametrize("decision", [401, 404, 408, 429])
async def test_deny_refusals_that_cannot_mean_decided_are_not_followed_by_a_read(
    decision: int,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response | None:
        assert request.method != "GET", f"a {decision} must not cost a read of the approval"
        return httpx.Response(
            decision, json={"error": {"message": "no"}}, headers={"Retry-After": "1"}
        )

    dfns, seen = _client(handler)
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(
            SigningActivities(dfns).deny_own_approval,
            DenyApprovalInput(approval_id="ap-1", reason="deadline"),
        )
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("decision", "error_type", "retried"),
    [
        # A conflict on a Pending approval may clear (a racing decision): tried again.
        (409, ids.ERR_CONFLICT, True),
        # Dfns refused the denial itself: its answer stands, and the workflow records
        # "denial failed" in the outcome instead of retrying for ever.
        (400, ids.ERR_INVALID_REQUEST, False),
        (403, ids.ERR_FORBIDDEN, False),
    ],
)
async def test_deny_refused_while_still_pending_is_dfns_answer(
    decision: int, error_type: str, retried: bool
) -> None:
    """A refused decision on an approval that is still Pending is an error, not a result."""

    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET":
            return httpx.Response(200, json=_approval("Pending"))
        return httpx.Response(decision, json={"error": {"message": "refused"}})

    dfns, seen = _client(handler)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            SigningActivities(dfns).deny_own_approval,
            DenyApprovalInput(approval_id="ap-1", reason="deadline"),
        )
    assert caught.value.type == error_type
    assert caught.value.non_retryable is not retried
    assert len(seen) == 4


def test_same_request_ignores_hex_case_and_extra_fields() -> None:
    ours = HashRequest(hash=HASH, external_id="sg-1")
    assert same_request(ours, {"kind": "Hash", "hash": "0x" + HASH.upper(), "externalId": "sg-1"})
    assert same_request(ours, {"kind": "Hash", "hash": HASH, "network": "X"})
    assert not same_request(ours, {"kind": "Hash", "hash": "cd" * 32})
