"""Every DfnsClient method's wire traffic, against a MockTransport that plays Dfns."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

from signgate.dfns import (
    ApprovalDecisionRequest,
    CreateWebhookRequest,
    CredentialSigner,
    DfnsClient,
    DfnsInvalidRequestError,
    DfnsNotFoundError,
    DfnsUnexpectedResponseError,
    DfnsUserActionError,
    HashRequest,
    LegacyHashRequest,
    MessageRequest,
    SignatureStatus,
    SigningTarget,
    UpdateWebhookRequest,
)

BASE_URL = "https://dfns.test/prefix"
BEARER = "eyJhbGciOiJFUzI1NiJ9.bearer-for-client-tests.c2ln"
CRED_ID = "Y3JlZC1jbGllbnQtdGVzdHM"
HASH = "0x" + "12" * 32
DATE = "2025-01-10T19:07:39.277Z"

Responder = Callable[[httpx.Request], httpx.Response]


# --- canned Dfns objects (camelCase, as on the wire) -------------------------------------------


def key_sig(sig_id: str = "sig-1", status: str = "Pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": sig_id,
        "keyId": "key-1",
        "requester": {"userId": "us-1", "tokenId": "to-1"},
        "requestBody": {"kind": "Hash", "hash": HASH},
        "status": status,
        "dateRequested": DATE,
        **extra,
    }


def wallet_sig(sig_id: str = "sig-w1", status: str = "Signed", **extra: Any) -> dict[str, Any]:
    return {
        **key_sig(sig_id, status),
        "walletId": "wa-1",
        "network": "EthereumSepolia",
        "signature": {"r": "0x01", "s": "0x02", "recid": 1},
        **extra,
    }


def legacy_sig(sig_id: str = "sig-l1", status: str = "Executed") -> dict[str, Any]:
    return {
        "id": sig_id,
        "orgId": "or-1",
        "publicKeyId": "pk-1",
        "hash": HASH,
        "status": status,
        "r": "0x0a",
        "s": "0x0b",
        "recid": 0,
        "dateCreated": DATE,
    }


KEY = {
    "id": "key-1",
    "scheme": "ECDSA",
    "curve": "secp256k1",
    "publicKey": "0x02ab",
    "status": "Active",
}
WALLET = {
    "id": "wa-1",
    "network": "EthereumSepolia",
    "status": "Active",
    "signingKey": {"id": "key-1", "scheme": "ECDSA", "curve": "secp256k1", "publicKey": "0x02ab"},
}
PUBLIC_KEY = {"id": "pk-1", "publicKey": "0x02ab", "scheme": "ECDSA", "curve": "secp256k1"}
APPROVAL = {
    "id": "ap-1",
    "initiatorId": "us-1",
    "status": "Pending",
    "dateUpdated": DATE,
    "activity": {"kind": "Wallets:Sign", "signatureRequest": key_sig()},
}
WEBHOOK = {
    "id": "wh-1",
    "url": "https://hooks.test/dfns",
    "events": ["wallet.signature.signed"],
    "status": "Enabled",
    "dateCreated": DATE,
    "dateUpdated": DATE,
}
WEBHOOK_SECRET = "whsec-0123456789abcdef"
EVENT = {
    "id": "ev-1",
    "kind": "wallet.signature.signed",
    "date": DATE,
    "data": {"signatureRequest": key_sig(status="Signed")},
    "status": "200",
    "timestampSent": 1736536060,
}


# --- a fake Dfns that records everything ---------------------------------------------------


@dataclass
class FakeDfns:
    routes: dict[tuple[str, str], Responder | list[Responder]] = field(default_factory=dict)
    calls: list[httpx.Request] = field(default_factory=list)
    init_bodies: list[dict[str, Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def on(self, method: str, path: str, *responses: Responder) -> None:
        self.routes[(method, path)] = list(responses) if len(responses) > 1 else responses[0]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {BEARER}"
        raw = request.url.raw_path.split(b"?")[0].decode()
        assert raw.startswith("/prefix/"), raw
        path = raw.removeprefix("/prefix")
        if path == "/auth/action/init":
            body = json.loads(request.content)
            self.init_bodies.append(body)
            return httpx.Response(
                200,
                json={
                    "challenge": f"challenge-{len(self.init_bodies)}",
                    "challengeIdentifier": f"cid-{len(self.init_bodies)}",
                    "allowCredentials": {"key": [{"type": "public-key", "id": CRED_ID}]},
                },
            )
        if path == "/auth/action":
            body = json.loads(request.content)
            assert body["challengeIdentifier"] == f"cid-{len(self.init_bodies)}"
            assert body["firstFactor"]["credentialAssertion"]["credId"] == CRED_ID
            token = f"ua-token-{len(self.init_bodies)}"
            self.issued.append(token)
            return httpx.Response(200, json={"userAction": token})
        self.calls.append(request)
        route = self.routes.get((request.method, path))
        if route is None:
            return httpx.Response(404, json={"error": {"message": f"no route {path}"}})
        if isinstance(route, list):
            return route.pop(0)(request)
        return route(request)

    @property
    def last(self) -> httpx.Request:
        return self.calls[-1]

    def assert_signed(self, request: httpx.Request, path: str) -> None:
        """The write carried a fresh token bound to exactly its method, path and bytes."""
        init = self.init_bodies[-1]
        assert request.headers["x-dfns-useraction"] == self.issued[-1]
        assert init["userActionHttpMethod"] == request.method
        assert init["userActionHttpPath"] == path
        assert init["userActionPayload"] == request.content.decode("utf-8")
        assert init["userActionServerKind"] == "Api"


def ok(body: Any, status: int = 200) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return respond


def _signer() -> CredentialSigner:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return CredentialSigner(CRED_ID, pem)


@pytest.fixture
def fake() -> FakeDfns:
    return FakeDfns()


@pytest.fixture
async def dfns(fake: FakeDfns) -> AsyncIterator[DfnsClient]:
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(fake)) as http:
        yield DfnsClient(http, auth_token=SecretStr(BEARER), signer=_signer())


def _json(request: httpx.Request) -> Any:
    assert request.headers["content-type"] == "application/json"
    return json.loads(request.content)


def _query(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def _unsigned(request: httpx.Request) -> None:
    assert "x-dfns-useraction" not in request.headers
    assert request.content == b""


# --- Keys API --------------------------------------------------------------------------------


async def test_generate_signature_sends_compact_bytes_once_and_signs_them(
    fake: FakeDfns, dfns: DfnsClient
) -> None:
    fake.on("POST", "/keys/key-1/signatures", ok(key_sig(externalId="é-1")))
    body = HashRequest(hash=HASH, external_id="é-1", blockchain_kind="Evm")
    result = await dfns.generate_signature("key-1", body)
    request = fake.last
    assert request.method == "POST"
    assert request.content == (
        '{"kind":"Hash","blockchainKind":"Evm","externalId":"é-1","hash":"' + HASH + '"}'
    ).encode("utf-8")
    assert request.headers["content-type"] == "application/json"
    fake.assert_signed(request, "/keys/key-1/signatures")
    assert result.id == "sig-1"
    assert result.external_id == "é-1"


async def test_generate_signature_accepts_202(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/keys/key-1/signatures", ok(key_sig(approvalId="ap-1"), status=202))
    result = await dfns.generate_signature("key-1", MessageRequest(message="0x01"))
    assert result.approval_id == "ap-1"
    assert _json(fake.last) == {"kind": "Message", "message": "0x01"}


async def test_get_signature(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/keys/key-1/signatures/sig-1", ok(key_sig(status="Signed")))
    result = await dfns.get_signature("key-1", "sig-1")
    assert result.status == "Signed"
    _unsigned(fake.last)
    assert fake.init_bodies == []


async def test_list_signatures_query(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/keys/key-1/signatures", ok({"keyId": "key-1", "items": [key_sig()]}))
    page = await dfns.list_signatures("key-1", limit=5, pagination_token="tok/1=")
    assert _query(fake.last) == {"limit": "5", "paginationToken": "tok/1="}
    assert page.next_page_token is None and len(page.items) == 1
    await dfns.list_signatures("key-1")
    assert fake.last.url.query == b""


async def test_iter_signatures_follows_pages(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on(
        "GET",
        "/keys/key-1/signatures",
        ok({"keyId": "key-1", "items": [key_sig("s1"), key_sig("s2")], "nextPageToken": "p2"}),
        ok({"keyId": "key-1", "items": [key_sig("s3")], "nextPageToken": "p3"}),
        ok({"keyId": "key-1", "items": []}),
    )
    ids = [s.id async for s in dfns.iter_signatures("key-1", page_size=2)]
    assert ids == ["s1", "s2", "s3"]
    assert [_query(r) for r in fake.calls] == [
        {"limit": "2"},
        {"limit": "2", "paginationToken": "p2"},
        {"limit": "2", "paginationToken": "p3"},
    ]


async def test_iter_signatures_stops_on_a_repeated_token(fake: FakeDfns, dfns: DfnsClient) -> None:
    page = ok({"keyId": "key-1", "items": [key_sig()], "nextPageToken": "same"})
    fake.on("GET", "/keys/key-1/signatures", page, page, page)
    with pytest.raises(DfnsUnexpectedResponseError, match="pagination token"):
        _ = [s async for s in dfns.iter_signatures("key-1")]
    assert len(fake.calls) == 2


async def test_get_key(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/keys/key-1", ok(KEY))
    key = await dfns.get_key("key-1")
    assert (key.scheme, key.curve) == ("ECDSA", "secp256k1")
    _unsigned(fake.last)


# --- Wallets API -----------------------------------------------------------------------------


async def test_wallet_signature_methods(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/wallets/wa-1/signatures", ok(wallet_sig(status="Pending")))
    created = await dfns.generate_wallet_signature("wa-1", HashRequest(hash=HASH))
    assert created.wallet_id == "wa-1"
    assert _json(fake.last) == {"kind": "Hash", "hash": HASH}
    fake.assert_signed(fake.last, "/wallets/wa-1/signatures")

    fake.on("GET", "/wallets/wa-1/signatures/sig-w1", ok(wallet_sig()))
    fetched = await dfns.get_wallet_signature("wa-1", "sig-w1")
    assert fetched.signature is not None and fetched.signature.recid == 1
    _unsigned(fake.last)


async def test_list_and_iter_wallet_signatures(fake: FakeDfns, dfns: DfnsClient) -> None:
    item = wallet_sig()
    del item["walletId"]  # the spec's list items may omit it; the path supplies it
    fake.on(
        "GET",
        "/wallets/wa-1/signatures",
        ok({"items": [item], "nextPageToken": "n"}),
        ok({"items": [wallet_sig("sig-w2")]}),
        ok({"items": [item]}),
    )
    items = [s async for s in dfns.iter_wallet_signatures("wa-1", page_size=1)]
    assert [(s.id, s.wallet_id) for s in items] == [("sig-w1", "wa-1"), ("sig-w2", "wa-1")]
    assert [_query(r) for r in fake.calls] == [
        {"limit": "1"},
        {"limit": "1", "paginationToken": "n"},
    ]
    page = await dfns.list_wallet_signatures("wa-1", pagination_token="x")
    assert page.items[0].wallet_id == "wa-1"
    assert _query(fake.last) == {"paginationToken": "x"}


async def test_get_wallet(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/wallets/wa-1", ok(WALLET))
    wallet = await dfns.get_wallet("wa-1")
    assert wallet.key_id == "key-1"


# --- legacy public keys ----------------------------------------------------------------------


async def test_public_key_methods(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/public-keys/pk-1/signatures", ok(legacy_sig(status="Pending")))
    created = await dfns.create_public_key_signature("pk-1", LegacyHashRequest(hash=HASH))
    assert created.status == "Pending"
    assert fake.last.content == b'{"hash":"' + HASH.encode() + b'"}'
    fake.assert_signed(fake.last, "/public-keys/pk-1/signatures")

    fake.on("GET", "/public-keys/pk-1/signatures/sig-l1", ok(legacy_sig()))
    assert (await dfns.get_public_key_signature("pk-1", "sig-l1")).r == "0x0a"
    _unsigned(fake.last)

    fake.on("GET", "/public-keys/pk-1", ok(PUBLIC_KEY))
    assert (await dfns.get_public_key("pk-1")).public_key == "0x02ab"


# --- submit / fetch across generations --------------------------------------------------------


async def test_submit_and_fetch_normalise_three_generations(
    fake: FakeDfns, dfns: DfnsClient
) -> None:
    fake.on("POST", "/keys/key-1/signatures", ok(key_sig(status="Pending", approvalId="ap-1")))
    fake.on("GET", "/keys/key-1/signatures/sig-1", ok(key_sig(status="Confirmed")))
    fake.on("POST", "/wallets/wa-1/signatures", ok(wallet_sig(status="Executing")))
    fake.on("GET", "/wallets/wa-1/signatures/sig-w1", ok(wallet_sig(status="Rejected")))
    fake.on("POST", "/public-keys/pk-1/signatures", ok(legacy_sig(status="Pending")))
    fake.on("GET", "/public-keys/pk-1/signatures/sig-l1", ok(legacy_sig(status="Executed")))
    body = HashRequest(hash=HASH, external_id="wf-1", network="EthereumSepolia")

    key_target = SigningTarget(kind="key", id="key-1")
    view = await dfns.submit(key_target, body)
    assert (view.generation, view.key_id, view.status) == ("keys", "key-1", "Pending")
    assert view.approval_id == "ap-1" and not view.is_terminal
    view = await dfns.fetch(key_target, "sig-1")
    assert view.status is SignatureStatus.CONFIRMED and view.is_terminal

    wallet_target = SigningTarget(kind="wallet", id="wa-1")
    view = await dfns.submit(wallet_target, body)
    assert (view.generation, view.wallet_id, view.status) == ("wallets", "wa-1", "Executing")
    view = await dfns.fetch(wallet_target, "sig-w1")
    assert view.status is SignatureStatus.REJECTED

    legacy_target = SigningTarget(kind="public-key", id="pk-1")
    view = await dfns.submit(legacy_target, body)
    # G1 has no externalId/network fields: only the hash is sent.
    assert fake.last.content == b'{"hash":"' + HASH.encode() + b'"}'
    assert (view.generation, view.public_key_id, view.status) == (
        "public-keys",
        "pk-1",
        "Pending",
    )
    view = await dfns.fetch(legacy_target, "sig-l1")
    assert view.status is SignatureStatus.SIGNED and view.raw_status == "Executed"
    assert view.signature is not None and view.signature.r == "0x0a"


async def test_submit_refuses_what_g1_cannot_carry(fake: FakeDfns, dfns: DfnsClient) -> None:
    target = SigningTarget(kind="public-key", id="pk-1")
    with pytest.raises(DfnsInvalidRequestError, match="only Hash"):
        await dfns.submit(target, MessageRequest(message="0x01"))
    with pytest.raises(DfnsInvalidRequestError, match="taprootMerkleRoot"):
        await dfns.submit(target, HashRequest(hash=HASH, taproot_merkle_root=""))
    assert fake.calls == [] and fake.init_bodies == []


def test_signing_target_validation() -> None:
    with pytest.raises(ValidationError):
        SigningTarget(kind="key", id="")
    with pytest.raises(ValidationError):
        SigningTarget.model_validate({"kind": "account", "id": "x"})
    target = SigningTarget.model_validate({"kind": "public-key", "id": "pk-1"})
    assert hash(target) == hash(SigningTarget(kind="public-key", id="pk-1"))


# --- approvals -------------------------------------------------------------------------------


async def test_list_approvals_filters(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/v2/policy-approvals", ok({"items": [APPROVAL], "nextPageToken": "n2"}))
    page = await dfns.list_approvals(
        status="Pending", initiator_id="us-1", approver_id="us-2", limit=20, pagination_token="n1"
    )
    assert _query(fake.last) == {
        "status": "Pending",
        "initiatorId": "us-1",
        "approverId": "us-2",
        "limit": "20",
        "paginationToken": "n1",
    }
    assert page.next_page_token == "n2"
    assert page.items[0].signature_request_id == "sig-1"
    await dfns.list_approvals()
    assert fake.last.url.query == b""


async def test_get_approval(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/v2/policy-approvals/ap-1", ok(APPROVAL))
    assert (await dfns.get_approval("ap-1")).status == "Pending"
    _unsigned(fake.last)


async def test_create_approval_decision_is_signed(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/v2/policy-approvals/ap-1/decisions", ok({**APPROVAL, "status": "Denied"}))
    result = await dfns.create_approval_decision(
        "ap-1", ApprovalDecisionRequest(value="Denied", reason="deadline passed")
    )
    assert result.status == "Denied"
    assert fake.last.content == b'{"value":"Denied","reason":"deadline passed"}'
    fake.assert_signed(fake.last, "/v2/policy-approvals/ap-1/decisions")


# --- webhooks --------------------------------------------------------------------------------


async def test_create_webhook_keeps_secret_secret(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/webhooks", ok({**WEBHOOK, "secret": WEBHOOK_SECRET}))
    created = await dfns.create_webhook(
        CreateWebhookRequest(url="https://hooks.test/dfns", events=["wallet.signature.signed"])
    )
    assert _json(fake.last) == {
        "url": "https://hooks.test/dfns",
        "events": ["wallet.signature.signed"],
    }
    fake.assert_signed(fake.last, "/webhooks")
    assert created.secret.get_secret_value() == WEBHOOK_SECRET
    assert WEBHOOK_SECRET not in repr(created) and WEBHOOK_SECRET not in str(created)


async def test_list_get_update_webhooks(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/webhooks", ok({"items": [WEBHOOK]}))
    page = await dfns.list_webhooks(limit=10, pagination_token="t")
    assert _query(fake.last) == {"limit": "10", "paginationToken": "t"}
    assert page.items[0].id == "wh-1"

    fake.on("GET", "/webhooks/wh-1", ok(WEBHOOK))
    assert (await dfns.get_webhook("wh-1")).url == "https://hooks.test/dfns"
    _unsigned(fake.last)

    fake.on("PUT", "/webhooks/wh-1", ok({**WEBHOOK, "status": "Disabled"}))
    updated = await dfns.update_webhook("wh-1", UpdateWebhookRequest(status="Disabled"))
    assert updated.status == "Disabled"
    assert fake.last.content == b'{"status":"Disabled"}'
    fake.assert_signed(fake.last, "/webhooks/wh-1")


async def test_delete_and_ping_webhook_sign_an_empty_payload(
    fake: FakeDfns, dfns: DfnsClient
) -> None:
    fake.on("DELETE", "/webhooks/wh-1", ok({"deleted": True}))
    await dfns.delete_webhook("wh-1")
    assert fake.last.method == "DELETE" and fake.last.content == b""
    assert "content-type" not in fake.last.headers
    fake.assert_signed(fake.last, "/webhooks/wh-1")

    fake.on("POST", "/webhooks/wh-1/ping", ok({"status": "500", "error": "receiver down"}))
    ping = await dfns.ping_webhook("wh-1")
    assert (ping.status, ping.error) == ("500", "receiver down")
    assert fake.last.content == b""
    fake.assert_signed(fake.last, "/webhooks/wh-1/ping")
    assert len(set(fake.issued)) == 2, "each write used its own token"


async def test_webhook_events(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("GET", "/webhooks/wh-1/events", ok({"items": [EVENT], "nextPageToken": "e2"}))
    page = await dfns.list_webhook_events(
        "wh-1",
        kind="wallet.signature.signed",
        delivery_failed=False,
        limit=200,
        pagination_token="e1",
    )
    assert _query(fake.last) == {
        "kind": "wallet.signature.signed",
        "deliveryFailed": "false",
        "limit": "200",
        "paginationToken": "e1",
    }
    assert page.items[0].timestamp_sent == 1736536060
    await dfns.list_webhook_events("wh-1", delivery_failed=True)
    assert _query(fake.last) == {"deliveryFailed": "true"}

    fake.on("GET", "/webhooks/wh-1/events/ev-1", ok(EVENT))
    assert (await dfns.get_webhook_event("wh-1", "ev-1")).kind == "wallet.signature.signed"
    _unsigned(fake.last)


# --- paths, signer, secrets ------------------------------------------------------------------


async def test_path_parameters_are_url_encoded(fake: FakeDfns, dfns: DfnsClient) -> None:
    fake.on("POST", "/keys/a%2Fb%20c%3Fd%23e/signatures", ok(key_sig()))
    await dfns.generate_signature("a/b c?d#e", HashRequest(hash=HASH))
    assert fake.last.url.raw_path == b"/prefix/keys/a%2Fb%20c%3Fd%23e/signatures"
    assert fake.last.url.query == b""
    fake.assert_signed(fake.last, "/keys/a%2Fb%20c%3Fd%23e/signatures")

    fake.on("GET", "/keys/%2E%2E/signatures/%2E", ok(key_sig()))
    await dfns.get_signature("..", ".")
    assert fake.last.url.raw_path == b"/prefix/keys/%2E%2E/signatures/%2E"

    with pytest.raises(DfnsInvalidRequestError, match="key_id"):
        await dfns.get_key("")


async def test_write_without_signer_fails_before_sending(fake: FakeDfns) -> None:
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(fake)) as http:
        client = DfnsClient(http, auth_token=BEARER)
        with pytest.raises(DfnsUserActionError, match="no credential signer") as info:
            await client.generate_signature("key-1", HashRequest(hash=HASH))
        assert info.value.stage == "no_signer"
        with pytest.raises(DfnsUserActionError):
            await client.delete_webhook("wh-1")
        assert fake.calls == [] and fake.init_bodies == []
        fake.on("GET", "/keys/key-1", ok(KEY))
        assert (await client.get_key("key-1")).id == "key-1"


def test_base_url_is_required() -> None:
    with pytest.raises(ValueError, match="base_url"):
        DfnsClient(httpx.AsyncClient(), auth_token=BEARER)


async def test_app_id_and_nonce_reach_the_wire(fake: FakeDfns) -> None:
    fake.on("GET", "/keys/key-1", ok(KEY))
    async with httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(fake)) as http:
        client = DfnsClient(http, auth_token=BEARER, app_id="ap-1", send_nonce=True)
        await client.get_key("key-1")
    assert fake.last.headers["x-dfns-appid"] == "ap-1"
    assert fake.last.headers["x-dfns-nonce"]


async def test_tokens_absent_from_reprs_and_errors(fake: FakeDfns, dfns: DfnsClient) -> None:
    assert BEARER not in repr(dfns)
    assert "dfns.test/prefix" in repr(dfns)

    def echo(request: httpx.Request) -> httpx.Response:
        headers = f"{request.headers['authorization']} {request.headers['x-dfns-useraction']}"
        return httpx.Response(404, json={"error": {"message": f"unknown key for {headers}"}})

    fake.on("POST", "/keys/key-9/signatures", echo)
    with pytest.raises(DfnsNotFoundError) as info:
        await dfns.generate_signature("key-9", HashRequest(hash=HASH))
    for text in (str(info.value), repr(info.value), repr(info.value.body)):
        assert BEARER not in text
        assert fake.issued[-1] not in text
