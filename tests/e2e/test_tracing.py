"""Tracing on: one signed request is one trace, from the start through every Dfns call.

The engine runs in this process with real activities against the sandbox and a real dev
server; the tracer provider exports to memory. What it checks is what an operator reads in a
trace viewer: one trace id, the workflow, its activities on their queues, the Dfns calls as
the activities' children, and no token, key or request body in any attribute.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from activities.metering import MeteredTransport
from signgate import ids
from signgate.contracts import SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from signgate.temporal_client import connect_temporal
from signgate.tracing import configure_tracing
from tests.support.sandbox import EngineSandbox
from tests.support.temporal import DevServer
from worker import engine_activities, engine_workers
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = configure_tracing(True, service_name="signgate-test", tracer_provider=provider)
    try:
        yield exporter
    finally:
        stop()


async def test_one_signed_request_is_one_trace_through_the_dfns_calls(
    spans: InMemorySpanExporter, dev_server: DevServer, sandbox: EngineSandbox, task_queue: str
) -> None:
    await sandbox.set_faults(rate429=0.0, errorRate=0.0)
    client = await connect_temporal(
        config={"target_host": dev_server.address, "namespace": dev_server.namespace}
    )
    digest = os.urandom(32).hex()
    transport = MeteredTransport(httpx.AsyncHTTPTransport())
    async with (
        httpx.AsyncClient(base_url=sandbox.base_url, transport=transport, timeout=10) as http,
        httpx.AsyncClient(timeout=5) as callbacks,
        engine_workers(
            client,
            task_queue=task_queue,
            activities=engine_activities(
                sandbox.dfns_client("engine", http), callbacks, callback_secrets={}, ledgers={}
            ),
        ),
    ):
        outcome = await client.execute_workflow(
            SignatureWorkflow.run,
            SignatureWorkflowInput(
                target=sandbox.target("key", "evm-auto"), request=HashRequest(hash=digest)
            ),
            id=f"traced-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
    assert outcome.kind == "signed"
    finished = list(spans.get_finished_spans())
    names = {span.name for span in finished}
    start = _one(finished, "StartWorkflow:SignatureWorkflow")
    assert {span.context.trace_id for span in finished} == {start.context.trace_id}, names
    assert "RunWorkflow:SignatureWorkflow" in names
    submit = _one(finished, f"RunActivity:{ids.ACTIVITY_SUBMIT}")
    # The user-action flow, the request itself and the key read that verifies a signature
    # returned at once: each a child of the submit activity.
    children = {s.name for s in finished if s.parent and s.parent.span_id == submit.context.span_id}
    assert children == {
        "Dfns GET /keys/{id}",
        "Dfns POST /auth/action/init",
        "Dfns POST /auth/action",
        "Dfns POST /keys/{id}/signatures",
    }
    for span in finished:
        if span.name.startswith("Dfns "):
            assert span.attributes is not None
            assert span.attributes["http.response.status_code"] == 200
    # Nothing secret and no request body in any attribute.
    secrets = [*sandbox.secrets(), digest]
    for span in finished:
        text = " ".join(f"{k}={v!r}" for k, v in (span.attributes or {}).items())
        leaked = [s for s in secrets if s and s in text]
        assert not leaked, f"{span.name} carries a secret or the body"


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, sorted({s.name for s in spans}))
    return found[0]
