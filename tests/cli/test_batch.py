"""``signgate payout batch FILE``: checks every row first, runs, attaches, cancels."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.cli.conftest import workflow_exists
from tests.cli.support import cli

ADDRESS = "0x" + "42" * 20


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("id,to,value_wei,nonce,key\n" + "\n".join(rows) + "\n")
    return path


async def test_bad_rows_are_listed_and_nothing_starts(
    state_dir: Path, temporal: Client, tmp_path: Path
) -> None:
    batch_id = _id("bad")
    good = _id("good")
    file = _csv(
        tmp_path / "bad.csv",
        [
            f"{good},{ADDRESS},1000,0,evm-ops",
            f"{_id('p')},0x1234,1000,1,evm-ops",
            f"{_id('p')},{ADDRESS},-5,2,evm-ops",
            f"{good},{ADDRESS},1000,3,evm-ops",
        ],
    )
    done = cli(state_dir, "payout", "batch", str(file), "--batch-id", batch_id)
    assert done.code == 2, done
    lines = done.err.splitlines()
    assert "2 problem(s), nothing started" in lines[0]
    assert lines[1].startswith("  line 3 (id p-") and " to: " in lines[1]
    assert lines[2].startswith("  line 4 (id p-") and " value_wei: " in lines[2]
    assert not await workflow_exists(temporal, batch_id)

    file = _csv(tmp_path / "twice.csv", [f"{good},{ADDRESS},1,0,evm-ops"] * 2)
    done = cli(state_dir, "payout", "batch", str(file), "--batch-id", batch_id)
    assert done.code == 2 and f"repeated: {good}" in done.err, done

    (tmp_path / "odd.csv").write_text("id,to,value_wei,nonce,amount\n")
    done = cli(state_dir, "payout", "batch", str(tmp_path / "odd.csv"), "--key", "evm-ops")
    assert done.code == 2 and "unknown field(s) 'amount'" in done.err, done

    file = _csv(tmp_path / "sol.csv", [f"{_id('p')},{ADDRESS},1,0,solana"])
    done = cli(state_dir, "payout", "batch", str(file))
    assert done.code == 2 and "needs an ECDSA secp256k1 key" in done.err, done
    assert not await workflow_exists(temporal, good)


async def test_a_csv_batch_signs_every_row_and_the_same_id_attaches(
    state_dir: Path, temporal: Client, tmp_path: Path
) -> None:
    batch_id = _id("csv")
    rows = [f"{batch_id}-{n},{ADDRESS},{1000 + n},{n},evm-ops" for n in range(5)]
    file = _csv(tmp_path / "payouts.csv", rows)
    done = cli(state_dir, "payout", "batch", str(file), "--batch-id", batch_id, "--follow",
               "--json", timeout=180)  # fmt: skip
    assert done.code == 0, done
    started, *progress, last = done.json_lines()
    assert started == {"event": "started", "batchId": batch_id, "existing": False, "payouts": 5,
                       "taskQueue": started["taskQueue"]}  # fmt: skip
    assert all(line["event"] == "progress" for line in progress)
    outcome = last["outcome"]
    assert sum(outcome["by_outcome"].get(kind, 0) for kind in ("signed", "confirmed")) == 5
    assert [r["payout_id"] for r in outcome["results"]] == [f"{batch_id}-{n}" for n in range(5)]
    assert all(r["signature_id"] for r in outcome["results"])

    again = cli(state_dir, "payout", "batch", str(file), "--batch-id", batch_id, "--follow",
                timeout=120)  # fmt: skip
    assert again.code == 0, again
    lines = again.out.splitlines()
    assert lines[0].startswith(f"existing: {batch_id} was started before (completed)")
    assert lines[1].startswith(f"{batch_id} completed: 5 payouts: ")
    executions = [e async for e in temporal.list_workflows(f"WorkflowId = '{batch_id}'")]
    assert len(executions) == 1


async def test_cancelling_a_json_batch_cancels_its_payouts(state_dir: Path, tmp_path: Path) -> None:
    batch_id = _id("json")
    rows = [
        {"id": f"{batch_id}-{n}", "to": ADDRESS, "value_wei": "1000", "nonce": n} for n in range(3)
    ]
    file = tmp_path / "payouts.json"
    file.write_text(json.dumps({"payouts": rows}))
    done = cli(state_dir, "payout", "batch", str(file), "--key", "evm-treasury", "--batch-id",
               batch_id)  # fmt: skip
    assert done.code == 0, done
    assert done.out.startswith(f"started {batch_id}: 3 payouts")
    cancelled = cli(state_dir, "cancel", batch_id, "--follow", "--json", timeout=180)
    assert cancelled.code == 0, cancelled
    first, *_, last = cancelled.json_lines()
    assert first == {"event": "cancel_requested", "workflowId": batch_id}
    assert last["event"] == "outcome", cancelled
    outcome = last["outcome"]
    assert outcome["cancelled"] is True
    assert sum(outcome["by_outcome"].values()) == 3
    assert set(outcome["by_outcome"]) <= {"cancelled", "not_started"}
