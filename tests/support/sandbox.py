"""The sandbox as the engine's tests use it: real HTTP on 127.0.0.1, real keys and signatures.

:class:`EngineSandbox` runs ``signgate.sandbox`` in a background thread with the org of
``engine-org.toml`` and reads the credentials file it writes. It hands out Dfns clients for
any identity (the engine's service account, the approvers), signing targets by key name,
the ``/_local/`` test affordances, and the list of every secret it holds, so tests can
prove none of them reached workflow history.

:meth:`EngineSandbox.clock_sync_hook` couples the sandbox clock to Temporal's: installed as
an httpx request hook on the engine's client, it moves the sandbox clock forward to the
activity's scheduled time before each call. On the time-skipping server a poll scheduled
three workflow-days later then sees a sandbox three days older too (approval expiry,
``Executing -> Signed`` and ``Signed -> Confirmed`` delays follow).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from temporalio import activity

from signgate.contracts import SigningTarget
from signgate.dfns.auth import CredentialSigner
from signgate.dfns.client import DfnsClient
from signgate.dfns.requests import ApprovalDecisionRequest
from signgate.sandbox.config import SandboxSettings
from signgate.sandbox.server import SandboxServer
from tests.support.credentials import Credentials, Identity

ENGINE_ORG = Path(__file__).with_name("engine-org.toml")


class EngineSandbox:
    """A running sandbox with the engine-test org."""

    def __init__(self, directory: Path, **settings: Any) -> None:
        values: dict[str, Any] = {
            "db_path": directory / "sandbox.db",
            "config_path": ENGINE_ORG,
            "tick_seconds": 0.05,
        }
        values.update(settings)
        self.settings = SandboxSettings(**values)
        self._server: SandboxServer | None = None
        self.base_url = ""
        self.credentials = Credentials({})

    def start(self) -> EngineSandbox:
        """Start serving (a fresh database makes a fresh org)."""
        self._server = SandboxServer(self.settings)
        self.base_url = self._server.start()
        self.credentials = Credentials.load(self.settings.resolved_credentials_path())
        return self

    def stop(self) -> None:
        """Stop serving; the database stays, so :meth:`start` continues where it stopped."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    # --- identities and targets -----------------------------------------------------------

    def identity(self, name: str) -> Identity:
        """A user or service account by its name in the org file."""
        return self.credentials.identity(name)

    def key(self, name: str) -> dict[str, Any]:
        """A key's public description (``keyId``, ``publicKey``, ``wallets``...)."""
        return self.credentials.key(name)

    def target(self, kind: str, name: str) -> SigningTarget:
        """The signing target for key ``name``: the key, its first wallet, or a public key."""
        if kind == "key":
            return SigningTarget(kind="key", id=self.credentials.key_id(name))
        if kind == "wallet":
            return SigningTarget(kind="wallet", id=self.credentials.wallet_id(name))
        return SigningTarget(kind="public-key", id=self.credentials.public_key_id(name))

    def dfns_client(self, name: str, http: httpx.AsyncClient) -> DfnsClient:
        """A Dfns client acting as identity ``name`` (``http`` must use :attr:`base_url`)."""
        ident = self.identity(name)
        signer = CredentialSigner(ident.cred_id, ident.private_key_pem, "http://localhost")
        return DfnsClient(http, auth_token=ident.auth_token, signer=signer)

    def secrets(self) -> list[str]:
        """Every secret of the org (see :meth:`Credentials.secrets`)."""
        return self.credentials.secrets()

    # --- /_local/ -------------------------------------------------------------------------

    async def local(self, method: str, path: str, body: Any = None) -> Any:
        """Call a ``/_local/`` endpoint (no authentication, never faulted)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            response = await http.request(method, f"/_local/{path}", json=body)
            response.raise_for_status()
            return response.json()

    async def set_faults(self, **faults: Any) -> None:
        """Patch the injected faults (``rate429``, ``errorRate``, ``dropAfterCommit``...)."""
        await self.local("PUT", "faults", faults)

    async def now(self) -> datetime:
        """The sandbox clock."""
        wire = await self.local("GET", "clock")
        return datetime.fromtimestamp(float(wire["nowTs"]), tz=UTC)

    async def advance_to(self, moment: datetime) -> None:
        """Move the sandbox clock forward to ``moment`` (never backward)."""
        ahead = (moment - await self.now()).total_seconds()
        if ahead > 0:
            await self.local("POST", "clock", {"advanceSeconds": ahead})

    def clock_sync_hook(self) -> Callable[[httpx.Request], Awaitable[None]]:
        """An httpx request hook that keeps the sandbox clock up with the activity's time."""

        async def sync(request: httpx.Request) -> None:
            del request
            if activity.in_activity():
                await self.advance_to(activity.info().current_attempt_scheduled_time)

        return sync

    async def fail_signature(self, signature_id: str, reason: str = "test") -> None:
        """Force a signature request to ``Failed``."""
        await self.local("POST", f"signatures/{signature_id}/fail", {"reason": reason})

    async def decide(
        self, approval_id: str, *names: str, value: Literal["Approved", "Denied"] = "Approved"
    ) -> None:
        """Approvers ``names`` decide on ``approval_id``."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            for name in names:
                client = self.dfns_client(name, http)
                await client.create_approval_decision(
                    approval_id, ApprovalDecisionRequest(value=value, reason=f"{name} says so")
                )

    async def signatures_with_external_id(self, key_name: str, external_id: str) -> list[str]:
        """Ids of the key's signature requests carrying ``external_id`` (the doubling check)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            client = self.dfns_client("engine", http)
            return [
                item.id
                async for item in client.iter_signatures(self.credentials.key_id(key_name))
                if item.external_id == external_id
            ]
