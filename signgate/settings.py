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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # Temporal (connection itself comes from temporalio.envconfig)
    task_queue: str = Field(default="signgate", min_length=1, description="Worker task queue.")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus metrics port of the worker."
    )

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
