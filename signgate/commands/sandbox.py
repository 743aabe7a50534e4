"""``signgate sandbox``: run the local Dfns-compatible server.

:func:`add_sandbox_command` adds the parser and sets ``handler`` like the other subcommands;
its fault flags set the same faults as ``PUT /_local/faults``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from signgate import argtypes
from signgate.commands.common import require_sandbox_extra
from signgate.logs import configure_logging

__all__ = ["add_sandbox_command"]


# --- argument types: each raises ArgumentTypeError with a readable reason ----------------


def _schedule(text: str) -> tuple[float, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give comma-separated delays in seconds, e.g. 60,720")
    return tuple(argtypes.seconds(p) for p in parts)


def _error_status(text: str) -> int:
    value = argtypes.count(text)
    if value not in (500, 502, 503, 504):
        raise argparse.ArgumentTypeError(f"{text} must be one of 500, 502, 503, 504")
    return value


def add_sandbox_command(subparsers: Any) -> None:
    """``signgate sandbox``: a local Dfns-compatible server."""
    parser = subparsers.add_parser(
        "sandbox",
        help="run the local Dfns-compatible sandbox server",
        description=(
            "Serve a Dfns-compatible API on HTTP with real keys and signatures, policies, "
            "approvals and signed webhooks. All state lives in one SQLite file; the first "
            "start creates the org from --config (or the shipped default) and writes the "
            "identities' tokens and credential keys to a credentials file (mode 0600)."
        ),
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    server.add_argument(
        "--port", type=argtypes.port, default=8787, help="port (default 8787; 0 = any)"
    )
    server.add_argument(
        "--db",
        type=Path,
        default=Path(".signgate/sandbox.db"),
        help="SQLite file holding all state (default .signgate/sandbox.db)",
    )
    server.add_argument(
        "--config", type=Path, default=None, help="org file (TOML); default: the shipped one"
    )
    server.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="credentials file (default: <db dir>/<db name>-credentials.json)",
    )
    server.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    server.add_argument("--log-format", default="auto", choices=["auto", "json", "console"])

    behaviour = parser.add_argument_group("behaviour (overrides the org file's [behaviour])")
    behaviour.add_argument(
        "--block-response",
        choices=["rejected", "error"],
        default=None,
        help="a Block policy answers 200 + Rejected, or HTTP 403",
    )
    behaviour.add_argument(
        "--pending-status",
        type=int,
        choices=[200, 202],
        default=None,
        help="HTTP status of a signature request created Pending (default 200)",
    )
    behaviour.add_argument(
        "--executing-delay",
        type=argtypes.seconds,
        default=None,
        help="Executing -> Signed (seconds)",
    )
    behaviour.add_argument(
        "--confirm-delay", type=argtypes.seconds, default=None, help="Signed -> Confirmed (seconds)"
    )
    behaviour.add_argument(
        "--rate-limit",
        type=argtypes.count,
        default=None,
        metavar="N",
        help="Dfns calls the org may make per minute (default 1000, 100 for a trial org; "
        "0 = off); also PUT /_local/rate-limit",
    )
    behaviour.add_argument(
        "--webhook-retry-schedule",
        type=_schedule,
        default=None,
        help="delays from the first attempt, e.g. 60,720,7200,86400 (sandbox seconds)",
    )

    faults = parser.add_argument_group("faults (also settable at PUT /_local/faults)")
    faults.add_argument(
        "--latency-ms", type=argtypes.count, default=None, help="added to Dfns calls"
    )
    faults.add_argument(
        "--error-rate", type=argtypes.rate, default=None, help="share of calls -> 5xx"
    )
    faults.add_argument("--error-status", type=_error_status, default=None, help="5xx code")
    faults.add_argument(
        "--rate-429", type=argtypes.rate, default=None, help="share of calls -> 429"
    )
    faults.add_argument(
        "--retry-after", type=argtypes.count, default=None, help="429 Retry-After (s)"
    )
    faults.add_argument(
        "--drop-after-commit",
        type=argtypes.count,
        default=None,
        metavar="N",
        help="the next N writes commit, then the connection drops with no response",
    )
    faults.add_argument(
        "--webhook-loss", type=argtypes.rate, default=None, help="share of lost events"
    )
    faults.add_argument(
        "--webhook-duplicate", type=argtypes.rate, default=None, help="share of duplicated events"
    )
    faults.add_argument(
        "--webhook-reorder",
        type=argtypes.count,
        default=None,
        metavar="N",
        help="shuffle deliveries in windows of N (0/1 = in order)",
    )
    faults.add_argument("--webhook-seed", type=int, default=None, help="seed for webhook faults")
    faults.add_argument(
        "--corrupt-signatures", type=argtypes.count, default=None, metavar="N", help="tamper next N"
    )
    faults.add_argument(
        "--fail-signatures", type=argtypes.count, default=None, metavar="N", help="fail next N"
    )
    faults.add_argument(
        "--clock-scale",
        type=argtypes.positive,
        default=None,
        help="sandbox time runs X times faster",
    )
    parser.set_defaults(handler=_run_sandbox)


_FAULT_FLAGS = {
    "latency_ms": "latencyMs",
    "error_rate": "errorRate",
    "error_status": "errorStatus",
    "rate_429": "rate429",
    "retry_after": "retryAfterSeconds",
    "drop_after_commit": "dropAfterCommit",
    "webhook_loss": "webhookLoss",
    "webhook_duplicate": "webhookDuplicate",
    "webhook_reorder": "webhookReorder",
    "webhook_seed": "webhookSeed",
    "corrupt_signatures": "corruptSignatures",
    "fail_signatures": "failSignatures",
}


def _run_sandbox(args: argparse.Namespace) -> int:
    require_sandbox_extra("signgate sandbox")
    from signgate.sandbox.config import ConfigError, SandboxSettings
    from signgate.sandbox.server import run_sandbox

    configure_logging(level=args.log_level, fmt=args.log_format)
    faults = {
        wire: getattr(args, flag)
        for flag, wire in _FAULT_FLAGS.items()
        if getattr(args, flag) is not None
    }
    settings = SandboxSettings(
        db_path=args.db,
        config_path=args.config,
        credentials_path=args.credentials,
        block_response=args.block_response,
        pending_response_status=args.pending_status,
        executing_delay_seconds=args.executing_delay,
        confirm_delay_seconds=args.confirm_delay,
        faults=faults,
        rate_limit_per_minute=args.rate_limit,
        clock_scale=args.clock_scale,
        webhook_retry_schedule=args.webhook_retry_schedule,
    )

    def announce(_sandbox: object, base_url: str) -> None:
        credentials = settings.resolved_credentials_path().resolve()
        print(f"signgate sandbox listening on {base_url}", flush=True)
        print(f"database: {settings.db_path.resolve()}", flush=True)
        print(f"credentials (tokens and private keys, mode 0600): {credentials}", flush=True)

    try:
        run_sandbox(settings, host=args.host, port=args.port, on_started=announce)
    except ConfigError as exc:
        print(f"signgate sandbox: {exc}", file=sys.stderr)
        return 2
    return 0
