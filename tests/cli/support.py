"""Running the real ``signgate`` commands as subprocesses, and the dev stack they talk to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signgate.commands.common import StackInfo, pid_alive
from tests.support.eventually import DEFAULT_WITHIN, eventually_sync

HASH = "0x" + "ab" * 32
"""Any 32-byte hash: the tests never care what is signed, only that it is."""


def hermetic_env(**extra: str) -> dict[str, str]:
    """The test process's environment without signgate or Temporal settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "TEMPORAL_"))}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Result:
    """A finished command."""

    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line, as JSON."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli(state_dir: Path, *args: str, timeout: float = 60.0, cwd: Path | None = None) -> Result:
    """``signgate ARGS --state-dir STATE_DIR`` (the dev stack's commands), to completion."""
    command = [sys.executable, "-m", "signgate.cli", *args, "--state-dir", str(state_dir)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=hermetic_env(),
        cwd=cwd or state_dir.parent,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment contains ``text`` (``/proc``)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in blob and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


STARTED: list[DevProcess] = []
"""Every ``DevProcess`` started in this test session."""


class DevProcess:
    """``signgate dev`` as a subprocess; its stdout is collected line by line.

    Every instance is remembered in :data:`STARTED` so a test that fails half-way still has
    its stack stopped (see ``stop_started_stacks`` in ``conftest.py``).
    """

    def __init__(self, state_dir: Path, *flags: str) -> None:
        self.state_dir = state_dir
        self.flags = list(flags) or [
            f"--{name}-port=0" for name in ("temporal", "ui", "sandbox", "webhook", "metrics")
        ]
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 90.0) -> DevProcess:
        """Start and wait for the end of its ready banner; fail with its output otherwise."""
        STARTED.append(self)
        self._ready.clear()
        self.lines = []
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "signgate.cli",
                "dev",
                "--state-dir",
                str(self.state_dir),
                *self.flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=hermetic_env(),
            cwd=self.state_dir.parent,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.process.kill()
            raise RuntimeError("signgate dev did not get ready:\n" + self.output())
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            # The banner's last line: the URLs above it are printed by then.
            if line.startswith("Press Ctrl-C to stop."):
                self._ready.set()

    def output(self) -> str:
        """Everything it printed so far."""
        return "\n".join(self.lines)

    def info(self) -> StackInfo:
        """Its ``dev.json``."""
        raw = json.loads((self.state_dir / "dev.json").read_text())
        return StackInfo.from_json(raw)

    def signal(self, sig: signal.Signals, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for it to exit by itself."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM if still running (a test's clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def assert_gone(pids: Sequence[int], within: float = DEFAULT_WITHIN) -> None:
    """Wait until every pid has exited; fail naming the ones still alive."""

    def alive() -> list[int]:
        return [pid for pid in pids if pid_alive(pid)]

    eventually_sync(lambda: not alive(), within=within, what=f"{list(pids)} exited")
