"""The operator commands against a running ``signgate dev`` stack, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.downstream import SIGNATURE_HEADER, verify_callback_signature
from activities.payout import serialize_eip1559
from signgate.contracts import BuildTransferInput, PayoutInput, SigningTarget
from signgate.ids import PAYOUT_WORKFLOW
from tests.cli.support import HASH, Result, cli, hermetic_env
from tests.support.credentials import Credentials
from tests.support.eventually import GiveUp, eventually_sync
from tests.support.recorder import HttpRecorder


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _status(state_dir: Path, workflow_id: str) -> dict[str, Any]:
    result = cli(state_dir, "status", workflow_id, "--json")
    assert result.code == 0, result
    data: dict[str, Any] = json.loads(result.out)
    return data


def _until_closed(state_dir: Path, workflow_id: str) -> dict[str, Any]:
    def closed() -> dict[str, Any] | None:
        data = _status(state_dir, workflow_id)
        return data if data["execution"] != "RUNNING" else None

    return eventually_sync(closed, interval=0.3, what=f"{workflow_id} closed")


def _approval_id(state_dir: Path, workflow_id: str) -> str:
    def approval_id() -> str | None:
        progress = _status(state_dir, workflow_id).get("progress") or {}
        return str(progress["approvalId"]) if progress.get("approvalId") else None

    return eventually_sync(approval_id, interval=0.2, what=f"an approval id for {workflow_id}")


class Following:
    """``signgate sign ... --follow`` in the background, its output collected."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "signgate.cli", *args, "--state-dir", str(state_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=hermetic_env(),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str) -> None:
        def printed() -> bool:
            if any(text in line for line in self.lines):
                return True
            if self.process.poll() is not None and not self._thread.is_alive():
                raise GiveUp(f"exited without printing {text!r}: {self.lines}")
            return False

        eventually_sync(printed, what=f"{text!r} printed")

    def finish(self, timeout: float = 60.0) -> Result:
        code = self.process.wait(timeout)
        self._thread.join(5)
        assert self.process.stderr is not None
        return Result(code, "\n".join(self.lines), self.process.stderr.read())


def test_ungated_hash_signs_at_once(state_dir: Path) -> None:
    request_id = _id("ops")
    result = cli(
        state_dir,
        "sign",
        "--key",
        "evm-ops",
        "--hash",
        HASH,
        "--request-id",
        request_id,
        "--follow",
    )
    assert result.code == 0, result
    assert f"started {request_id}" in result.out
    assert "(evm-ops), ECDSA secp256k1" in result.out
    assert "outcome       signed (Dfns status Signed)" in result.out
    assert "verified      verified: signature recovers to the key" in result.out


def test_two_approvals_followed_live(state_dir: Path) -> None:
    request_id = _id("treasury")
    follow = Following(
        state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id", request_id,
        "--follow",
    )  # fmt: skip
    follow.wait_for("0/2 approvals")
    # By workflow id (the command finds the approval), then by approval id.
    first = cli(state_dir, "approve", request_id, "--as", "alice", "--reason", "invoice ok")
    assert first.code == 0, first
    assert "alice approved ap-" in first.out
    assert "approval Pending, 1/2 approvals (alice)" in first.out
    follow.wait_for("1/2 approvals (alice)")
    approval_id = first.out.split()[2].rstrip(":")
    again = cli(state_dir, "approve", approval_id, "--as", "alice")
    assert again.code == 1
    assert "it is no longer pending, or alice has decided already" in again.err
    second = cli(state_dir, "approve", approval_id, "--as", "bob", "--json")
    assert second.code == 0, second
    decision = json.loads(second.out)
    assert decision["approvalStatus"] == "Approved"
    assert decision["approvedBy"] == ["alice", "bob"]
    assert decision["groups"] == [{"name": "Treasury approvers", "approvals": 2, "quorum": 2}]
    done = follow.finish()
    assert done.code == 0, done
    assert "outcome       signed (Dfns status Signed)" in done.out
    assert f"approval      {approval_id} Approved: alice Approved (invoice ok), bob Approved" in (
        done.out
    )
    # Each change is its own line: Pending (0/2, 1/2), then Executing or Signed.
    pending = [line for line in done.out.splitlines() if "Pending for" in line]
    assert len(pending) >= 2


def test_denied_request_is_rejected(state_dir: Path) -> None:
    request_id = _id("deny")
    started = cli(
        state_dir, "sign", "--wallet", "evm-treasury", "--hash", HASH, "--request-id", request_id,
        "--json",
    )  # fmt: skip
    assert started.code == 0, started
    assert started.json_lines() == [
        {
            "event": "started",
            "workflowId": request_id,
            "runId": started.json_lines()[0]["runId"],
            "existing": False,
            "target": started.json_lines()[0]["target"],
            "requestKind": "Hash",
            "externalId": started.json_lines()[0]["externalId"],
            "taskQueue": "signgate",
        }
    ]
    assert started.json_lines()[0]["target"]["kind"] == "wallet"
    approval_id = _approval_id(state_dir, request_id)
    outsider = cli(state_dir, "approve", approval_id, "--as", "dave")
    assert outsider.code == 1
    assert f"dave may not decide on {approval_id}" in outsider.err
    nobody = cli(state_dir, "approve", approval_id, "--as", "mallory")
    assert nobody.code == 2
    assert "--as mallory: no such user" in nobody.err
    assert "alice, bob, carol, dave, engine" in nobody.err
    denied = cli(state_dir, "approve", approval_id, "--as", "carol", "--deny", "--reason", "no")
    assert denied.code == 0, denied
    assert f"carol denied {approval_id}: approval Denied" in denied.out
    outcome = _until_closed(state_dir, request_id)["outcome"]
    assert outcome["kind"] == "rejected"
    assert outcome["reason"].endswith(": no")
    shown = cli(state_dir, "status", request_id)
    assert "outcome       rejected (Dfns status Rejected)" in shown.out
    assert "carol Denied (no)" in shown.out


def test_cancel_withdraws_the_approval(state_dir: Path) -> None:
    request_id = _id("cancel")
    assert cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
               request_id).code == 0  # fmt: skip
    _approval_id(state_dir, request_id)
    result = cli(state_dir, "cancel", request_id, "--follow")
    assert result.code == 0, result
    assert f"cancellation requested for {request_id}" in result.out
    assert "outcome       cancelled (Dfns status Rejected)" in result.out
    assert "own denial    denied by the engine" in result.out
    again = cli(state_dir, "cancel", request_id)
    assert again.code == 1
    assert "is not running (completed)" in again.err


def test_deadline_expires_a_waiting_request(state_dir: Path) -> None:
    request_id = _id("late")
    result = cli(
        state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id", request_id,
        "--deadline", "3s", "--follow", "--json",
    )  # fmt: skip
    assert result.code == 1, result  # not signed
    events = result.json_lines()
    assert events[0]["event"] == "started"
    progress = [e for e in events if e["event"] == "progress"]
    assert any(e["status"] == "Pending" and e["approvalId"] for e in progress)
    pending = next(e for e in progress if e["approval"])
    assert pending["approval"]["groups"] == [
        {"name": "Treasury approvers", "approvals": 0, "quorum": 2}
    ]
    final = events[-1]
    assert final["event"] == "outcome"
    assert final["outcome"]["kind"] == "expired"
    assert final["outcome"]["expiry"] == "deadline"
    assert final["outcome"]["denial"]["denied"] is True


def test_other_kinds_and_targets(state_dir: Path, tmp_path: Path) -> None:
    taproot = cli(
        state_dir, "sign", "--key", "taproot", "--hash", HASH, "--taproot-merkle-root", "",
        "--follow", "--json",
    )  # fmt: skip
    assert taproot.code == 0, taproot
    outcome = taproot.json_lines()[-1]["outcome"]
    assert outcome["verification"]["status"] == "verified"
    assert outcome["verification"]["method"] == "bip340/taproot-tweaked"

    message = cli(state_dir, "sign", "--key", "solana", "--message", "0x68656c6c6f", "--follow")
    assert message.code == 0, message
    assert "verified: Ed25519 signature is valid" in message.out

    typed = tmp_path / "mail.json"
    typed.write_text(
        json.dumps(
            {
                "types": {"Mail": [{"name": "contents", "type": "string"}]},
                "primaryType": "Mail",
                "domain": {"name": "cli test", "chainId": 11155111},
                "message": {"contents": "hello"},
            }
        )
    )
    eip712 = cli(state_dir, "sign", "--key", "evm-ops", "--eip712", str(typed), "--follow")
    assert eip712.code == 0, eip712
    assert "verified      verified:" in eip712.out

    unsigned = serialize_eip1559(
        BuildTransferInput(
            chain_id=11155111,
            nonce=7,
            to="0x" + "22" * 20,
            value_wei=10**15,
            max_fee_per_gas=10**9,
            max_priority_fee_per_gas=10**9,
        )
    )
    tx = tmp_path / "tx.hex"
    tx.write_text("0x" + unsigned.hex() + "\n")
    signed = cli(state_dir, "sign", "--wallet", "evm-ops", "--transaction", str(tx), "--follow")
    assert signed.code == 0, signed
    assert "signed data" in signed.out
    assert "[ecdsa-secp256k1/evm-tx]" in signed.out


def test_same_request_id_attaches(state_dir: Path) -> None:
    request_id = _id("twice")
    first = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id", request_id,
                "--follow", "--json")  # fmt: skip
    assert first.code == 0
    again = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id", request_id,
                "--follow", "--json")  # fmt: skip
    assert again.code == 0, again
    events = again.json_lines()
    assert events[0]["existing"] is True
    assert (
        events[-1]["outcome"]["signature_id"] == first.json_lines()[-1]["outcome"]["signature_id"]
    )


def test_callback_is_delivered_signed(state_dir: Path) -> None:
    secret = (state_dir / "callback-secret").read_text().strip().encode()
    request_id = _id("callback")
    with HttpRecorder() as receiver:
        result = cli(
            state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--callback",
            receiver.url("/hook"), "--request-id", request_id, "--follow",
        )  # fmt: skip
        assert result.code == 0, result
        eventually_sync(receiver.accepted, what="the callback accepted")
    delivery = receiver.accepted()[0]
    assert delivery.path == "/hook"
    verify_callback_signature(secret, delivery.headers.get(SIGNATURE_HEADER), delivery.body)
    body = json.loads(delivery.body)
    assert body["event"] == "signature.outcome"
    assert body["payload"]["kind"] == "signed"
    assert body["payload"]["workflow_id"] == request_id


def test_list_filters_by_status(state_dir: Path) -> None:
    waiting = _id("listed")
    assert cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
               waiting).code == 0  # fmt: skip
    _approval_id(state_dir, waiting)

    # Visibility is eventually consistent: the upserted status shows up shortly.
    def listed() -> Result | None:
        pending = cli(state_dir, "list", "--status", "pending", "--json")
        rows = json.loads(pending.out)["workflows"]
        return pending if any(r["workflowId"] == waiting for r in rows) else None

    pending = eventually_sync(listed, interval=0.3, what=f"{waiting} listed as pending")
    rows = json.loads(pending.out)["workflows"]
    assert json.loads(pending.out)["query"].endswith("SignGateStatus = 'Pending'")
    assert all(r["status"] == "Pending" for r in rows)
    table = cli(state_dir, "list")
    assert table.code == 0
    header = table.out.splitlines()[0].split()
    assert header == ["WORKFLOW", "ID", "STATUS", "OUTCOME", "TARGET", "STARTED", "EXECUTION"]
    assert any(line.startswith(waiting) and " Pending " in line for line in table.out.splitlines())
    signed = cli(state_dir, "list", "--outcome", "signed", "--json")
    assert all(r["outcome"] == "signed" for r in json.loads(signed.out)["workflows"])
    bad = cli(state_dir, "list", "--status", "Waiting")
    assert bad.code == 2
    assert "'Waiting' is not a status; use one of Submitting, Pending" in bad.err
    assert cli(state_dir, "cancel", waiting).code == 0


def test_unknown_ids(state_dir: Path) -> None:
    status = cli(state_dir, "status", "no-such-workflow")
    assert status.code == 1
    assert "no workflow 'no-such-workflow'" in status.err
    cancel = cli(state_dir, "cancel", "no-such-workflow")
    assert cancel.code == 1
    approve = cli(state_dir, "approve", "ap-00000-00000-0000000000000000", "--as", "alice")
    assert approve.code == 1
    assert "is neither an approval at http://127.0.0.1:" in approve.err
    assert "Traceback" not in status.err + cancel.err + approve.err


async def test_payout_status_and_approval_by_payout_id(state_dir: Path, temporal: Client) -> None:
    wallet_id = Credentials.load(state_dir / "sandbox-credentials.json").wallet_id("evm-treasury")
    payout_id = _id("payout")
    await temporal.start_workflow(
        PAYOUT_WORKFLOW,
        PayoutInput(
            source=SigningTarget(kind="wallet", id=wallet_id),
            transfer=BuildTransferInput(
                chain_id=11155111,
                nonce=3,
                to="0x" + "33" * 20,
                value_wei=10**18,
                max_fee_per_gas=10**9,
                max_priority_fee_per_gas=10**9,
            ),
        ),
        id=payout_id,
        task_queue="signgate",
    )
    approval_id = _approval_id(state_dir, payout_id)
    running = _status(state_dir, payout_id)
    assert running["type"] == "PayoutWorkflow"
    assert running["signatureWorkflowId"] == f"{payout_id}/signature"
    assert running["progress"]["status"] == "Pending"
    for name in ("alice", "carol"):
        # The payout's id leads to its signature workflow's approval.
        decided = cli(state_dir, "approve", payout_id, "--as", name)
        assert decided.code == 0, decided
        assert approval_id in decided.out
    done = _until_closed(state_dir, payout_id)
    assert done["execution"] == "COMPLETED"
    assert done["payout"]["kind"] == "signed"
    assert done["outcome"]["verification"]["status"] == "verified"
    shown = cli(state_dir, "status", payout_id)
    assert "payout    signed: 1000000000000000000 wei to 0x3333" in shown.out
