"""The approval console in a real headless Chromium, with the whole engine behind it.

A ``SignatureWorkflow`` (real Temporal dev server, the engine's worker and activities, the
sandbox over HTTP) submits a transfer that needs two approvals. The page shows it, decoded;
alice and then bob pick themselves in the page and click Approve; the request is signed and
the workflow completes with a verified signature. Reasons typed into the page are shown as
text, never run as markup.

Where Chromium is missing the test is skipped with a message saying how to install it,
unless ``REQUIRE_BROWSER_TEST=1`` (CI sets it), which makes a missing browser an error.
``CONSOLE_SCREENSHOT=/some/file.png`` keeps a screenshot of the page mid-way.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.payout import serialize_eip1559
from signgate.contracts import (
    BuildTransferInput,
    PollingPolicy,
    SignatureWorkflowInput,
)
from signgate.dfns.requests import TransactionRequest
from tests.console.browser import HOW_TO_ENABLE, Browser, chromium_available, copy_if_asked
from tests.support.engine_worker import RunningWorker
from tests.support.sandbox import EngineSandbox
from workflows.signature import SignatureWorkflow

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not chromium_available() and os.environ.get("REQUIRE_BROWSER_TEST") != "1",
        reason=HOW_TO_ENABLE,
    ),
]

FAST = PollingPolicy(initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2))
HOSTILE_REASON = '<img src=x onerror="window.__xss = 1">ok by alice'


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EngineSandbox]:
    # The transfer must stay Signed while the page and the workflow look at it: with a short
    # confirm delay a slow machine sees Confirmed first (both are right, but this test is
    # about approval leading to Signed).
    running = EngineSandbox(
        tmp_path / "sandbox", executing_delay_seconds=0.5, confirm_delay_seconds=600.0
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    running = await Browser.launch(tmp_path / "chromium")
    try:
        yield running
    finally:
        await running.close()


def _transfer() -> TransactionRequest:
    spec = BuildTransferInput(
        chain_id=11155111,
        nonce=5,
        to="0x" + "42" * 20,
        value_wei=2_500_000_000_000_000,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
    )
    return TransactionRequest(transaction="0x" + serialize_eip1559(spec).hex())


async def _approve_as(browser: Browser, card: str, user: str, reason: str | None = None) -> None:
    await browser.select("#user", user)
    await browser.wait_for(
        f"document.querySelector({json.dumps(card + ' button.approve')}).textContent"
        f" === {json.dumps('Approve as ' + user)}",
        what=f"the Approve button to name {user}",
    )
    if reason is not None:
        await browser.type(f"{card} input.reason", reason)
    await browser.click(f"{card} button.approve")


async def test_two_approvers_approve_in_the_browser_and_the_workflow_completes(
    worker: RunningWorker, client: Client, sandbox: EngineSandbox, browser: Browser, tmp_path: Path
) -> None:
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput(
            target=sandbox.target("wallet", "evm-gated"), request=_transfer(), polling=FAST
        ),
        id=f"console-{uuid.uuid4().hex[:12]}",
        task_queue=worker.task_queue,
    )
    await browser.goto(f"{sandbox.base_url}/console")

    # The pending approval appears on its own (the page polls), decoded.
    approval_id = str(
        await browser.wait_for(
            "(document.querySelector('article.card') || {}).dataset?.approvalId",
            what="the pending approval to appear",
        )
    )
    card = f'article.card[data-approval-id="{approval_id}"]'
    text = await browser.text(card)
    assert "Transaction" in text and "evm-gated" in text
    assert "0x" + "42" * 20 in text
    assert "2500000000000000 wei (0.0025 ETH)" in text
    assert "Gated signatures need alice and bob" in text
    assert "0 of 2 approvals" in text
    assert "engine (service account)" in text
    options = await browser.evaluate(
        "[...document.querySelectorAll('#user option')].map(o => o.value)"
    )
    assert options[:3] == ["alice", "bob", "carol"]

    await _approve_as(browser, card, "alice", HOSTILE_REASON)
    await browser.wait_for(
        f"document.querySelector({json.dumps(card)})?.innerText.includes('1 of 2 approvals')",
        what="alice's approval to count",
    )
    assert "alice approved it: still pending (1 of 2 approvals)." in await browser.text(
        f"{card} .message"
    )
    # What an API caller wrote is shown as text and never run. The message above comes from
    # the decision's answer; the decision list from the page's next refresh.
    decisions = json.dumps(f"{card} [data-role=decisions]")
    await browser.wait_for(
        f"document.querySelector({decisions})?.innerText.includes({json.dumps(HOSTILE_REASON)})",
        what="alice's decision to be listed",
    )
    assert await browser.evaluate("document.querySelectorAll('main img').length") == 0
    assert await browser.evaluate("window.__xss === undefined")

    shot = await browser.screenshot(tmp_path / "console.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    copy_if_asked(shot)

    # alice cannot decide twice: the page says why.
    await browser.select("#user", "alice")
    await browser.click(f"{card} button.deny")
    await browser.wait_for(
        f"!!document.querySelector({json.dumps(card + ' .message.error')})",
        what="the refusal to be shown",
    )
    assert "alice could not decide: user alice has already decided on this approval" in (
        await browser.text(f"{card} .message")
    )

    await _approve_as(browser, card, "bob")
    row = f'#resolved tr[data-approval-id="{approval_id}"]'
    await browser.wait_for(
        f"!document.querySelector({json.dumps(card)})"
        f" && !!document.querySelector({json.dumps(row)})",
        what="the approval to leave the pending list",
    )
    assert "Approved" in await browser.text(f"{row} [data-role=outcome]")
    await browser.wait_for(
        f"document.querySelector({json.dumps(row + ' [data-role=signature]')})"
        ".innerText.includes('Signed')",
        what="the signature request to be signed",
    )
    flash = await browser.text("#flash")
    assert f"bob approved {approval_id}: approval Approved." in flash

    outcome = await asyncio.wait_for(handle.result(), timeout=60)
    assert outcome.kind == "signed"
    assert outcome.approval_id == approval_id
    assert outcome.verification is not None and outcome.verification.status == "verified"
    assert outcome.approval is not None
    assert outcome.approval.status == "Approved"
    assert {d.user_id for d in outcome.approval.decisions} == {
        sandbox.identity("alice").user_id,
        sandbox.identity("bob").user_id,
    }

    assert browser.errors == [], "no script error, console error or CSP violation"
    decisions_url = f"{sandbox.base_url}/_local/console/approvals/{approval_id}/decisions"
    assert browser.failed_loads == [
        f"Failed to load resource: the server responded with a status of 409 (Conflict) "
        f"{decisions_url}"
    ], "only alice's refused second decision failed"
