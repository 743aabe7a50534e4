"""Test-side tools for the sandbox tests.

* :class:`Dfns`: a small Dfns client, with User Action Signing written here using
  ``cryptography`` directly (not signgate's code) for all four credential algorithms.
* :func:`serve` / :func:`client_for`: bodies of the ``server`` (one sandbox per module, real
  HTTP on 127.0.0.1, a fresh SQLite file) and ``dfns`` (reset after each test) fixtures in
  ``tests/sandbox/conftest.py``, which only this directory's tests see.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import coincurve
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from signgate.sandbox.config import SandboxSettings
from signgate.sandbox.server import SandboxServer

ORG_FILE = Path(__file__).with_name("org.toml")

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}


def recover(digest: bytes, signature: dict[str, Any]) -> bytes:
    """The compressed secp256k1 key an ECDSA ``{r, s, recid}`` over ``digest`` recovers to.

    ``coincurve`` (libsecp256k1), not the sandbox's signing code, does the recovery.
    """
    r, s = (bytes.fromhex(signature[n].removeprefix("0x")) for n in ("r", "s"))
    key = coincurve.PublicKey.from_signature_and_message(
        r + s + bytes([signature["recid"]]), digest, hasher=None
    )
    return bytes(key.format(compressed=True))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class Identity:
    name: str
    user_id: str
    token: str = field(repr=False)
    cred_id: str
    algorithm: str
    private_key_pem: str = field(repr=False)

    def sign_challenge(self, challenge: str, *, algorithm: str | None = None) -> dict[str, Any]:
        """A Key credential assertion over ``{"type":"key.get","challenge":...}``."""
        client_data = compact(
            {
                "type": "key.get",
                "challenge": challenge,
                "origin": "http://test",
                "crossOrigin": False,
            }
        ).encode()
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        digest = _HASHES[algorithm or "SHA256"]
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(client_data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(client_data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(client_data, padding.PKCS1v15(), digest)
        else:  # pragma: no cover - the sandbox only makes the three kinds above
            raise TypeError(type(key))
        assertion: dict[str, Any] = {
            "credId": self.cred_id,
            "clientData": b64url(client_data),
            "signature": b64url(signature),
        }
        if algorithm is not None:
            assertion["algorithm"] = algorithm
        return {"kind": "Key", "credentialAssertion": assertion}


class Dfns:
    """Talks to a running sandbox as any identity in its credentials file."""

    def __init__(self, base_url: str, credentials_path: Path) -> None:
        self.base_url = base_url
        self.credentials: dict[str, Any] = json.loads(credentials_path.read_text())
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    # -- the credentials file --------------------------------------------------------------

    def identity(self, name: str) -> Identity:
        raw = self.credentials["identities"][name]
        return Identity(
            name=name,
            user_id=raw["userId"],
            token=raw["authToken"],
            cred_id=raw["credId"],
            algorithm=raw["credentialAlgorithm"],
            private_key_pem=raw["privateKeyPem"],
        )

    def key(self, name: str) -> dict[str, Any]:
        key: dict[str, Any] = self.credentials["keys"][name]
        return key

    def key_id(self, name: str) -> str:
        return str(self.key(name)["keyId"])

    def wallet_id(self, key_name: str) -> str:
        return str(self.key(key_name)["wallets"][0]["id"])

    def public_key_id(self, name: str) -> str:
        return str(self.credentials["publicKeys"][name]["publicKeyId"])

    # -- calls -------------------------------------------------------------------------------

    def headers(self, as_: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.identity(as_).token}"}

    def get(self, path: str, *, as_: str = "engine", **params: Any) -> httpx.Response:
        return self.http.get(path, params=params or None, headers=self.headers(as_))

    def challenge(
        self, method: str, path: str, payload: str, *, as_: str = "engine"
    ) -> dict[str, Any]:
        response = self.http.post(
            "/auth/action/init",
            json={
                "userActionPayload": payload,
                "userActionHttpMethod": method,
                "userActionHttpPath": path,
                "userActionServerKind": "Api",
            },
            headers=self.headers(as_),
        )
        assert response.status_code == 200, response.text
        challenge: dict[str, Any] = response.json()
        return challenge

    def complete(
        self, challenge: dict[str, Any], *, as_: str = "engine", algorithm: str | None = None
    ) -> httpx.Response:
        factor = self.identity(as_).sign_challenge(challenge["challenge"], algorithm=algorithm)
        return self.present(challenge, factor, as_=as_)

    def present(
        self, challenge: dict[str, Any], factor: dict[str, Any], *, as_: str = "engine"
    ) -> httpx.Response:
        """``POST /auth/action`` with ``factor`` as the first factor, whatever it holds."""
        return self.http.post(
            "/auth/action",
            json={"challengeIdentifier": challenge["challengeIdentifier"], "firstFactor": factor},
            headers=self.headers(as_),
        )

    def user_action(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_: str = "engine",
        payload: str | None = None,
        algorithm: str | None = None,
    ) -> str:
        """Run init + sign + complete; returns the ``X-DFNS-USERACTION`` token."""
        signed = payload if payload is not None else ("" if body is None else compact(body))
        response = self.complete(
            self.challenge(method, path, signed, as_=as_), as_=as_, algorithm=algorithm
        )
        assert response.status_code == 200, response.text
        return str(response.json()["userAction"])

    def send(
        self, method: str, path: str, body: Any = None, *, as_: str = "engine", token: str | None
    ) -> httpx.Response:
        headers = self.headers(as_)
        if token is not None:
            headers["X-DFNS-USERACTION"] = token
        content = None if body is None else compact(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, path, content=content, headers=headers)

    def write(
        self, method: str, path: str, body: Any = None, *, as_: str = "engine"
    ) -> httpx.Response:
        """A guarded write with a fresh user-action token."""
        token = self.user_action(method, path, body, as_=as_)
        return self.send(method, path, body, as_=as_, token=token)

    def sign(self, key_name: str, body: dict[str, Any], *, as_: str = "engine") -> httpx.Response:
        return self.write("POST", f"/keys/{self.key_id(key_name)}/signatures", body, as_=as_)

    def signature(self, key_name: str, signature_id: str) -> dict[str, Any]:
        response = self.get(f"/keys/{self.key_id(key_name)}/signatures/{signature_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def create_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.write("POST", "/v2/policies", body)
        assert response.status_code == 200, response.text
        policy: dict[str, Any] = response.json()
        return policy

    def decide(
        self, approval_id: str, value: str, *, as_: str, reason: str | None = None
    ) -> httpx.Response:
        body: dict[str, Any] = {"value": value}
        if reason is not None:
            body["reason"] = reason
        return self.write("POST", f"/v2/policy-approvals/{approval_id}/decisions", body, as_=as_)

    # -- /_local/ --------------------------------------------------------------------------------

    def faults(self, **patch: Any) -> dict[str, Any]:
        response = self.http.put("/_local/faults", json=patch)
        assert response.status_code == 200, response.text
        faults: dict[str, Any] = response.json()
        return faults

    def advance(self, seconds: float) -> dict[str, Any]:
        response = self.http.post("/_local/clock", json={"advanceSeconds": seconds})
        assert response.status_code == 200, response.text
        clock: dict[str, Any] = response.json()
        return clock

    def reset(self) -> None:
        response = self.http.post("/_local/reset")
        assert response.status_code == 200, response.text


def approval_policy(user_ids: list[str], *, quorum: int = 2, **extra: Any) -> dict[str, Any]:
    """A Wallets:Sign policy that always asks ``quorum`` of ``user_ids`` to approve."""
    return {
        "name": "needs approval",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger"},
        "action": {
            "kind": "RequestApproval",
            "approvalGroups": [{"quorum": quorum, "approvers": {"userId": {"in": user_ids}}}],
            **extra,
        },
    }


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records what it is sent and answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.events.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def kinds(self) -> list[str]:
        with self._lock:
            return [str(e["kind"]) for e in self.events]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def sandbox_settings(directory: Path, **overrides: Any) -> SandboxSettings:
    """Settings for a test sandbox in ``directory`` (test org, fast ticks and retries)."""
    values: dict[str, Any] = {
        "db_path": directory / "sandbox.db",
        "config_path": ORG_FILE,
        "tick_seconds": 0.05,
        "webhook_retry_schedule": (1.0, 2.0),
        "webhook_delivery_timeout": 2.0,
    }
    values.update(overrides)
    return SandboxSettings(**values)


def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """Body of a module-scoped ``server`` fixture."""
    settings = sandbox_settings(tmp_path_factory.mktemp("sandbox"))
    with SandboxServer(settings) as running:
        yield running


def client_for(server: SandboxServer) -> Iterator[Dfns]:
    """Body of a ``dfns`` fixture: a client, and ``/_local/reset`` once the test is done."""
    client = Dfns(server.base_url, server.settings.resolved_credentials_path())
    try:
        yield client
    finally:
        client.reset()
        client.close()
