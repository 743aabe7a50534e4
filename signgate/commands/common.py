"""What the operator commands share: the dev stack's record, credentials, connections, output.

Where the commands look, in order:

* Temporal: ``TEMPORAL_ADDRESS`` (or a ``temporalio.envconfig`` profile) when set; else the
  running ``signgate dev`` stack recorded in ``<state dir>/dev.json``; else ``localhost:7233``.
* Dfns as the engine's service account (key look-ups in ``sign``, approvals in ``status``):
  the ``SIGNGATE_DFNS_*`` settings when ``SIGNGATE_DFNS_AUTH_TOKEN`` is set; else the
  sandbox's credentials file (``--credentials``; default: the running stack's, else
  ``<state dir>/sandbox-credentials.json``).
* An approver (``approve --as NAME``): that identity in the sandbox credentials file;
  without ``--as``, the ``SIGNGATE_DFNS_*`` settings (against real Dfns: the approver's own
  token and credential).

Errors meant for the operator are :class:`CommandError`: a message and an exit code (2 for
bad input or configuration, 1 for an operation that failed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydantic import SecretStr

from signgate.dfns.auth import CredentialSigner, DfnsAuth
from signgate.dfns.client import DfnsClient, SigningTarget
from signgate.dfns.errors import DfnsError
from signgate.dfns.models import Approval
from signgate.settings import Settings, SettingsError
from signgate.tracing import TracingError, configure_tracing

__all__ = [
    "DEFAULT_STATE_DIR",
    "STACK_FILE",
    "ApprovalTally",
    "CommandError",
    "DfnsAccess",
    "Identity",
    "SandboxCredentials",
    "StackInfo",
    "add_common_options",
    "approval_tally",
    "connect_temporal",
    "describe_dfns_error",
    "format_duration",
    "format_time",
    "load_settings",
    "pid_alive",
    "print_table",
    "read_stack",
    "require_sandbox_extra",
    "uses_temporal",
]

DEFAULT_STATE_DIR = Path(".signgate")
STACK_FILE = "dev.json"
SANDBOX_CREDENTIALS = "sandbox-credentials.json"


class CommandError(Exception):
    """Ends a command: ``message`` goes to stderr, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def require_sandbox_extra(command: str) -> None:
    """Refuse ``command`` with an install hint when the sandbox's dependencies are missing."""
    if importlib.util.find_spec("jsonschema") is None:
        raise CommandError(
            f"{command} runs the Dfns sandbox, which needs signgate's `sandbox` extra (jsonschema, "
            "for Dfns's request schemas): pip install 'signgate[sandbox]', or 'signgate[local]' "
            "for signgate dev and the demo"
        )


def uses_temporal(args: argparse.Namespace) -> None:
    """Mark the command as one that started the Temporal client's runtime.

    The runtime's threads can crash the interpreter's finalisation (sdk-python issue 300),
    so :func:`signgate.cli.main`, run as a program, ends such commands with ``os._exit``.
    """
    args.hard_exit = True


def add_common_options(parser: argparse.ArgumentParser, *, credentials: bool = True) -> None:
    """``--state-dir`` (where ``signgate dev`` keeps its state) and ``--credentials``."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="state directory of `signgate dev` (default .signgate): its dev.json says where "
        "Temporal and the sandbox are",
    )
    if credentials:
        parser.add_argument(
            "--credentials",
            type=Path,
            default=None,
            help="sandbox credentials file (default: the running stack's, else "
            f"<state dir>/{SANDBOX_CREDENTIALS}); unused when SIGNGATE_DFNS_AUTH_TOKEN is set",
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """:class:`Settings` from the environment, or a :class:`CommandError` saying what is wrong."""
    try:
        settings = Settings.from_env(environ)
        configure_tracing(settings.tracing_enabled, service_name="signgate")
    except (SettingsError, TracingError) as exc:
        raise CommandError(str(exc)) from None
    return settings


# --- the dev stack's record -------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state is the field after the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass(frozen=True)
class StackInfo:
    """What a running ``signgate dev`` wrote to ``<state dir>/dev.json`` (no secrets)."""

    supervisor_pid: int
    state_dir: str
    started_at: str
    temporal_address: str
    namespace: str
    task_queue: str
    temporal_ui_url: str
    sandbox_url: str
    console_url: str
    credentials_path: str
    webhook_url: str
    metrics_url: str
    log_dir: str
    processes: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to ``dev.json``."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StackInfo:
        """Read the JSON form; raises ``TypeError``/``KeyError`` on a malformed record."""
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in raw.items() if k in known}
        values["processes"] = {str(k): int(v) for k, v in dict(raw["processes"]).items()}
        return cls(**values)

    def write(self, path: Path) -> None:
        """Write atomically (readers never see half a file)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)


def task_queue_for(settings: Settings, stack: StackInfo | None) -> str:
    """The task queue to start workflows on: ``SIGNGATE_TASK_QUEUE`` when set, else the one
    the running stack's worker polls, else the default."""
    if stack is not None and "task_queue" not in settings.model_fields_set:
        return stack.task_queue
    return settings.task_queue


def read_stack(state_dir: Path) -> StackInfo | None:
    """The running stack recorded in ``state_dir``, or ``None`` (no record, or it has stopped)."""
    try:
        raw = json.loads((state_dir / STACK_FILE).read_text(encoding="utf-8"))
        info = StackInfo.from_json(raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return info if pid_alive(info.supervisor_pid) else None


# --- sandbox credentials ----------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """A Dfns identity: bearer token and the Key credential that signs its user actions."""

    name: str
    user_id: str | None
    auth_token: SecretStr = field(repr=False)
    cred_id: str | None = None
    private_key_pem: SecretStr | None = field(default=None, repr=False)


class SandboxCredentials:
    """The credentials file the sandbox writes: identities, keys, wallets, public keys."""

    def __init__(self, path: Path, raw: Mapping[str, Any]) -> None:
        self.path = path
        self._raw = raw
        self.base_url = str(raw.get("baseUrl") or "")
        self.initiator = str(raw.get("initiator") or "")

    @classmethod
    def load(cls, path: Path) -> SandboxCredentials:
        """Read ``path``; a :class:`CommandError` says why it cannot be used."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(
                f"no sandbox credentials at {path}: start the dev stack with `signgate dev` "
                "(or pass --credentials FILE, or set SIGNGATE_DFNS_AUTH_TOKEN for real Dfns)"
            ) from None
        except (OSError, ValueError) as exc:
            raise CommandError(f"{path}: not a readable sandbox credentials file ({exc})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("identities"), dict):
            raise CommandError(f"{path}: not a sandbox credentials file (no identities)")
        return cls(path, raw)

    def names(self) -> list[str]:
        """Names of the org's users and service accounts."""
        return sorted(self._raw["identities"])

    def approvers(self) -> list[str]:
        """Names of the org's users (not service accounts)."""
        return [
            name
            for name, ident in sorted(self._raw["identities"].items())
            if not ident.get("isServiceAccount")
        ]

    def identity(self, name: str) -> Identity:
        """The identity called ``name`` in the org file."""
        raw = self._raw["identities"].get(name)
        if not isinstance(raw, dict):
            raise CommandError(
                f"--as {name}: no such user in {self.path}; the org has " + ", ".join(self.names())
            )
        return Identity(
            name=name,
            user_id=raw.get("userId"),
            auth_token=SecretStr(str(raw["authToken"])),
            cred_id=raw.get("credId"),
            private_key_pem=SecretStr(str(raw["privateKeyPem"]))
            if raw.get("privateKeyPem")
            else None,
        )

    def user_names(self) -> dict[str, str]:
        """userId -> name, to show decisions by name."""
        return {str(ident.get("userId")): name for name, ident in self._raw["identities"].items()}

    def resolve_target(self, kind: str, value: str) -> tuple[SigningTarget, str | None]:
        """``value`` as a target id; a key/wallet/public-key *name* of the org is mapped to it.

        Returns the target and the name it was found under (``None`` for a plain id).
        """
        keys: dict[str, Any] = self._raw.get("keys") or {}
        if kind == "key" and value in keys:
            return SigningTarget(kind="key", id=keys[value]["keyId"]), value
        if kind == "wallet":
            if value in keys and keys[value].get("wallets"):
                return SigningTarget(kind="wallet", id=keys[value]["wallets"][0]["id"]), value
            for key in keys.values():
                for wallet in key.get("wallets") or []:
                    if wallet.get("name") == value:
                        return SigningTarget(kind="wallet", id=wallet["id"]), value
        if kind == "public-key":
            public_keys: dict[str, Any] = self._raw.get("publicKeys") or {}
            if value in public_keys:
                return SigningTarget(kind="public-key", id=public_keys[value]["publicKeyId"]), value
        return SigningTarget(kind=kind, id=value), None  # type: ignore[arg-type]

    def key_names(self) -> list[str]:
        """Names of the org's keys."""
        return sorted(self._raw.get("keys") or {})


# --- Dfns access ------------------------------------------------------------------------------


@dataclass
class DfnsAccess:
    """Where Dfns is and who the command acts as; :meth:`client` opens a connection."""

    base_url: str
    identity: Identity
    settings: Settings
    credentials: SandboxCredentials | None = None

    @classmethod
    def initiator(
        cls, settings: Settings, state_dir: Path, credentials_path: Path | None
    ) -> DfnsAccess:
        """The engine's service account: from settings, else from the sandbox credentials."""
        if settings.dfns_auth_token is not None:
            pem = settings.credential_private_key_pem()
            ident = Identity(
                name="the SIGNGATE_DFNS_* identity",
                user_id=None,
                auth_token=settings.dfns_auth_token,
                cred_id=settings.dfns_credential_id,
                private_key_pem=SecretStr(pem) if pem is not None else None,
            )
            return cls(settings.dfns_base_url, ident, settings)
        creds = SandboxCredentials.load(_credentials_path(state_dir, credentials_path))
        return cls(_sandbox_url(creds), creds.identity(creds.initiator), settings, creds)

    @classmethod
    def approver(
        cls,
        settings: Settings,
        state_dir: Path,
        credentials_path: Path | None,
        name: str | None,
    ) -> DfnsAccess:
        """User ``name`` of the sandbox org, or (no name) the identity in the settings."""
        if name is None:
            if settings.dfns_auth_token is None:
                raise CommandError(
                    "say who decides: --as NAME (a user of the sandbox org), or set "
                    "SIGNGATE_DFNS_AUTH_TOKEN, SIGNGATE_DFNS_CREDENTIAL_ID and "
                    "SIGNGATE_DFNS_PRIVATE_KEY_FILE to the approver's own credentials"
                )
            return cls.initiator(settings, state_dir, credentials_path)
        creds = SandboxCredentials.load(_credentials_path(state_dir, credentials_path))
        return cls(_sandbox_url(creds), creds.identity(name), settings, creds)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[DfnsClient]:
        """A Dfns client acting as :attr:`identity` (signs user actions when it can)."""
        signer = None
        pem = self.identity.private_key_pem
        if pem is not None and self.identity.cred_id:
            try:
                signer = CredentialSigner(
                    self.identity.cred_id, pem.get_secret_value(), self.settings.dfns_app_origin
                )
            except ValueError as exc:
                raise CommandError(f"the credential of {self.identity.name}: {exc}") from None
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.settings.dfns_timeout_seconds, trust_env=False
        ) as http:
            yield DfnsClient(
                http,
                auth_token=self.identity.auth_token,
                signer=signer,
                app_id=self.settings.dfns_app_id,
                send_nonce=self.settings.dfns_send_nonce,
            )

    async def get_json(self, path: str) -> dict[str, Any]:
        """A read the client has no method for (``GET /v2/policies/{id}``), as JSON."""
        auth = DfnsAuth(
            self.identity.auth_token,
            base_url=self.base_url,
            app_id=self.settings.dfns_app_id,
            send_nonce=self.settings.dfns_send_nonce,
        )
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.settings.dfns_timeout_seconds, trust_env=False
        ) as http:
            response = await http.get(path, auth=auth)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def user_name(self, user_id: str) -> str:
        """A user's name in the sandbox org, else the id."""
        if self.credentials is None:
            return user_id
        return self.credentials.user_names().get(user_id, user_id)


def _credentials_path(state_dir: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    stack = read_stack(state_dir)
    if stack is not None:
        return Path(stack.credentials_path)
    return state_dir / SANDBOX_CREDENTIALS


def _sandbox_url(creds: SandboxCredentials) -> str:
    if not creds.base_url:
        raise CommandError(f"{creds.path} names no baseUrl: is the sandbox running?")
    return creds.base_url


# --- approvals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalTally:
    """Decisions on an approval against its groups' quorums."""

    approval_id: str
    status: str
    approved: list[str]
    denied: list[str]
    groups: list[tuple[str, int, int]]  # (name, approvals counted, quorum)
    expires: datetime | None

    def summary(self) -> str:
        """``1/2 approvals`` (one group) or ``Treasury 1/2, Risk 0/1``; denials named."""
        if len(self.groups) == 1:
            _, have, need = self.groups[0]
            text = f"{have}/{need} approvals"
        elif self.groups:
            text = ", ".join(f"{name} {have}/{need}" for name, have, need in self.groups)
        else:
            text = f"{len(self.approved)} approvals"
        if self.approved:
            text += f" ({', '.join(self.approved)})"
        if self.denied:
            text += f", denied by {', '.join(self.denied)}"
        return text


async def approval_tally(
    access: DfnsAccess, approval: Approval, policies: dict[str, dict[str, Any]] | None = None
) -> ApprovalTally:
    """Count ``approval``'s decisions per approval group of its triggered policies.

    ``policies`` caches ``GET /v2/policies/{id}`` answers between calls. A policy that cannot
    be read leaves its groups out (the tally then shows plain counts).
    """
    cache = policies if policies is not None else {}
    approved_ids = [d.user_id for d in approval.decisions if d.value == "Approved"]
    denied_ids = [d.user_id for d in approval.decisions if d.value == "Denied"]
    groups: list[tuple[str, int, int]] = []
    for evaluation in approval.policy_evaluations:
        if not evaluation.triggered:
            continue
        policy = cache.get(evaluation.policy_id)
        if policy is None:
            try:
                policy = await access.get_json(f"/v2/policies/{evaluation.policy_id}")
            except (httpx.HTTPError, ValueError):
                continue
            cache[evaluation.policy_id] = policy
        action = policy.get("action") or {}
        if action.get("kind") != "RequestApproval":
            continue
        for index, group in enumerate(action.get("approvalGroups") or []):
            listed = ((group.get("approvers") or {}).get("userId") or {}).get("in")
            eligible = approved_ids if listed is None else [u for u in approved_ids if u in listed]
            name = str(group.get("name") or f"group {index + 1}")
            groups.append((name, len(eligible), int(group.get("quorum") or 1)))
    return ApprovalTally(
        approval_id=approval.id,
        status=approval.status,
        approved=[access.user_name(u) for u in approved_ids],
        denied=[access.user_name(u) for u in denied_ids],
        groups=groups,
        expires=approval.expiration_date,
    )


def describe_dfns_error(exc: DfnsError) -> str:
    """A one-line description of a Dfns failure (never carries a token)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --- Temporal ---------------------------------------------------------------------------------


async def connect_temporal(state_dir: Path) -> Any:
    """A Temporal client with the pydantic converter (see the module docstring for where)."""
    # Imported here: commands that never talk to Temporal should not pay for the SDK.
    from signgate import temporal_client

    config = temporal_client.temporal_connect_config(default_address="")
    if not config["target_host"]:
        stack = read_stack(state_dir)
        if stack is None:
            config["target_host"] = temporal_client.DEFAULT_TEMPORAL_ADDRESS
        else:
            config["target_host"] = stack.temporal_address
            config.setdefault("namespace", stack.namespace)
    try:
        return await temporal_client.connect_temporal(config=config)
    except RuntimeError as exc:
        raise CommandError(
            f"cannot reach Temporal at {config['target_host']}: {str(exc).splitlines()[0]}; "
            "start the stack with `signgate dev` or set TEMPORAL_ADDRESS",
            code=1,
        ) from None


# --- output -----------------------------------------------------------------------------------


def format_duration(value: timedelta | float) -> str:
    """``42s``, ``3m05s``, ``2h01m``, ``3d04h``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_time(value: datetime | None) -> str:
    """Local time, to the second; ``-`` for none."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO | None = None
) -> None:
    """A plain-text table with left-aligned columns sized to their content."""
    stream = out if out is not None else sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [list(headers), *rows]:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=stream)
