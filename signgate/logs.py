"""structlog for every signgate process: JSON when not a TTY, console otherwise.

Call :func:`configure_logging` once at each entry point (worker, CLI, sandbox, webhook
receiver). Standard-library loggers (uvicorn, httpx, temporalio) are routed through the
same processors, so every line gets the same shape and the same redaction.

Redaction is two-layered because a secret can arrive as a field (``token=...``) or inside
free text (an exception message that quotes a header): sensitive keys are masked whole,
and every string value is scrubbed for bearer tokens, JWTs and PEM private keys.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]

REDACTED = "[REDACTED]"

# Keys whose whole value is secret. Matched case-insensitively on the key with separators
# removed, so ``auth_token``, ``authToken`` and ``X-DFNS-USERACTION`` all hit.
_SECRET_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "passphrase",
    "privatekey",
    "apikey",
    "authorization",
    "useraction",
    "cookie",
    "pem",
    "credentialkey",
    "signingkey",
)
# Identifiers and cursors that merely mention a secret-sounding word.
_PUBLIC_KEY_SUFFIXES = ("id", "ids", "paginationtoken", "nextpagetoken", "count", "kind", "file")

_SECRET_PATTERNS = (
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
        re.DOTALL,
    ),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    # A JWT: three base64url segments, the first two starting with a JSON object.
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
)


def _normalise_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def is_secret_key(key: str) -> bool:
    """True when a field named ``key`` holds a secret and must be masked whole."""
    norm = _normalise_key(key)
    if norm.endswith(_PUBLIC_KEY_SUFFIXES):
        return False
    return any(part in norm for part in _SECRET_KEY_PARTS)


def scrub_text(text: str) -> str:
    """Mask bearer tokens, JWTs and PEM private keys inside free text."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """Return ``value`` with secrets masked, recursing through mappings and sequences."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret fields and scrub secrets out of every string."""
    for key in list(event_dict):
        value = event_dict[key]
        if is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact(value)
    return event_dict


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # uvicorn duplicates every message with ANSI colours in ``color_message``.
    event_dict.pop("color_message", None)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_color_message,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def _wants_json(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    *, level: str | int = "INFO", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog and the stdlib root logger once for this process."""
    out = stream if stream is not None else sys.stderr
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(
            f"unknown log level {level!r}: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if _wants_json(fmt, out)
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # httpx logs every request URL at INFO; keep it at WARNING unless debugging.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger; ``initial`` key-values are bound to every line it writes."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**initial) if initial else logger


def bind_context(values: MutableMapping[str, Any]) -> None:
    """Bind key-values to every log line of the current task/thread (contextvars)."""
    structlog.contextvars.bind_contextvars(**values)
