"""Typed settings from the environment, read at entry points only.

Nothing in signgate reads the environment at import time: ``worker.py`` and the CLI call
:meth:`Settings.from_env` once and pass the result down. Every variable is prefixed with
``SIGNGATE_``; Temporal's own connection variables (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``) are read by
``temporalio.envconfig`` where the Temporal client is built, not here.

The default Dfns base URL is the embedded sandbox (``signgate sandbox``); pointing the
engine at real Dfns is a matter of setting ``SIGNGATE_DFNS_BASE_URL``,
``SIGNGATE_DFNS_AUTH_TOKEN``, ``SIGNGATE_DFNS_CREDENTIAL_ID`` and the credential's private
key (``SIGNGATE_DFNS_PRIVATE_KEY`` or ``SIGNGATE_DFNS_PRIVATE_KEY_FILE``).

Polling is adaptive: with ``SIGNGATE_WEBHOOKS_ENABLED=true`` (a receiver is registered and
running) :meth:`Settings.polling_policy` hands new workflows the relaxed ``webhook_poll_*``
policy (first poll after 15 s, backing off to 15 min: webhooks are the fast path, polls the
safety net for lost events); without it, the tight ``poll_*`` one (2 s, backing off to
1 min, the rate a 100-requests-a-minute trial org can afford for about 100 waiting requests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from signgate.contracts import PollingPolicy

ENV_PREFIX = "SIGNGATE_"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"


class SettingsError(ValueError):
    """The environment holds a setting that cannot be used; the message says which and why."""


class Settings(BaseSettings):
    """Every signgate setting. Field ``x`` is read from ``SIGNGATE_X``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # Dfns (or the sandbox)
    dfns_base_url: str = Field(
        default=DEFAULT_SANDBOX_URL,
        description="Dfns API base URL, e.g. https://api.dfns.io; defaults to the local sandbox.",
    )
    dfns_auth_token: SecretStr | None = Field(
        default=None, description="Bearer token of the service account that initiates requests."
    )
    dfns_credential_id: str | None = Field(
        default=None, description="credId of the Key credential that signs user actions."
    )
    dfns_private_key: SecretStr | None = Field(
        default=None, description="PEM private key of that credential (or use the _FILE form)."
    )
    dfns_private_key_file: Path | None = Field(
        default=None, description="Path to the PEM private key of the credential."
    )
    dfns_app_id: str | None = Field(
        default=None, description="Sent as X-DFNS-APPID for organisations that still need it."
    )
    dfns_send_nonce: bool = Field(
        default=False, description="Send the older X-DFNS-NONCE header on every request."
    )
    dfns_app_origin: str = Field(
        default="https://app.dfns.io", description="Origin written into signed clientData."
    )
    dfns_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="HTTP timeout for one Dfns call."
    )
    startup_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description=(
            "How long a start-up call to Dfns (the webhook check and registration) retries "
            "5xx, 408, 429, timeouts and dropped connections."
        ),
    )

    # The engine's share of the organisation's Dfns rate limit (README: "The Dfns budget")
    dfns_org_rate_limit_per_minute: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description=(
            "The organisation's Dfns rate limit in requests a minute (1000; 100 for a trial "
            "org); 0 turns the engine's budget off."
        ),
    )
    dfns_budget_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Fraction of the org limit the engine may use; people and other "
        "integrations keep the rest.",
    )
    dfns_write_share: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Fraction of the engine's budget for submits and denials; reads get the rest.",
    )

    # Temporal (connection itself comes from temporalio.envconfig)
    task_queue: str = Field(default="signgate", min_length=1, description="Worker task queue.")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus metrics port of the worker."
    )

    # Worker (``python worker.py``)
    ledger_path: Path = Field(
        default=Path(".signgate/ledger.sqlite"),
        description="SQLite file of the 'default' ledger delivery.",
    )
    callback_secret: SecretStr | None = Field(
        default=None, description="HMAC secret of callback deliveries naming secret 'default'."
    )
    callback_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='More callback secrets by name, as JSON: {"payouts": "..."}.',
    )
    callback_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="HTTP timeout of one callback delivery."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of /metrics.")
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, le=3600, description="How long running activities get on SIGTERM."
    )
    max_concurrent_activities: int = Field(
        default=100, ge=1, le=10_000, description="Activities one worker runs at once."
    )
    max_concurrent_workflow_tasks: int = Field(
        default=100, ge=1, le=10_000, description="Workflow tasks one worker runs at once."
    )

    # Tracing (signgate.tracing): exporter and resource from the standard OTEL_* variables
    tracing_enabled: bool = Field(
        default=False,
        description="Export OpenTelemetry traces (needs the tracing extra; OTEL_* configure it).",
    )

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json, console, or auto: JSON unless writing to a terminal.",
    )

    # Webhook receiver (``signgate webhook``)
    webhook_host: str = Field(
        default="127.0.0.1", min_length=1, description="Address the webhook receiver binds."
    )
    webhook_port: int = Field(
        default=8788, ge=0, le=65535, description="Port of the webhook receiver (0 = any free)."
    )
    webhook_secret_file: Path = Field(
        default=Path(".signgate/webhook.json"),
        description="Where `signgate webhook register` stores the webhook secret (mode 0600) "
        "and the receiver reads it.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="A webhook secret given directly (e.g. from a secret store), accepted in "
        "addition to the ones in the secret file.",
    )
    webhook_secondary_secret: SecretStr | None = Field(
        default=None,
        description="A second accepted secret, for rotating without refusing events in flight.",
    )
    webhook_tolerance_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Largest accepted distance between an event's timestampSent and now.",
    )
    webhook_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Larger webhook bodies are refused with 413 before being read in full.",
    )
    webhook_lookup_timeout_seconds: float = Field(
        default=3.0,
        ge=0,
        le=25,
        description="How long an event for a workflow not yet in the visibility index waits "
        "for it before the receiver answers 503 (so Dfns delivers it again).",
    )
    webhook_route_cache_size: int = Field(
        default=10_000,
        ge=1,
        description="externalId -> workflow id entries the receiver keeps in memory.",
    )
    webhook_approval_hold_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long the receiver holds a resolved approval for the request's next "
        "status event, to send both in one signal (0: signal each at once). A held approval is "
        "answered 200 before Temporal has it; if it is lost, the workflow reads the approval "
        "itself.",
    )

    # Adaptive polling: webhooks are the fast path when configured, polls the safety net.
    webhooks_enabled: bool = Field(
        default=False,
        description="A webhook receiver is registered and running: start workflows with the "
        "relaxed webhook_poll_* policy instead of the tight poll_* one.",
    )
    poll_initial_seconds: float = Field(
        default=2.0, ge=1, description="Without webhooks: first poll after submit (seconds)."
    )
    poll_max_seconds: float = Field(
        default=60.0, ge=1, description="Without webhooks: longest interval between polls."
    )
    poll_backoff: float = Field(
        default=2.0, ge=1, le=10, description="Without webhooks: interval growth per idle poll."
    )
    webhook_poll_initial_seconds: float = Field(
        default=15.0, ge=1, description="With webhooks: first safety-net poll after submit."
    )
    webhook_poll_max_seconds: float = Field(
        default=900.0, ge=1, description="With webhooks: longest interval between polls."
    )
    webhook_poll_backoff: float = Field(
        default=2.0, ge=1, le=10, description="With webhooks: interval growth per idle poll."
    )

    # The reconciler: one sweep of the pending approvals per interval replaces tight polls.
    reconciler_enabled: bool = Field(
        default=False,
        description="The worker runs the task queue's ReconcilerWorkflow, and new workflows "
        "get the reconciled_poll_* policy (polls become a rare safety net).",
    )
    reconcile_interval_seconds: float = Field(
        default=15.0,
        ge=1,
        description="Shortest time between the starts of two sweeps (many pages take longer).",
    )
    reconcile_budget_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Fraction of the engine's Dfns budget the reconciler's sweeps may spend.",
    )
    reconciled_poll_initial_seconds: float = Field(
        default=1800.0, ge=1, description="With the reconciler: first safety-net poll."
    )
    reconciled_poll_max_seconds: float = Field(
        default=21600.0, ge=1, description="With the reconciler: longest interval between polls."
    )
    reconciled_poll_jitter: float = Field(
        default=0.25,
        ge=0,
        le=0.5,
        description="With the reconciler: each safety-net wait is spread by up to this "
        "fraction either way, so a burst's polls do not fall due together.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("callback_secrets", mode="before")
    @classmethod
    def _json_map(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("must be a JSON object of name -> secret") from None
        return value

    @field_validator("dfns_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{value!r} is not an absolute http(s) URL; use e.g. https://api.dfns.io "
                f"or {DEFAULT_SANDBOX_URL}"
            )
        if parts.query or parts.fragment:
            raise ValueError("the base URL must not carry a query string or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_polling(self) -> Self:
        for prefix in ("poll", "webhook_poll", "reconciled_poll"):
            initial = getattr(self, f"{prefix}_initial_seconds")
            maximum = getattr(self, f"{prefix}_max_seconds")
            if maximum < initial:
                name = f"{ENV_PREFIX}{prefix.upper()}"
                raise ValueError(
                    f"{name}_MAX_SECONDS ({maximum:g}) must not be shorter than "
                    f"{name}_INITIAL_SECONDS ({initial:g})"
                )
        return self

    @model_validator(mode="after")
    def _check_credential(self) -> Self:
        if self.dfns_private_key is not None and self.dfns_private_key_file is not None:
            raise ValueError(
                "set only one of SIGNGATE_DFNS_PRIVATE_KEY and SIGNGATE_DFNS_PRIVATE_KEY_FILE"
            )
        has_key = self.dfns_private_key is not None or self.dfns_private_key_file is not None
        if has_key and not self.dfns_credential_id:
            raise ValueError(
                "a credential private key is set but SIGNGATE_DFNS_CREDENTIAL_ID is not; "
                "set the credId that belongs to the key"
            )
        if self.dfns_credential_id and not has_key:
            raise ValueError(
                "SIGNGATE_DFNS_CREDENTIAL_ID is set but no private key; set "
                "SIGNGATE_DFNS_PRIVATE_KEY_FILE (or SIGNGATE_DFNS_PRIVATE_KEY)"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``) with a readable error."""
        source = os.environ if environ is None else environ
        values = {
            key[len(ENV_PREFIX) :].lower(): value
            for key, value in source.items()
            # An empty variable means "not set", as in most shells' ``VAR= cmd`` idiom.
            if key.upper().startswith(ENV_PREFIX) and value != ""
        }
        known = set(cls.model_fields)
        unknown = sorted(f"{ENV_PREFIX}{k.upper()}" for k in values if k not in known)
        if unknown:
            raise SettingsError(
                "unknown setting(s) "
                + ", ".join(unknown)
                + "; known ones are "
                + ", ".join(f"{ENV_PREFIX}{k.upper()}" for k in sorted(known))
            )
        try:
            # Pass values explicitly so a test's mapping never mixes with the real environment.
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    def polling_policy(self, *, webhooks: bool | None = None) -> PollingPolicy:
        """The polling policy a new workflow should get.

        With webhooks (``webhooks`` or, when ``None``, :attr:`webhooks_enabled`) polls are
        only the safety net for lost events, so they back off far (``webhook_poll_*``);
        without them polling is the only way to learn of a change and stays tight
        (``poll_*``). With the reconciler (:attr:`reconciler_enabled`) its sweeps notice what
        moved, webhooks or not, and polls wait hours (``reconciled_poll_*``). With the Dfns
        budget off, reads run as local activities (``PollingPolicy.local_reads``).
        """
        # Imported here: contracts pulls in temporalio, which settings alone does not need.
        from signgate.contracts import PollingPolicy

        relaxed = self.webhooks_enabled if webhooks is None else webhooks
        if self.reconciler_enabled:
            initial, maximum, backoff = (
                self.reconciled_poll_initial_seconds,
                self.reconciled_poll_max_seconds,
                self.webhook_poll_backoff,
            )
        elif relaxed:
            initial, maximum, backoff = (
                self.webhook_poll_initial_seconds,
                self.webhook_poll_max_seconds,
                self.webhook_poll_backoff,
            )
        else:
            initial, maximum, backoff = (
                self.poll_initial_seconds,
                self.poll_max_seconds,
                self.poll_backoff,
            )
        return PollingPolicy(
            initial_interval=timedelta(seconds=initial),
            max_interval=timedelta(seconds=maximum),
            backoff_coefficient=backoff,
            reconciled=self.reconciler_enabled,
            jitter=self.reconciled_poll_jitter if self.reconciler_enabled else 0.0,
            local_reads=self.dfns_org_rate_limit_per_minute == 0,
        )

    def reconciler_calls_per_minute(self) -> float | None:
        """Dfns calls a minute the reconciler's sweeps may make; ``None`` when unbudgeted."""
        if self.dfns_org_rate_limit_per_minute == 0:
            return None
        engine = self.dfns_org_rate_limit_per_minute * self.dfns_budget_share
        return engine * self.reconcile_budget_share

    def dfns_budget_per_minute(self, lane: Literal["reads", "writes"]) -> float | None:
        """Dfns calls a minute the engine's ``lane`` may make; ``None`` when the budget is off."""
        if self.dfns_org_rate_limit_per_minute == 0:
            return None
        engine = self.dfns_org_rate_limit_per_minute * self.dfns_budget_share
        share = self.dfns_write_share if lane == "writes" else 1 - self.dfns_write_share
        return engine * share

    def all_callback_secrets(self) -> dict[str, SecretStr]:
        """Callback secrets by name, ``default`` included when set."""
        secrets = dict(self.callback_secrets)
        if self.callback_secret is not None:
            secrets.setdefault("default", self.callback_secret)
        return secrets

    def credential_private_key_pem(self) -> str | None:
        """The credential's PEM private key, read from the file form when that is used."""
        if self.dfns_private_key is not None:
            return self.dfns_private_key.get_secret_value()
        if self.dfns_private_key_file is None:
            return None
        try:
            return self.dfns_private_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(
                f"SIGNGATE_DFNS_PRIVATE_KEY_FILE={self.dfns_private_key_file}: cannot read it "
                f"({exc.strerror})"
            ) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in error["loc"])
        name = f"{ENV_PREFIX}{loc.upper()}" if loc else "settings"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "invalid settings: " + "; ".join(lines)
