"""Metrics end to end: a worker process and a receiver, four requests, then both scrapes.

The worker (``worker.py`` as a process, ``SIGNGATE_METRICS_PORT`` set) runs a request that
signs at once, one approved, one denied and one that expires; the receiver gets Dfns's
webhooks. Both ``/metrics`` pages must show each metric with the counts those requests
make, and no label may carry a secret, a token, a workflow id or a Dfns id.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client, WorkflowHandle

from signgate.contracts import PollingPolicy, SignatureOutcome, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from signgate.webhook.app import WebhookReceiver
from signgate.webhook.registration import register_webhook
from signgate.webhook.routing import TemporalRouter
from signgate.webhook.secrets import SecretStore
from signgate.webhook.server import ReceiverServer
from tests.support.dashboard import metric_names
from tests.support.eventually import eventually
from tests.support.ports import free_port
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from tests.support.worker_process import WorkerProcess, engine_env
from workflows.signature import SignatureWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

POLLING = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2))
Samples = list[tuple[str, dict[str, str], float]]
_TEMPORAL_ENV: dict[str, str] = {}
"""``TEMPORAL_ADDRESS`` / ``TEMPORAL_NAMESPACE`` of the dev server, set by the test."""
Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]


def _samples(text: str) -> Samples:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _sum(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for n, got, value in samples
        if n == name and all(got.get(k) == v for k, v in labels.items())
    )


async def _scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
        response.raise_for_status()
        return _samples(response.text)


async def test_worker_and_receiver_metrics_count_what_happened(
    client: Client, dev_server: DevServer, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    engine = sandbox.identity("engine")
    env = engine_env(dev_server, sandbox, task_queue, tmp_path, metrics_port)
    _TEMPORAL_ENV.update(
        TEMPORAL_ADDRESS=dev_server.address, TEMPORAL_NAMESPACE=dev_server.namespace
    )
    port = free_port()
    secret_file = tmp_path / "webhook.json"
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        dfns = sandbox.dfns_client("engine", http)
        registration = await register_webhook(
            dfns, f"http://127.0.0.1:{port}/webhooks/dfns", secret_file
        )
        receiver = WebhookReceiver(SecretStore(secret_file), TemporalRouter(client))
        server = ReceiverServer(receiver, port=port)
        await server.start()
        process = WorkerProcess(env).start()
        try:
            outcomes, ids_seen = await _run_requests(client, sandbox, task_queue)
            worker = await _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            # One unsigned delivery: the receiver refuses it and counts the reason.
            forged = await http.post(f"http://127.0.0.1:{port}/webhooks/dfns", json={"id": "x"})
            assert 400 <= forged.status_code < 500
            received = await eventually(
                _until(
                    lambda: _scrape(f"http://127.0.0.1:{port}/metrics"),
                    lambda s: _sum(s, "signgate_webhook_events_total", outcome="delivered") >= 1,
                ),
                what="the receiver delivered a webhook",
                within=60,
            )
        finally:
            process.terminate()
            await server.stop()
            await dfns.delete_webhook(registration.webhook_id)

    assert sorted(o.kind for o in outcomes) == ["expired", "rejected", "signed", "signed"]
    # Workflow metrics count at least once: a workflow task Temporal refused (a webhook's
    # signal landed as it completed) runs again and records again. Never fewer, never none.
    assert _sum(worker, "signgate_requests_submitted_total", target_kind="key") >= 4
    for kind, count in {"signed": 2, "rejected": 1, "expired": 1}.items():
        assert _sum(worker, "signgate_outcomes_total", outcome=kind) >= count, kind
        assert _sum(worker, "signgate_time_to_outcome_seconds_count", outcome=kind) >= count
    assert _sum(worker, "signgate_outcomes_total", outcome="cancelled") == 0
    assert _sum(worker, "signgate_outcomes_total", outcome="failed") == 0
    assert _sum(worker, "signgate_time_to_outcome_seconds_sum") > 0
    # Three requests waited on an approval (approved, denied, expired and denied by us).
    assert _sum(worker, "signgate_approval_wait_seconds_count") >= 3
    # The approved one left Pending for Executing or Signed (whichever the read saw first).
    approved = [
        _sum(worker, "signgate_approval_wait_seconds_count", result=r)
        for r in ("executing", "signed")
    ]
    assert sum(approved) >= 1
    assert _sum(worker, "signgate_approval_wait_seconds_count", result="rejected") >= 2
    assert _sum(worker, "signgate_verifications_total", verdict="verified", scheme="ECDSA") >= 2
    assert _sum(worker, "signgate_verifications_total", verdict="invalid") == 0
    post = {"route": "/keys/{id}/signatures", "method": "POST"}
    assert _sum(worker, "signgate_dfns_calls_total", **post, status_class="2xx") >= 4
    assert _sum(worker, "signgate_dfns_calls_total", route="/keys/{id}/signatures/{id}") >= 4
    assert _sum(worker, "signgate_wakeups_total", cause="deadline") >= 1
    assert _sum(worker, "signgate_wakeups_total", cause="cancel") == 0
    assert (
        _sum(worker, "signgate_wakeups_total", cause="webhook")
        + _sum(worker, "signgate_wakeups_total", cause="poll")
        >= 1
    )
    assert _sum(received, "signgate_webhook_verification_seconds_count") >= 1
    assert _sum(received, "signgate_webhook_signal_seconds_count") >= 1
    assert _sum(received, "signgate_webhook_rejections_total") >= 1
    # Every metric the shipped Grafana dashboard reads is in these two scrapes.
    scraped = {name for name, _, _ in worker} | {name for name, _, _ in received}
    missing = sorted(metric_names() - scraped)
    assert not missing, f"the dashboard reads metrics no scrape has: {missing}"

    # No label anywhere carries a secret, a token or an id of a request.
    forbidden = {
        *sandbox.secrets(),
        engine.auth_token,
        engine.cred_id,
        SecretStore(secret_file).file.current.secret.get_secret_value(),  # type: ignore[union-attr]
        *ids_seen,
    }
    forbidden.discard("")
    for name, labels, _ in worker + received:
        for value in labels.values():
            for secret in forbidden:
                assert secret not in value, f"{name} label carries {secret[:6]}..."


def _pending_lists(*workflow_ids: str) -> Callable[[], Awaitable[list[dict[str, Any]] | None]]:
    """A probe running ``signgate list --pending --json``: the rows of ``workflow_ids``."""

    async def probe() -> list[dict[str, Any]] | None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "signgate.cli",
            "list",
            "--pending",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **_TEMPORAL_ENV},
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            return None
        rows = [r for r in json.loads(out)["requests"] if r["workflowId"] in workflow_ids]
        return rows if len(rows) == len(workflow_ids) else None

    return probe


async def test_list_pending_shows_a_request_whose_worker_is_away(
    client: Client, dev_server: DevServer, sandbox: EngineSandbox, task_queue: str, tmp_path: Path
) -> None:
    """A waiting request is listed when no worker answers its query, and the list returns."""
    _TEMPORAL_ENV.update(
        TEMPORAL_ADDRESS=dev_server.address, TEMPORAL_NAMESPACE=dev_server.namespace
    )
    process = WorkerProcess(engine_env(dev_server, sandbox, task_queue, tmp_path)).start()
    try:
        handle = await client.start_workflow(
            SignatureWorkflow.run,
            SignatureWorkflowInput(
                target=sandbox.target("key", "evm-gated"),
                request=HashRequest(hash="0x" + uuid.uuid4().hex * 2),
                polling=POLLING,
            ),
            id=f"metrics-away-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
        )
        await eventually(
            _pending_lists(handle.id), what="the request is listed as waiting", within=120
        )
    finally:
        process.kill()
    rows = await eventually(
        _pending_lists(handle.id),
        what="the request is listed without its worker",
        within=120,
    )
    assert rows[0]["answered"] is False and rows[0]["status"] == "Pending", rows
    assert rows[0]["ageSeconds"] is None
    await handle.terminate("test over")


def _until(
    probe: Callable[[], Awaitable[Samples]], done: Callable[[Samples], bool]
) -> Callable[[], Awaitable[Samples | None]]:
    async def check() -> Samples | None:
        samples = await probe()
        return samples if done(samples) else None

    return check


async def _run_requests(
    client: Client, sandbox: EngineSandbox, task_queue: str
) -> tuple[list[SignatureOutcome], set[str]]:
    async def start(plan: str, key: str, deadline: datetime | None = None) -> Handle:
        return await client.start_workflow(
            SignatureWorkflow.run,
            SignatureWorkflowInput(
                target=sandbox.target("key", key),
                request=HashRequest(hash="0x" + uuid.uuid4().hex * 2),
                polling=POLLING,
                deadline=deadline,
            ),
            id=f"metrics-{plan}-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
        )

    auto = await start("auto", "evm-auto")
    approve = await start("approve", "evm-gated")
    deny = await start("deny", "evm-gated")
    expire = await start("expire", "evm-gated", datetime.now(UTC) + timedelta(seconds=8))
    handles = [auto, approve, deny, expire]

    async def approval_of(handle: Handle) -> str:
        async def probe() -> str | None:
            return (await handle.query(SignatureWorkflow.state)).approval_id

        found: str = await eventually(probe, what="the request has its approval", within=120)
        return found

    approve_id, deny_id = await approval_of(approve), await approval_of(deny)
    pending = await eventually(
        _pending_lists(approve.id, deny.id, expire.id),
        what="signgate list --pending shows the three waiting requests",
        within=60,
    )
    for row in pending:
        assert row["answered"] and row["status"] == "Pending" and row["ageSeconds"] >= 0
        assert row["approvalId"] is not None and row["decisions"] == [], row
        # The quorum is known once an approval webhook carried it (until then: None).
        assert row["awaiting"] in (None, 2), row
    await sandbox.decide(approve_id, "alice", "bob")
    await sandbox.decide(deny_id, "bob", value="Denied")
    outcomes = [await h.result() for h in handles]
    seen: set[str] = {h.id for h in handles}
    for o in outcomes:
        seen.update(x for x in (o.signature_id, o.approval_id, o.key_id, o.external_id) if x)
        seen.add(o.target.id)
    return outcomes, seen
