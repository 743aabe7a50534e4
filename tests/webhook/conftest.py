"""End-to-end fixtures for the webhook receiver: dev server, sandbox, worker, receiver.

Everything runs on 127.0.0.1 over real HTTP: the session's Temporal dev server
(``tests/conftest.py``), a sandbox for the module (signing at once on approval, webhook
retries after 1, 2, 4 and 8 s instead of Dfns's minutes to a day), the engine's worker in
this process, and the receiver on uvicorn, registered with the sandbox through
``register_webhook`` (the code behind ``signgate webhook register``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from signgate.settings import Settings
from signgate.webhook.app import WebhookReceiver
from signgate.webhook.registration import register_webhook
from signgate.webhook.routing import TemporalRouter
from signgate.webhook.secrets import SecretStore
from signgate.webhook.server import ReceiverServer
from tests.support.ports import free_port
from tests.support.sandbox import EngineSandbox
from tests.webhook.stack import RETRY_SCHEDULE, RunningReceiver


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSandbox]:
    """The engine-test org; an approval signs at once; webhook retries in seconds."""
    running = EngineSandbox(
        tmp_path_factory.mktemp("webhook-sandbox"),
        executing_delay_seconds=0.0,
        webhook_retry_schedule=RETRY_SCHEDULE,
        webhook_delivery_timeout=2.0,
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def receiver(
    client: Client, sandbox: EngineSandbox, tmp_path: Path
) -> AsyncIterator[RunningReceiver]:
    """A receiver on a free port, registered with the sandbox; unregistered afterwards."""
    port = free_port()
    secret_file = tmp_path / "webhook.json"
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        dfns = sandbox.dfns_client("engine", http)
        registration = await register_webhook(
            dfns, f"http://127.0.0.1:{port}/webhooks/dfns", secret_file
        )
        # As deployed: a resolved approval waits for its request's status event.
        hold = Settings.model_fields["webhook_approval_hold_seconds"].default
        router = TemporalRouter(client, lookup_timeout=1.0, hold_approvals=hold)
        receiver = WebhookReceiver(SecretStore(secret_file), router)
        server = ReceiverServer(receiver, port=port)
        await server.start()
        try:
            yield RunningReceiver(server, receiver, router, registration, secret_file)
        finally:
            await server.stop()
            await dfns.delete_webhook(registration.webhook_id)
            await sandbox.set_faults(webhookLoss=0.0, webhookDuplicate=0.0, webhookReorder=0)
