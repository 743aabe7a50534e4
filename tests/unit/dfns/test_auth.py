"""User-action signing against a MockTransport that plays Dfns and verifies every assertion."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from signgate.dfns.auth import USER_ACTION_EXTENSION, CredentialSigner, DfnsAuth, needs_user_action
from signgate.dfns.errors import (
    DfnsForbiddenError,
    DfnsUnauthorizedError,
    DfnsUserActionError,
)

BASE_URL = "https://dfns.test/api/v1"
BEARER = "eyJhbGciOiJFUzI1NiJ9.test-bearer-token.sig"
ORIGIN = "https://signgate.test"

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def _pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "Ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ECDSA-P256": ec.generate_private_key(ec.SECP256R1()),
        "ECDSA-secp256k1": ec.generate_private_key(ec.SECP256K1()),
        "RSA": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def _b64url_decode(text: str) -> bytes:
    assert "=" not in text and "+" not in text and "/" not in text, "not unpadded base64url"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_key_assertion(
    public_key: PublicKey, assertion: dict[str, Any], *, challenge: str, origin: str
) -> None:
    """The server side of §2.7, written independently of the client code."""
    assert assertion["kind"] == "Key"
    cred = assertion["credentialAssertion"]
    assert set(cred) == {"credId", "clientData", "signature"}
    client_data = _b64url_decode(cred["clientData"])
    assert json.loads(client_data) == {
        "type": "key.get",
        "challenge": challenge,
        "origin": origin,
        "crossOrigin": False,
    }
    signature = _b64url_decode(cred["signature"])
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        assert len(signature) == 64
        public_key.verify(signature, client_data)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        decode_dss_signature(signature)  # raises unless ASN.1 DER
        public_key.verify(signature, client_data, ec.ECDSA(hashes.SHA256()))
    else:
        public_key.verify(signature, client_data, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class FakeDfns:
    """Plays /auth/action/init, /auth/action and one protected endpoint."""

    cred_id: str
    public_key: PublicKey
    origin: str = ORIGIN
    allowed_cred_ids: list[str] | None = None
    init_response: httpx.Response | None = None
    complete_response: httpx.Response | None = None
    challenges: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_bodies: list[dict[str, Any]] = field(default_factory=list)
    completes: list[dict[str, Any]] = field(default_factory=list)
    calls: list[httpx.Request] = field(default_factory=list)
    final: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        assert request.headers["authorization"] == f"Bearer {BEARER}"
        path = request.url.path
        if path == "/api/v1/auth/action/init":
            return self._init(request)
        if path == "/api/v1/auth/action":
            return self._complete(request)
        return self._protected(request)

    def _init(self, request: httpx.Request) -> httpx.Response:
        assert "x-dfns-useraction" not in request.headers
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        self.init_bodies.append(body)
        if self.init_response is not None:
            return self.init_response
        assert set(body) == {
            "userActionPayload",
            "userActionHttpMethod",
            "userActionHttpPath",
            "userActionServerKind",
        }
        challenge = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        identifier = f"eyJ0eXAiOiJKV1QifQ.{uuid.uuid4().hex}.sig"
        self.challenges[identifier] = challenge
        allowed = self.allowed_cred_ids if self.allowed_cred_ids is not None else [self.cred_id]
        return httpx.Response(
            200,
            json={
                "challenge": challenge,
                "challengeIdentifier": identifier,
                "externalAuthenticationUrl": "",
                "allowCredentials": {
                    "key": [{"type": "public-key", "id": c} for c in allowed],
                    "webauthn": [],
                },
                "supportedCredentialKinds": [
                    {"kind": "Key", "factor": "first", "requiresSecondFactor": False}
                ],
                "userVerification": "required",
                "attestation": "none",
            },
        )

    def _complete(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.completes.append(body)
        if self.complete_response is not None:
            return self.complete_response
        assert set(body) == {"challengeIdentifier", "firstFactor"}
        challenge = self.challenges.pop(body["challengeIdentifier"])
        assert body["firstFactor"]["credentialAssertion"]["credId"] == self.cred_id
        verify_key_assertion(
            self.public_key, body["firstFactor"], challenge=challenge, origin=self.origin
        )
        init = self.init_bodies[-1]
        token = f"eyJ1YSI6MX0.{uuid.uuid4().hex}.sig"
        self.tokens[token] = init
        return httpx.Response(200, json={"userAction": token})

    def _protected(self, request: httpx.Request) -> httpx.Response:
        self.final.append(request)
        token = request.headers.get("x-dfns-useraction")
        if request.method == "GET":
            assert token is None
            return httpx.Response(200, json={"ok": True})
        if token is None or token not in self.tokens:
            return httpx.Response(
                403, json={"error": {"message": "user action signature is missing or invalid"}}
            )
        # Single use, and bound to exactly what was sent.
        bound = self.tokens.pop(token)
        assert bound["userActionHttpMethod"] == request.method
        assert bound["userActionPayload"] == request.content.decode("utf-8")
        return httpx.Response(200, json={"ok": True})


def _make(
    keys: dict[str, PrivateKey],
    algorithm: str = "Ed25519",
    *,
    cred_id: str = "Y2ktMTIzNDUtNjc4OTAtYWJjZGVm",
    with_signer: bool = True,
    **auth_kwargs: Any,
) -> tuple[FakeDfns, httpx.AsyncClient]:
    key = keys[algorithm]
    fake = FakeDfns(cred_id=cred_id, public_key=key.public_key())
    signer = CredentialSigner(cred_id, _pem(key), app_origin=ORIGIN) if with_signer else None
    auth = DfnsAuth(BEARER, base_url=BASE_URL, signer=signer, **auth_kwargs)
    client = httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(fake), auth=auth)
    return fake, client


UA = {USER_ACTION_EXTENSION: True}


@pytest.mark.parametrize("algorithm", ["Ed25519", "ECDSA-P256", "ECDSA-secp256k1", "RSA"])
async def test_user_action_flow_each_algorithm(keys: dict[str, PrivateKey], algorithm: str) -> None:
    fake, client = _make(keys, algorithm)
    body = b'{"kind":"Hash","hash":"0x' + b"ab" * 32 + b'","externalId":"\xc3\xa9t\xc3\xa9"}'
    async with client:
        response = await client.post(
            "/keys/key-01snl-t56gb-j8tsok0vn802p80i/signatures?dryRun=1",
            content=body,
            headers={"Content-Type": "application/json"},
            extensions=UA,
        )
    assert response.status_code == 200
    assert [c.url.path for c in fake.calls] == [
        "/api/v1/auth/action/init",
        "/api/v1/auth/action",
        "/api/v1/keys/key-01snl-t56gb-j8tsok0vn802p80i/signatures",
    ]
    (init,) = fake.init_bodies
    assert init == {
        "userActionPayload": body.decode("utf-8"),
        "userActionHttpMethod": "POST",
        "userActionHttpPath": "/keys/key-01snl-t56gb-j8tsok0vn802p80i/signatures",
        "userActionServerKind": "Api",
    }
    (final,) = fake.final
    assert final.content == body
    assert final.url.query == b"dryRun=1"
    assert final.headers["authorization"] == f"Bearer {BEARER}"
    assert final.headers["x-dfns-useraction"].startswith("eyJ1YSI6MX0.")
    assert fake.tokens == {}, "the issued token was consumed by the real call"


async def test_each_write_gets_a_fresh_challenge_and_token(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys, "ECDSA-P256")
    async with client:
        for method in ("PUT", "DELETE", "POST"):
            response = await client.request(method, "/webhooks/wh-1", extensions=UA)
            assert response.status_code == 200
    assert [b["userActionHttpMethod"] for b in fake.init_bodies] == ["PUT", "DELETE", "POST"]
    assert all(b["userActionPayload"] == "" for b in fake.init_bodies)
    tokens = [r.headers["x-dfns-useraction"] for r in fake.final]
    assert len(set(tokens)) == 3


async def test_get_is_never_signed(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    async with client:
        response = await client.get("/keys/key-1/signatures")
    assert response.status_code == 200
    assert [c.url.path for c in fake.calls] == ["/api/v1/keys/key-1/signatures"]
    assert "x-dfns-useraction" not in fake.calls[0].headers
    assert fake.calls[0].headers["authorization"] == f"Bearer {BEARER}"


def test_needs_user_action_rule() -> None:
    assert needs_user_action("POST", "/keys/k/signatures")
    assert needs_user_action("put", "/webhooks/w")
    assert needs_user_action("DELETE", "/webhooks/w")
    assert needs_user_action("POST", "/v2/policy-approvals/ap-1/decisions")
    assert not needs_user_action("GET", "/keys/k/signatures")
    assert not needs_user_action("POST", "/auth/action/init")
    assert not needs_user_action("POST", "/auth/action")
    assert needs_user_action("POST", "/authority"), "only the /auth/ tree is exempt"


async def test_credential_not_allowed(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    fake.allowed_cred_ids = ["c29tZW9uZS1lbHNl"]
    async with client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "credential"
    assert "not among" in str(info.value)
    assert [c.url.path for c in fake.calls] == ["/api/v1/auth/action/init"]
    assert fake.final == []


async def test_init_refused_keeps_api_error_as_cause(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    fake.init_response = httpx.Response(
        403,
        json={
            "error": {
                "id": "77",
                "status": 403,
                "message": "CustomerEmployee us-1 is not authorized to perform operation "
                f"(Auth:Action:Sign) with token {BEARER}",
            }
        },
    )
    async with client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    err = info.value
    assert err.stage == "init"
    assert isinstance(err.__cause__, DfnsForbiddenError)
    assert err.api_error is err.__cause__
    assert err.status == 403
    assert err.api_error.error_id == "77"
    assert BEARER not in str(err) and BEARER not in str(err.__cause__)
    assert BEARER not in repr(err.api_error.body)
    assert "[redacted]" in str(err)
    assert fake.final == []


async def test_complete_refused(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys, "RSA")
    fake.complete_response = httpx.Response(
        401, json={"error": {"message": "User does not have a credential that can be used"}}
    )
    async with client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "complete"
    assert isinstance(info.value.__cause__, DfnsUnauthorizedError)
    assert fake.final == []


async def test_init_answer_without_challenge(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    fake.init_response = httpx.Response(200, json={"challengeIdentifier": "x"})
    async with client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "init"
    assert "challenge" in str(info.value)
    assert fake.final == []


class _BrokenSigner(CredentialSigner):
    __slots__ = ()

    def sign_challenge(self, challenge: str) -> dict[str, Any]:
        raise RuntimeError("HSM unavailable")


async def test_signing_failure(keys: dict[str, PrivateKey]) -> None:
    key = keys["Ed25519"]
    fake = FakeDfns(cred_id="c1", public_key=key.public_key())
    auth = DfnsAuth(BEARER, base_url=BASE_URL, signer=_BrokenSigner("c1", _pem(key)))
    async with httpx.AsyncClient(
        base_url=BASE_URL, transport=httpx.MockTransport(fake), auth=auth
    ) as client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "sign"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.api_error is None and info.value.status is None
    assert [c.url.path for c in fake.calls] == ["/api/v1/auth/action/init"]


async def test_complete_answer_without_token(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    fake.complete_response = httpx.Response(200, json={"token": "x"})
    async with client:
        with pytest.raises(DfnsUserActionError, match="userAction: Field required") as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "complete"
    assert fake.final == []


async def test_non_utf8_body_is_refused_before_init(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    async with client:
        with pytest.raises(DfnsUserActionError, match="UTF-8"):
            await client.post("/keys/k/signatures", content=b"\xff\xfe", extensions=UA)
    assert fake.calls == []


async def test_marked_request_without_signer(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys, with_signer=False)
    async with client:
        with pytest.raises(DfnsUserActionError) as info:
            await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    assert info.value.stage == "no_signer"
    assert fake.calls == []


async def test_app_id_and_nonce_when_configured(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys, app_id="ap-c831n-xxxxx-xxxxxxxxxxxxxxxx", send_nonce=True)
    async with client:
        await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
        await client.get("/keys/k")
    nonces = []
    for call in fake.calls:
        assert call.headers["x-dfns-appid"] == "ap-c831n-xxxxx-xxxxxxxxxxxxxxxx"
        raw = call.headers["x-dfns-nonce"]
        decoded = json.loads(_b64url_decode(raw))
        assert set(decoded) == {"uuid", "date"}
        uuid.UUID(decoded["uuid"])
        assert datetime.fromisoformat(decoded["date"]).tzinfo == UTC
        nonces.append(raw)
    assert len(fake.calls) == 4
    assert len(set(nonces)) == 4, "every request carries a fresh nonce"


async def test_no_app_id_or_nonce_by_default(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    async with client:
        await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    for call in fake.calls:
        assert "x-dfns-appid" not in call.headers
        assert "x-dfns-nonce" not in call.headers


async def test_side_requests_keep_timeouts_and_user_agent(keys: dict[str, PrivateKey]) -> None:
    fake, client = _make(keys)
    client.headers["User-Agent"] = "signgate-test/1"
    async with client:
        await client.post(
            "/keys/k/signatures", content=b"{}", extensions=UA, timeout=httpx.Timeout(3.5)
        )
    for call in fake.calls:
        assert call.headers["user-agent"] == "signgate-test/1"
        assert call.extensions["timeout"]["read"] == 3.5
    assert all(USER_ACTION_EXTENSION not in c.extensions for c in fake.calls[:2])


def test_sync_client_runs_the_same_flow(keys: dict[str, PrivateKey]) -> None:
    key = keys["ECDSA-secp256k1"]
    fake = FakeDfns(cred_id="cred-sync", public_key=key.public_key())
    auth = DfnsAuth(
        BEARER, base_url=BASE_URL, signer=CredentialSigner("cred-sync", _pem(key), ORIGIN)
    )
    with httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(fake), auth=auth) as c:
        response = c.post("/webhooks", content=b'{"url":"https://x"}', extensions=UA)
    assert response.status_code == 200
    assert fake.init_bodies[0]["userActionPayload"] == '{"url":"https://x"}'


async def test_base_url_without_prefix(keys: dict[str, PrivateKey]) -> None:
    key = keys["Ed25519"]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/action/init":
            return httpx.Response(
                200,
                json={
                    "challenge": "abc",
                    "challengeIdentifier": "id",
                    "allowCredentials": {"key": [{"type": "public-key", "id": "c1"}]},
                },
            )
        if request.url.path == "/auth/action":
            return httpx.Response(200, json={"userAction": "ua-token-123"})
        return httpx.Response(200, json={})

    auth = DfnsAuth(
        BEARER, base_url="https://api.dfns.io", signer=CredentialSigner("c1", _pem(key))
    )
    async with httpx.AsyncClient(
        base_url="https://api.dfns.io", transport=httpx.MockTransport(handler), auth=auth
    ) as client:
        await client.post("/keys/k/signatures", content=b"{}", extensions=UA)
    init = json.loads(seen[0].content)
    assert init["userActionHttpPath"] == "/keys/k/signatures"
    assert [str(r.url) for r in seen] == [
        "https://api.dfns.io/auth/action/init",
        "https://api.dfns.io/auth/action",
        "https://api.dfns.io/keys/k/signatures",
    ]
    # The default origin is Dfns's dashboard, as in the Python SDK.
    complete = json.loads(seen[1].content)
    client_data = json.loads(
        _b64url_decode(complete["firstFactor"]["credentialAssertion"]["clientData"])
    )
    assert client_data["origin"] == "https://app.dfns.io"
    assert seen[2].headers["x-dfns-useraction"] == "ua-token-123"


# -- CredentialSigner ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["Ed25519", "ECDSA-P256", "ECDSA-secp256k1", "RSA"])
def test_signer_loads_each_algorithm_and_verifies(
    keys: dict[str, PrivateKey], algorithm: str
) -> None:
    key = keys[algorithm]
    signer = CredentialSigner("cred-1", _pem(key).decode(), app_origin=ORIGIN)
    assert signer.algorithm == algorithm
    assertion = signer.sign_challenge("Y2hhbGxlbmdl")
    verify_key_assertion(key.public_key(), assertion, challenge="Y2hhbGxlbmdl", origin=ORIGIN)
    assert (
        signer.public_key_pem()
        == key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_signer_accepts_traditional_openssl_pem(keys: dict[str, PrivateKey]) -> None:
    key = keys["ECDSA-P256"]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert CredentialSigner("c", pem).algorithm == "ECDSA-P256"


def test_client_data_is_compact_and_ordered(keys: dict[str, PrivateKey]) -> None:
    signer = CredentialSigner("c", _pem(keys["Ed25519"]), app_origin=ORIGIN)
    cred = signer.sign_challenge("ch")["credentialAssertion"]
    assert _b64url_decode(cred["clientData"]) == (
        b'{"type":"key.get","challenge":"ch","origin":"https://signgate.test","crossOrigin":false}'
    )


_PEM_SECRET_MARKER = "MC4CAQAwBQYDK2VwBCIEI"


@pytest.mark.parametrize(
    "pem",
    [
        "not a pem at all",
        f"-----BEGIN PRIVATE KEY-----\n{_PEM_SECRET_MARKER}broken\n-----END PRIVATE KEY-----\n",
        b"",
    ],
)
def test_signer_rejects_unreadable_pem_without_echoing_it(pem: str | bytes) -> None:
    with pytest.raises(ValueError, match="unreadable") as info:
        CredentialSigner("c", pem)
    assert _PEM_SECRET_MARKER not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_signer_rejects_encrypted_pem(keys: dict[str, PrivateKey]) -> None:
    pem = keys["Ed25519"].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(ValueError, match="unencrypted"):
        CredentialSigner("c", pem)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "curve secp384r1"),
        (x25519.X25519PrivateKey.generate, "unsupported credential key type"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),  # noqa: S505 -- must be refused
    ],
)
def test_signer_rejects_unsupported_keys(factory: Callable[[], Any], match: str) -> None:
    pem = factory().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match=match):
        CredentialSigner("c", pem)


def test_reprs_hide_secrets(keys: dict[str, PrivateKey]) -> None:
    pem = _pem(keys["Ed25519"])
    signer = CredentialSigner("cred-xyz", pem)
    auth = DfnsAuth(BEARER, base_url=BASE_URL, signer=signer)
    body_line = pem.decode().splitlines()[1]
    for text in (repr(signer), str(signer), repr(auth)):
        assert body_line not in text
        assert BEARER not in text
    assert "cred-xyz" in repr(signer)
    assert "Ed25519" in repr(signer)


def test_auth_rejects_empty_token() -> None:
    with pytest.raises(ValueError, match="auth_token"):
        DfnsAuth("", base_url=BASE_URL)
