"""The engine's worker as a real process (``python worker.py``), to kill and restart it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.ports import free_port

if TYPE_CHECKING:
    from tests.support.sandbox import EngineSandbox
    from tests.support.temporal import DevServer

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """Runs ``worker.py`` with ``env`` added to the environment; collects its JSON log lines."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = {**os.environ, **env, "SIGNGATE_LOG_FORMAT": "json"}
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._started = threading.Event()

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        """Start the worker and wait for its ``worker.started`` log line."""
        self._started.clear()
        self.process = subprocess.Popen(  # noqa: S603 - our own worker.py with this Python
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self._started.wait(timeout):
            self.kill()
            raise RuntimeError("worker did not start:\n" + "\n".join(self.lines[-20:]))
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines.append(line.rstrip("\n"))
            if '"worker.started"' in line:
                self._started.set()

    def events(self) -> list[dict[str, object]]:
        """The JSON log lines written so far."""
        found = []
        for line in self.lines:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as when a machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the graceful path. Returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode


def engine_env(
    dev_server: DevServer,
    sandbox: EngineSandbox,
    task_queue: str,
    directory: Path,
    metrics_port: int | None = None,
    org_rate_limit: int = 0,
) -> dict[str, str]:
    """The environment of a worker process that runs the engine against ``sandbox``.

    The engine's credential key goes to a 0600 file in ``directory``, as an operator keeps it.
    The engine's Dfns budget is off unless ``org_rate_limit`` (calls a minute) is given, as
    the test sandbox's own limit is.
    """
    engine = sandbox.identity("engine")
    pem = directory / "engine.pem"
    pem.write_text(engine.private_key_pem)
    pem.chmod(0o600)
    return {
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_NAMESPACE": dev_server.namespace,
        "SIGNGATE_DFNS_BASE_URL": sandbox.base_url,
        "SIGNGATE_DFNS_AUTH_TOKEN": engine.auth_token,
        "SIGNGATE_DFNS_CREDENTIAL_ID": engine.cred_id,
        "SIGNGATE_DFNS_PRIVATE_KEY_FILE": str(pem),
        "SIGNGATE_TASK_QUEUE": task_queue,
        "SIGNGATE_LEDGER_PATH": str(directory / "ledger.sqlite"),
        "SIGNGATE_SHUTDOWN_GRACE_SECONDS": "1",
        "SIGNGATE_METRICS_PORT": str(metrics_port or free_port()),
        "SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": str(org_rate_limit),
    }
