"""Replay the committed histories with today's workflow code.

The files in ``histories/`` were recorded from real runs (``python -m tests.replay.record``),
one per scenario of ``tests.replay.record.SCENARIOS``: signed after days of polling, signed
after a status event, a status event read and verified within one workflow task, the same
on workers whose budget refused the starter's local reads (a patch marker records it), a
signed event whose own copy of the request verified (no read), both webhooks of an
approval, a resolved approval whose status event never came, expired by deadline and by
the approval timeout, cancelled, continued as new (every run), a signature
that does not verify, a payout with its child, a batch that continued as new with one of
its payouts, and a paced reconciler that woke a request and continued as new with that
request, which skipped a safety-net poll while the reconciler swept (recorded on the dev
server: the time-skipping one has no visibility queries). If a code change makes any of them
replay differently, workflows already in flight would break on deploy: this test fails
first, and ``changed_workflow`` proves that it can.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from signgate import ids
from tests.replay.changed_workflow import SignatureWorkflowWithAnExtraTimer
from tests.replay.record import SCENARIOS
from workflows.batch import PayoutBatchWorkflow
from workflows.payout import PayoutWorkflow
from workflows.reconciler import ReconcilerWorkflow
from workflows.signature import SignatureWorkflow

HISTORIES = sorted(Path(__file__).with_name("histories").glob("*.json"))


def _workflow_id(stem: str) -> str:
    """The recorder's workflow id for a file: ``replay-<scenario>`` (children add a step).

    Replay needs the real id: the workflow derives its idempotency key from it.
    """
    scenario = re.sub(r"-run\d+$", "", stem)
    if scenario.endswith("-child"):
        return ids.child_signature_workflow_id(f"replay-{scenario.removesuffix('-child')}")
    return f"replay-{scenario}"


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(_workflow_id(path.stem), path.read_text())


def test_the_representative_runs_are_all_there() -> None:
    names = {p.stem for p in HISTORIES}
    assert {
        "signed-after-polling",
        "signed-by-status-event",
        "signed-by-webhook-status",
        "signed-by-webhook-local-read",
        "budget-queued-reads",
        "signed-after-approval-event",
        "approval-event-then-poll",
        "expired-by-deadline",
        "expired-by-approval-timeout",
        "cancelled",
        "continued-as-new-run1",
        "verification-failed",
        "payout-confirmed",
        "payout-confirmed-child",
        "batch-run1",
        "batch-run2",
        "batch-payout-0",
        "reconciled-run1",
        "reconciled-run2",
        "reconciled-request",
    } <= names
    assert {n for n in SCENARIOS if n not in ("continued-as-new", "batch", "reconciled")} <= names
    assert {"continued-as-new-run1", "continued-as-new-run2"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays_with_current_code(path: Path) -> None:
    replayer = Replayer(
        workflows=[SignatureWorkflow, PayoutWorkflow, PayoutBatchWorkflow, ReconcilerWorkflow],
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


async def test_an_incompatible_change_fails_replay() -> None:
    replayer = Replayer(
        workflows=[SignatureWorkflowWithAnExtraTimer], data_converter=pydantic_data_converter
    )
    history = _load(Path(__file__).with_name("histories") / "signed-after-polling.json")
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_committed_histories_hold_no_secret(path: Path) -> None:
    history = _load(path)
    raw = b"".join(event.SerializeToString() for event in history.events)
    for marker in (b"PRIVATE KEY", b"privateKeyPem", b"authToken", b"recorder-callback-secret"):
        assert marker not in raw, f"{path.name} holds {marker!r}"
    assert b"Bearer " not in raw
    json.loads(path.read_text())
