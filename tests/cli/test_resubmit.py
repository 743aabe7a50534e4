"""``signgate sign`` with a request id used before: it says whether it started anything."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client

from tests.cli.support import HASH, cli


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _executions(client: Client, workflow_id: str) -> list[str]:
    return [
        execution.run_id
        async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]


def test_a_new_request_id_starts_a_workflow(state_dir: Path) -> None:
    request_id = _id("new")
    started = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id",
                  request_id, "--json")  # fmt: skip
    assert started.code == 0, started
    [event] = started.json_lines()
    assert event["existing"] is False
    assert "existingStatus" not in event
    text = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id",
               _id("new-text"))  # fmt: skip
    assert text.code == 0, text
    assert text.out.startswith("started new-text-")


async def test_a_running_request_id_attaches_and_says_so(state_dir: Path, temporal: Client) -> None:
    request_id = _id("running")
    # Treasury keys need two approvals: the workflow stays running until cancelled.
    first = cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
                request_id, "--json")  # fmt: skip
    assert first.code == 0, first
    [started] = first.json_lines()
    assert started["existing"] is False

    again = cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
                request_id, "--json")  # fmt: skip
    assert again.code == 0, again
    [attached] = again.json_lines()
    assert attached["existing"] is True
    assert attached["existingStatus"] == "running"
    assert attached["runId"] == started["runId"]

    text = cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
               request_id)  # fmt: skip
    assert text.code == 0, text
    assert text.out.splitlines()[0] == (
        f"existing: {request_id} was submitted before (running); attached to it, nothing new "
        "started"
    )
    assert await _executions(temporal, request_id) == [started["runId"]]
    assert cli(state_dir, "cancel", request_id).code == 0


async def test_a_closed_request_id_attaches_to_its_outcome(
    state_dir: Path, temporal: Client
) -> None:
    """REJECT_DUPLICATE: a finished workflow keeps its id; the re-submit reads its outcome."""
    request_id = _id("closed")
    first = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id",
                request_id, "--follow", "--json")  # fmt: skip
    assert first.code == 0, first
    started, *_, outcome = first.json_lines()
    assert started["existing"] is False

    again = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id",
                request_id, "--follow", "--json")  # fmt: skip
    assert again.code == 0, again
    attached, *_, same = again.json_lines()
    assert attached["existing"] is True
    assert attached["existingStatus"] == "completed"
    assert attached["runId"] == started["runId"]
    assert same["outcome"]["signature_id"] == outcome["outcome"]["signature_id"]

    text = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id",
               request_id)  # fmt: skip
    assert text.code == 0, text
    assert text.out.splitlines()[0] == (
        f"existing: {request_id} was submitted before (completed); attached to it, nothing "
        "new started"
    )
    assert await _executions(temporal, request_id) == [started["runId"]]
