"""The sandbox's organisation file and run-time behaviour settings.

The org file (TOML) describes what the sandbox creates on its first start: the org, an
initiator service account, approver users with their Key credentials and permissions,
keys with their wallets, legacy public keys and optional policies. A default
(``default-org.toml``) ships in this package. Its ``[behaviour]`` table holds the choices
the public Dfns material leaves open (see ``README.md`` next to this file); CLI flags
override them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

CredentialAlgorithm = Literal["Ed25519", "ECDSA-P256", "ECDSA-secp256k1", "RSA"]
CREDENTIAL_ALGORITHMS: tuple[CredentialAlgorithm, ...] = (
    "Ed25519",
    "ECDSA-P256",
    "ECDSA-secp256k1",
    "RSA",
)
BlockResponse = Literal["rejected", "error"]
KEY_SCHEMES = {("ECDSA", "secp256k1"), ("EdDSA", "ed25519"), ("Schnorr", "secp256k1")}


class ConfigError(ValueError):
    """The org file cannot be used; the message names the file, the field and the problem."""


@dataclass(frozen=True)
class IdentityConfig:
    """A user or service account to create, with one Key credential."""

    name: str
    is_service_account: bool
    credential: CredentialAlgorithm
    permissions: tuple[str, ...]
    username: str


@dataclass(frozen=True)
class WalletConfig:
    network: str
    name: str | None
    tags: tuple[str, ...]
    external_id: str | None = None


@dataclass(frozen=True)
class KeyConfig:
    name: str
    scheme: str
    curve: str
    wallets: tuple[WalletConfig, ...]


@dataclass(frozen=True)
class PublicKeyConfig:
    """A legacy (G1) public key backed by the material of one of the keys."""

    name: str
    key: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Behaviour:
    """Choices Dfns's public material leaves open, and the sandbox's timings.

    Durations are in sandbox seconds (they follow ``/_local/clock`` scaling).
    """

    block_response: BlockResponse = "rejected"
    pending_response_status: int = 200
    executing_delay_seconds: float = 1.0
    confirm_delay_seconds: float = 10.0
    user_action_ttl_seconds: float = 900.0
    token_days_valid: int = 730
    list_default_limit: int = 50
    list_max_limit: int = 200
    retry_after_seconds: int = 1
    rate_limit_per_minute: int | None = None
    """Dfns calls the org may make per minute; ``None`` follows ``[org] trial`` (1,000, or
    100 for a trial org), 0 turns the limit off."""


@dataclass(frozen=True)
class OrgConfig:
    """Everything in the org file."""

    org_name: str
    initiator: str
    identities: tuple[IdentityConfig, ...]
    keys: tuple[KeyConfig, ...]
    public_keys: tuple[PublicKeyConfig, ...]
    policies: tuple[dict[str, Any], ...]
    behaviour: Behaviour = field(default_factory=Behaviour)
    source: str = "<default>"
    trial: bool = False
    """A trial organisation: Dfns allows it 100 requests a minute instead of 1,000."""

    def identity(self, name: str) -> IdentityConfig:
        for ident in self.identities:
            if ident.name == name:
                return ident
        raise KeyError(name)


DEFAULT_ORG_FILE = "default-org.toml"


def default_org_text() -> str:
    """The text of the org file shipped with the package."""
    return resources.files("signgate.sandbox").joinpath(DEFAULT_ORG_FILE).read_text("utf-8")


def load_org_config(path: str | Path | None = None) -> OrgConfig:
    """Read and check an org file; ``None`` reads the shipped default."""
    if path is None:
        text, source = default_org_text(), f"<package>/{DEFAULT_ORG_FILE}"
    else:
        try:
            text, source = Path(path).read_text("utf-8"), str(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the org file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return _parse(data, source)


def _parse(data: dict[str, Any], source: str) -> OrgConfig:
    p = _Parser(source)
    known = {"org", "behaviour", "service_accounts", "users", "keys", "public_keys", "policies"}
    p.no_unknown(data, known, "")
    org = p.table(data, "org", required=True)
    org_name = p.string(org, "name", "org")
    initiator = p.string(org, "initiator", "org")
    p.no_unknown(org, {"name", "initiator", "trial"}, "org")
    trial = org.get("trial", False)
    if not isinstance(trial, bool):
        p.fail("org.trial", "must be true or false")

    identities: list[IdentityConfig] = []
    for section, is_sa in (("service_accounts", True), ("users", False)):
        for i, item in enumerate(p.array(data, section)):
            where = f"{section}[{i}]"
            p.no_unknown(item, {"name", "credential", "permissions", "username"}, where)
            name = p.string(item, "name", where)
            credential = p.string(item, "credential", where)
            if credential not in CREDENTIAL_ALGORITHMS:
                p.fail(
                    f"{where}.credential", f"{credential!r} is not one of {CREDENTIAL_ALGORITHMS}"
                )
            perms = p.strings(item, "permissions", where)
            username = item.get("username", f"{name}@sandbox.local")
            if not isinstance(username, str) or not username:
                p.fail(f"{where}.username", "must be a non-empty string")
            identities.append(
                IdentityConfig(
                    name=name,
                    is_service_account=is_sa,
                    credential=credential,  # type: ignore[arg-type]
                    permissions=tuple(perms),
                    username=username,
                )
            )
    names = [i.name for i in identities]
    if len(set(names)) != len(names):
        p.fail("users", "identity names must be unique across service_accounts and users")
    by_name = {i.name: i for i in identities}
    if initiator not in by_name or not by_name[initiator].is_service_account:
        p.fail("org.initiator", f"{initiator!r} must name one of the service_accounts")
    approvers = [i for i in identities if not i.is_service_account]
    if len(approvers) < 3:
        p.fail("users", "at least three approver users are needed")

    keys: list[KeyConfig] = []
    for i, item in enumerate(p.array(data, "keys")):
        where = f"keys[{i}]"
        p.no_unknown(item, {"name", "scheme", "curve", "wallets"}, where)
        name = p.string(item, "name", where)
        scheme = p.string(item, "scheme", where)
        curve = p.string(item, "curve", where)
        if (scheme, curve) not in KEY_SCHEMES:
            p.fail(
                f"{where}",
                f"scheme/curve {scheme}/{curve} is not supported; use one of "
                + ", ".join(sorted(f"{s}/{c}" for s, c in KEY_SCHEMES)),
            )
        wallets: list[WalletConfig] = []
        for j, w in enumerate(p.array(item, "wallets")):
            wwhere = f"{where}.wallets[{j}]"
            p.no_unknown(w, {"network", "name", "tags", "externalId"}, wwhere)
            wallet_name = w.get("name")
            if wallet_name is not None and not isinstance(wallet_name, str):
                p.fail(f"{wwhere}.name", "must be a string")
            external_id = w.get("externalId")
            if external_id is not None and not isinstance(external_id, str):
                p.fail(f"{wwhere}.externalId", "must be a string")
            wallets.append(
                WalletConfig(
                    network=p.string(w, "network", wwhere),
                    name=wallet_name,
                    tags=tuple(p.strings(w, "tags", wwhere)),
                    external_id=external_id,
                )
            )
        keys.append(KeyConfig(name=name, scheme=scheme, curve=curve, wallets=tuple(wallets)))
    key_names = {k.name for k in keys}
    if len(key_names) != len(keys):
        p.fail("keys", "key names must be unique")

    public_keys: list[PublicKeyConfig] = []
    for i, item in enumerate(p.array(data, "public_keys")):
        where = f"public_keys[{i}]"
        p.no_unknown(item, {"name", "key", "tags"}, where)
        key = p.string(item, "key", where)
        if key not in key_names:
            p.fail(f"{where}.key", f"{key!r} is not the name of one of the keys")
        public_keys.append(
            PublicKeyConfig(
                name=p.string(item, "name", where),
                key=key,
                tags=tuple(p.strings(item, "tags", where)),
            )
        )

    policies = tuple(dict(x) for x in p.array(data, "policies"))
    behaviour = _parse_behaviour(p, p.table(data, "behaviour", required=False))
    return OrgConfig(
        org_name=org_name,
        initiator=initiator,
        identities=tuple(identities),
        keys=tuple(keys),
        public_keys=tuple(public_keys),
        policies=policies,
        behaviour=behaviour,
        source=source,
        trial=trial,
    )


def _parse_behaviour(p: _Parser, table: dict[str, Any]) -> Behaviour:
    names = {
        "block_response",
        "pending_response_status",
        "executing_delay_seconds",
        "confirm_delay_seconds",
        "user_action_ttl_seconds",
        "token_days_valid",
        "list_default_limit",
        "list_max_limit",
        "retry_after_seconds",
        "rate_limit_per_minute",
    }
    p.no_unknown(table, names, "behaviour")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "block_response":
            if value not in ("rejected", "error"):
                p.fail("behaviour.block_response", "must be 'rejected' or 'error'")
        elif key == "pending_response_status":
            if value not in (200, 202) or isinstance(value, bool):
                p.fail("behaviour.pending_response_status", "must be 200 or 202")
        elif key == "rate_limit_per_minute":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                p.fail(f"behaviour.{key}", "must be a whole number >= 0 (0 turns it off)")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            p.fail(f"behaviour.{key}", "must be a number >= 0")
        values[key] = value
    behaviour = replace(Behaviour(), **values)
    if behaviour.list_default_limit < 1 or behaviour.list_max_limit < behaviour.list_default_limit:
        p.fail("behaviour.list_default_limit", "must be >= 1 and <= list_max_limit")
    return behaviour


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> None:
        raise ConfigError(f"{self.source}: {where}: {message}")

    def no_unknown(self, table: dict[str, Any], known: set[str], where: str) -> None:
        unknown = sorted(set(table) - known)
        if unknown:
            self.fail(where or "top level", f"unknown field(s) {unknown}; known: {sorted(known)}")

    def table(self, data: dict[str, Any], key: str, *, required: bool) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(key, "missing table")
            return {}
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return dict(value)

    def array(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, "must be an array of tables")
        return list(value)

    def string(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            self.fail(f"{where}.{key}", "must be a non-empty string")
        return str(value)

    def strings(self, data: dict[str, Any], key: str, where: str) -> list[str]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{where}.{key}", "must be a list of non-empty strings")
        return list(value)


@dataclass(frozen=True)
class SandboxSettings:
    """How one sandbox process runs: files, behaviour overrides, start-up faults, timings.

    ``None`` means "use the org file's ``[behaviour]`` value". ``faults`` is a camelCase
    patch in the ``/_local/faults`` shape applied at start-up (what the CLI flags set).
    """

    db_path: Path = Path(".signgate/sandbox.db")
    config_path: Path | None = None
    credentials_path: Path | None = None
    block_response: BlockResponse | None = None
    pending_response_status: int | None = None
    executing_delay_seconds: float | None = None
    confirm_delay_seconds: float | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    rate_limit_per_minute: int | None = None
    clock_scale: float | None = None
    webhook_retry_schedule: tuple[float, ...] | None = None
    webhook_delivery_timeout: float = 10.0
    tick_seconds: float = 0.2

    def resolved_credentials_path(self) -> Path:
        """Where the credentials file goes: next to the database unless told otherwise."""
        if self.credentials_path is not None:
            return self.credentials_path
        return self.db_path.with_name(f"{self.db_path.stem}-credentials.json")

    def behaviour(self, base: Behaviour) -> Behaviour:
        """``base`` (from the org file) with this process's overrides applied."""
        overrides: dict[str, Any] = {}
        if self.block_response is not None:
            overrides["block_response"] = self.block_response
        if self.pending_response_status is not None:
            overrides["pending_response_status"] = self.pending_response_status
        if self.executing_delay_seconds is not None:
            overrides["executing_delay_seconds"] = self.executing_delay_seconds
        if self.confirm_delay_seconds is not None:
            overrides["confirm_delay_seconds"] = self.confirm_delay_seconds
        if self.rate_limit_per_minute is not None:
            overrides["rate_limit_per_minute"] = self.rate_limit_per_minute
        return replace(base, **overrides)
