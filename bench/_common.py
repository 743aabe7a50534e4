"""Plumbing the benchmark scripts share: ports, child processes, CPU readings, the org."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from signgate import ports
from signgate.dfns.auth import CredentialSigner
from signgate.dfns.client import DfnsClient
from signgate.ids import SEARCH_ATTRIBUTES


def stop_on_sigterm() -> None:
    """Let SIGTERM stop a benchmark as Ctrl-C does, so the servers and workers it started
    are stopped by the same ``finally`` blocks instead of being left running."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (outside the ephemeral
    range: :func:`signgate.ports.free_port`)."""
    return ports.free_port("127.0.0.1")


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(
    check: Callable[[], bool],
    what: str,
    timeout: float = 60,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``check`` until it holds; raise naming ``what`` after ``timeout`` seconds.

    With ``proc``, a process that exits first fails at once; with ``log``, the error ends
    with the last lines that process wrote.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The process first: if it died, whatever answers on its port is not it.
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            raise RuntimeError(f"{what} exited with {code} before it was ready{_tail(log)}")
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}{_tail(log)}")


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f" (its log {log} cannot be read: {exc})"
    if not text:
        return f" ({log} is empty)"
    return f"; the end of {log}:\n" + "\n".join(text)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), from /proc; 0 once gone."""
    try:
        stat = Path(f"/proc/{pid or 'self'}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def dev_server_args(temporal: Path, port: int) -> list[str]:
    """A headless ``temporal server start-dev`` on ``port`` with signgate's search attributes."""
    args = [
        str(temporal), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
        "--port", str(port), "--http-port", str(free_port()), "--log-level", "error",
    ]  # fmt: skip
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without SIGNGATE_* and TEMPORAL_* (a bench sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "TEMPORAL_"))}
    env.update(extra)
    return env


@contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` with output to ``log``; terminate (then kill) it on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own venv binaries, fixed arguments
            args, stdout=out, stderr=subprocess.STDOUT, env=env or clean_env()
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Org:
    """The sandbox org as its credentials file describes it."""

    base_url: str
    credentials: dict[str, Any]

    def client(self, name: str, http: httpx.AsyncClient) -> DfnsClient:
        ident = self.credentials["identities"][name]
        signer = CredentialSigner(ident["credId"], ident["privateKeyPem"], "http://localhost")
        return DfnsClient(http, auth_token=ident["authToken"], signer=signer)

    def key_id(self, name: str) -> str:
        return str(self.credentials["keys"][name]["keyId"])
