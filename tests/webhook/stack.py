"""The pieces of a webhook end-to-end test, and helpers to drive them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle

from signgate import ids
from signgate.contracts import (
    PollingPolicy,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
)
from signgate.dfns.requests import HashRequest
from signgate.webhook.app import WebhookReceiver
from signgate.webhook.registration import Registration
from signgate.webhook.routing import TemporalRouter
from signgate.webhook.secrets import SecretStore
from signgate.webhook.server import ReceiverServer
from tests.support.eventually import eventually
from tests.support.sandbox import EngineSandbox
from workflows.signature import SignatureWorkflow

Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]

RETRY_SCHEDULE = (1.0, 2.0, 4.0, 8.0)
"""The sandbox's webhook retry delays in these tests (Dfns: 1 min, 12 min, 2 h, 1 day)."""


@dataclass
class RunningReceiver:
    """The receiver under test, its registration at the sandbox, and how to reach it."""

    server: ReceiverServer
    receiver: WebhookReceiver
    router: TemporalRouter
    registration: Registration
    secret_file: Path

    @property
    def url(self) -> str:
        return self.server.url

    def secret(self) -> str:
        content = SecretStore(self.secret_file).file
        assert content is not None
        return content.current.secret.get_secret_value()


NO_TIMER_POLLS = PollingPolicy(initial_interval=timedelta(hours=1), max_interval=timedelta(hours=1))
"""No poll within any test's lifetime: only a webhook can wake the workflow."""
FAST_POLLS = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2))


async def start_gated(
    client: Client,
    sandbox: EngineSandbox,
    task_queue: str,
    polling: PollingPolicy,
    *,
    prefix: str = "wh",
) -> Handle:
    """A hash signature on the key whose policy needs alice and bob."""
    return await client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput(
            target=sandbox.target("key", "evm-gated"),
            request=HashRequest(hash="0x" + uuid.uuid4().hex * 2),
            polling=polling,
        ),
        id=f"{prefix}-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,
    )


async def progress(handle: Handle) -> SignatureProgress:
    state: SignatureProgress = await handle.query(ids.QUERY_STATE, result_type=SignatureProgress)
    return state


async def approval_id_of(handle: Handle) -> str:
    """Wait until the workflow knows the approval gating its request."""

    async def probe() -> str | None:
        return (await progress(handle)).approval_id

    return await eventually(probe, what=f"{handle.id} knows its approval")


async def webhook_events(sandbox: EngineSandbox, webhook_id: str) -> list[dict[str, Any]]:
    """Every delivery attempt the sandbox made to the webhook, oldest first."""
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {sandbox.identity('engine').auth_token}"}
        response = await http.get(
            f"/webhooks/{webhook_id}/events", params={"limit": 200}, headers=headers
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
    return list(reversed(items))
