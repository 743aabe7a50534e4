"""Test-side tools for the sandbox tests.

* :class:`Dfns`: a small Dfns client acting as any identity of the sandbox's credentials
  file; User Action Signing is :meth:`tests.support.credentials.Identity.sign_challenge`
  (``cryptography`` directly, not signgate's code).
* :func:`serve` / :func:`client_for`: bodies of the ``server`` (one sandbox per module, real
  HTTP on 127.0.0.1, a fresh SQLite file) and ``dfns`` (reset after each test) fixtures in
  ``tests/sandbox/conftest.py``, which only this directory's tests see.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signgate.sandbox.config import SandboxSettings
from signgate.sandbox.server import SandboxServer
from tests.support.credentials import Credentials, Identity, compact
from tests.unit.crypto import reference

ORG_FILE = Path(__file__).with_name("org.toml")


def recover(digest: bytes, signature: dict[str, Any]) -> bytes:
    """The compressed secp256k1 key an ECDSA ``{r, s, recid}`` over ``digest`` recovers to.

    The pure-Python reference (:mod:`tests.unit.crypto.reference`) does the recovery, not
    libsecp256k1: the sandbox signs with libsecp256k1, and a judge must not share its code.
    """
    r, s = (int(signature[n].removeprefix("0x"), 16) for n in ("r", "s"))
    return reference.ecdsa_recover(digest, r, s, int(signature["recid"]), compressed=True)


class Dfns:
    """Talks to a running sandbox as any identity in its credentials file."""

    def __init__(self, base_url: str, credentials_path: Path) -> None:
        self.base_url = base_url
        self.credentials = Credentials.load(credentials_path)
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    # -- the credentials file --------------------------------------------------------------

    def identity(self, name: str) -> Identity:
        return self.credentials.identity(name)

    def key(self, name: str) -> dict[str, Any]:
        return self.credentials.key(name)

    def key_id(self, name: str) -> str:
        return self.credentials.key_id(name)

    def wallet_id(self, key_name: str) -> str:
        return self.credentials.wallet_id(key_name)

    def public_key_id(self, name: str) -> str:
        return self.credentials.public_key_id(name)

    # -- calls -------------------------------------------------------------------------------

    def headers(self, as_: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.identity(as_).auth_token}"}

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


def sandbox_settings(directory: Path, **overrides: Any) -> SandboxSettings:
    """Settings for a test sandbox in ``directory`` (test org, fast ticks and retries)."""
    values: dict[str, Any] = {
        "db_path": directory / "sandbox.db",
        "config_path": ORG_FILE,
        "tick_seconds": 0.05,
        "webhook_retry_schedule": (1.0, 2.0),
        "webhook_delivery_timeout": 2.0,
        "rate_limit_per_minute": 0,  # the tests of the limit turn it on
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
