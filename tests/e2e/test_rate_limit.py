"""The engine under Dfns's rate limit: 429s wait for Retry-After and decide nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

import pytest

from signgate import ids
from signgate.contracts import PollingPolicy, SignatureWorkflowInput
from signgate.dfns.requests import HashRequest
from tests.support.engine_worker import RunningWorker
from tests.support.sandbox import EngineSandbox
from workflows.signature import SignatureWorkflow

pytestmark = pytest.mark.e2e

LIMIT = {"limitPerMinute": 120, "windowSeconds": 10}
"""Dfns's limit is per minute; the same rate counted over 10 s lets the window slide in
seconds: 20 calls in any 10 s."""
REQUESTS = 8
"""Eight signed writes cost at least 24 calls (challenge, signed challenge, write): more than
the window's 20, so some of them must wait for it to slide."""


async def test_requests_past_the_org_limit_wait_and_all_end_signed(
    worker: RunningWorker, sandbox: EngineSandbox
) -> None:
    prefix = f"limited-{uuid.uuid4().hex[:8]}"
    target = sandbox.target("key", "evm-auto")
    polling = PollingPolicy(
        initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=5)
    )
    await sandbox.local("POST", "reset")
    await sandbox.local("PUT", "rate-limit", LIMIT)
    try:
        handles = [
            await worker.client.start_workflow(
                SignatureWorkflow.run,
                SignatureWorkflowInput(
                    target=target, request=HashRequest(hash=os.urandom(32).hex()), polling=polling
                ),
                id=f"{prefix}-{n}",
                task_queue=worker.task_queue,
            )
            for n in range(REQUESTS)
        ]
        outcomes = await asyncio.gather(*(handle.result() for handle in handles))
        report = await sandbox.local("GET", "rate-limit")
    finally:
        await sandbox.local("PUT", "rate-limit", {"limitPerMinute": 0})
    assert [o.kind for o in outcomes] == ["signed"] * REQUESTS
    assert all(o.verification is not None and o.verification.status == "verified" for o in outcomes)
    assert report["sinceReset"]["limited"] > 0, report
    assert report["sinceReset"]["byRoute"]["POST /keys/{keyId}/signatures"] == REQUESTS
    for n in range(REQUESTS):
        external_id = ids.external_id_for(f"{prefix}-{n}")
        assert len(await sandbox.signatures_with_external_id("evm-auto", external_id)) == 1
