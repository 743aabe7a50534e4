"""``make demo``'s script: four payouts end as the story says, and no process is left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.support import assert_gone, hermetic_env, processes_mentioning


def test_demo_runs_four_payouts_and_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable, "-m", "signgate.demo", "--state-dir", str(state),
            "--pause", "1", "--deadline", "6",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=hermetic_env(),
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    summary = out[out.index("Summary:") :]
    rows = {line.split()[0]: line for line in summary.splitlines()[2:6]}
    assert set(rows) == {"small", "two-approvals", "denied", "deadline"}
    assert " signed " in rows["small"] and "none needed" in rows["small"]
    assert " signed " in rows["two-approvals"]
    assert "alice, bob approved" in rows["two-approvals"]
    assert " rejected " in rows["denied"] and "carol denied" in rows["denied"]
    assert " expired " in rows["deadline"]
    assert "nobody decided; engine withdrew it at the deadline" in rows["deadline"]
    for name in ("small", "two-approvals"):
        assert "verified: signer 0x" in rows[name] and "= wallet; engine agrees" in rows[name]
    assert "alice decides on two-approvals: signgate approve ap-" in out
    assert "every payout ended as expected" in out
    assert "no process left behind (4 checked)" in out

    record = json.loads((state / "demo-summary.json").read_text())
    assert record["ok"] is True
    assert record["leftBehind"] == []
    assert {p["scenario"]: p["outcome"] for p in record["payouts"]} == {
        "small": "signed",
        "two-approvals": "signed",
        "denied": "rejected",
        "deadline": "expired",
    }
    assert sorted(record["processes"]) == ["sandbox", "temporal", "webhook", "worker"]
    assert_gone(list(record["processes"].values()))
    assert processes_mentioning(str(state)) == []
