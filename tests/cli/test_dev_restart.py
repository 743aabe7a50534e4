"""``signgate dev`` survives the faults it is restarting from, and restarts a dead worker.

Each test runs its own stack (its own state directory and ports): these kill processes and
break the sandbox on purpose, which the shared stack of the other CLI tests must not see.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx

from signgate.commands.common import SandboxCredentials, pid_alive
from signgate.dfns.client import DfnsClient
from signgate.webhook.secrets import read_secret_file
from tests.cli.support import HASH, DevProcess, cli, hermetic_env
from tests.support.eventually import eventually_sync
from tests.support.ports import free_port

ALL_504 = {"errorRate": 1.0, "errorStatus": 504}
"""Every Dfns call the sandbox answers is a 504 (``/_local/`` itself is never faulted)."""


def _fixed_ports() -> list[str]:
    """Port flags that stay the same across restarts, as a user's defaults do."""
    names = ("temporal", "ui", "sandbox", "webhook", "metrics")
    return [f"--{name}-port={free_port()}" for name in names]


def _faults(sandbox_url: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{sandbox_url}/_local/faults", json=body, timeout=30)
    response.raise_for_status()


def _status(state_dir: Path, workflow_id: str) -> dict[str, Any]:
    result = cli(state_dir, "status", workflow_id, "--json")
    assert result.code == 0, result
    status: dict[str, Any] = json.loads(result.out)
    return status


def test_starting_again_waits_out_504s_on_the_webhook_check(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    flags = _fixed_ports()
    first = DevProcess(state_dir, *flags).start()
    sandbox_url = first.info().sandbox_url
    stored = read_secret_file(state_dir / "webhook.json")
    assert stored is not None
    webhook_id = stored.current.webhook_id
    # The faults are stored in the sandbox's database: the next start meets them.
    _faults(sandbox_url, ALL_504)
    first.stop()

    again = DevProcess(state_dir, *flags)
    started: list[BaseException | DevProcess] = []
    starting = threading.Thread(target=lambda: started.append(_start(again)), daemon=True)
    starting.start()
    eventually_sync(
        lambda: any(
            f"waiting for the webhook check at the sandbox (GET /webhooks/{webhook_id})" in line
            and "HTTP 504" in line
            for line in again.lines
        ),
        what="dev saying it waits for the webhook check",
    )
    _faults(sandbox_url, {"errorRate": 0.0})
    starting.join(timeout=180)
    assert started and isinstance(started[0], DevProcess), (started, again.output())
    assert f"  webhook   reusing {webhook_id} for " in again.output()
    assert "signgate dev is ready." in again.output()
    signed = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--follow", "--json")
    assert signed.code == 0, signed
    again.stop()


def _start(process: DevProcess) -> BaseException | DevProcess:
    try:
        return process.start(timeout=180)
    except BaseException as exc:  # reported by the test thread
        return exc


async def _webhook_urls(state_dir: Path) -> list[str]:
    creds = SandboxCredentials.load(state_dir / "sandbox-credentials.json")
    engine = creds.identity(creds.initiator)
    async with httpx.AsyncClient(base_url=creds.base_url, timeout=30) as http:
        page = await DfnsClient(http, auth_token=engine.auth_token).list_webhooks(limit=100)
    return sorted(hook.url for hook in page.items)


async def test_a_registration_whose_answer_was_lost_leaves_one_webhook(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    flags = _fixed_ports()
    first = DevProcess(state_dir, *flags).start()
    # The next write commits at the sandbox, then its connection drops: the answer, with the
    # only copy of the new webhook's secret, is lost and the creation is retried.
    _faults(first.info().sandbox_url, {"dropAfterCommit": 1})
    first.stop()
    moved = [flag for flag in flags if not flag.startswith("--webhook-port=")]
    moved.append(f"--webhook-port={free_port()}")  # a new URL: dev registers again

    again = DevProcess(state_dir, *moved).start()
    url = again.info().webhook_url
    output = again.output()
    assert "waiting for the webhook registration at " in output
    assert f"for {url} (deleted 1 left over for it)" in output
    assert await _webhook_urls(state_dir) == [url]
    signed = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--follow", "--json")
    assert signed.code == 0, signed
    again.stop()


def test_the_start_up_budget_ends_with_a_message_naming_the_call(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    flags = _fixed_ports()
    first = DevProcess(state_dir, *flags).start()
    _faults(first.info().sandbox_url, ALL_504)
    first.stop()

    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "signgate.cli", "dev", "--state-dir", str(state_dir), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=hermetic_env(SIGNGATE_STARTUP_TIMEOUT_SECONDS="3"),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1, done
    assert "waiting for the webhook check at the sandbox" in done.stdout
    assert "did not succeed in 3s" in done.stderr
    assert "SIGNGATE_STARTUP_TIMEOUT_SECONDS" in done.stderr
    assert "HTTP 504" in done.stderr
    assert not (state_dir / "dev.json").exists()


def test_a_killed_worker_is_restarted_and_in_flight_requests_complete(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    stack = DevProcess(state_dir).start()
    request_id = f"restart-{uuid.uuid4().hex[:8]}"
    started = cli(state_dir, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
                  request_id)  # fmt: skip
    assert started.code == 0, started
    eventually_sync(
        lambda: (_status(state_dir, request_id).get("progress") or {}).get("approvalId"),
        what="the request waiting for approval",
    )
    killed = stack.info().processes["worker"]
    os.kill(killed, signal.SIGKILL)

    def restarted() -> int | None:
        pid = stack.info().processes["worker"]
        return pid if pid != killed and pid_alive(pid) else None

    new_pid = eventually_sync(restarted, what="a new worker in dev.json", within=180)

    # dev.json is written after the ready line is printed, but this test's reader thread may
    # not have taken that line from the pipe yet: wait for it rather than read once.
    def ready_line_read() -> str | None:
        output = stack.output()
        return output if "  restarting worker    ready in" in output else None

    output = eventually_sync(ready_line_read, what="the restart's ready line")
    assert "signgate dev: worker exited unexpectedly (code -9); restarting it in 1s" in output
    assert stack.process is not None and stack.process.poll() is None

    # Queries reach the workflow again once the new worker has taken over its task queue.
    eventually_sync(
        lambda: (_status(state_dir, request_id).get("progress") or {}).get("approvalId"),
        what="the request answering queries after the restart",
        within=180,
    )
    for approver in ("alice", "bob"):
        approved = cli(state_dir, "approve", request_id, "--as", approver)
        assert approved.code == 0, approved
    outcome = eventually_sync(
        lambda: _status(state_dir, request_id).get("outcome"),
        what="the outcome after the restart",
        within=180,
    )
    assert outcome["kind"] == "signed", outcome
    assert stack.info().processes["worker"] == new_pid
    stack.stop()
