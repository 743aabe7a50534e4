"""``signgate webhook``: run the receiver; ``signgate webhook register``: create the webhook.

:func:`add_webhook_commands` adds both to the ``signgate`` command's subparsers; each sets
``handler`` (namespace -> exit code) like the other subcommands. Settings come from the
``SIGNGATE_*`` environment (:class:`~signgate.settings.Settings`), Temporal's connection
from ``TEMPORAL_*``. Exit codes: 0 done, 1 the operation failed, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

from signgate import argtypes
from signgate.dfns.errors import DfnsError
from signgate.logs import configure_logging
from signgate.settings import Settings, SettingsError
from signgate.tracing import TracingError, configure_tracing
from signgate.webhook.app import DEFAULT_PATH
from signgate.webhook.events import SUBSCRIBED_EVENTS
from signgate.webhook.registration import (
    DEFAULT_DESCRIPTION,
    Registration,
    dfns_client,
    register_webhook,
)
from signgate.webhook.secrets import SecretFileError
from signgate.webhook.server import run_receiver, secret_store

__all__ = ["add_webhook_commands"]


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{url!r} is not an absolute http(s) URL, e.g. https://hooks.example.com{DEFAULT_PATH}"
        )
    return url


def add_webhook_commands(subparsers: Any) -> None:
    """Add ``webhook`` (serve) and ``webhook register`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "webhook",
        help="run the Dfns webhook receiver (or register it: `webhook register --url`)",
        description=(
            "Receive Dfns webhook events, verify their HMAC signature and timestamp, and "
            "wake the SignatureWorkflow each one concerns, by signal. Events are served at "
            f"POST {DEFAULT_PATH}; GET /healthz reports counts. Accepted secrets: the "
            "secret file written by `register` (SIGNGATE_WEBHOOK_SECRET_FILE, current and "
            "previous) plus SIGNGATE_WEBHOOK_SECRET / SIGNGATE_WEBHOOK_SECONDARY_SECRET. "
            "Temporal is reached through TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ..."
        ),
    )
    parser.add_argument(
        "--host", default=None, help="bind address (default SIGNGATE_WEBHOOK_HOST, 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=argtypes.port,
        default=None,
        help="port (default SIGNGATE_WEBHOOK_PORT, 8788)",
    )
    parser.set_defaults(handler=_serve)

    actions = parser.add_subparsers(dest="webhook_action", metavar="ACTION")
    register = actions.add_parser(
        "register",
        help="create the webhook at Dfns and store its secret for the receiver",
        description=(
            "Create a webhook at Dfns (or the sandbox, SIGNGATE_DFNS_BASE_URL) for the "
            f"events the receiver acts on ({', '.join(SUBSCRIBED_EVENTS)}) and store the "
            "secret Dfns returns, once, in the secret file (mode 0600). A webhook stored "
            "before is kept as the previous one, whose secret is still accepted while its "
            "events drain. Needs SIGNGATE_DFNS_AUTH_TOKEN and the credential that signs "
            "user actions (SIGNGATE_DFNS_CREDENTIAL_ID, SIGNGATE_DFNS_PRIVATE_KEY_FILE)."
        ),
    )
    register.add_argument(
        "--url",
        required=True,
        type=_check_url,
        help=f"the receiver's public URL, ending in {DEFAULT_PATH}",
    )
    register.add_argument("--description", default=DEFAULT_DESCRIPTION, help="shown at Dfns")
    register.add_argument(
        "--replace",
        action="store_true",
        help="delete the previously registered webhook at Dfns (its pending retries go too)",
    )
    register.set_defaults(handler=_register)


# --- handlers ---------------------------------------------------------------------------------


def _settings() -> Settings | None:
    try:
        settings = Settings.from_env()
        configure_tracing(settings.tracing_enabled, service_name="signgate-webhook")
    except (SettingsError, TracingError) as exc:
        print(f"signgate webhook: {exc}", file=sys.stderr)
        return None
    return settings


def _serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    store = secret_store(settings)
    if not store.secrets():
        print(
            f"signgate webhook: no webhook secret: {settings.webhook_secret_file} does not "
            "exist and SIGNGATE_WEBHOOK_SECRET is not set; run `signgate webhook register "
            "--url URL` first",
            file=sys.stderr,
        )
        return 2

    def announce(url: str) -> None:
        print(f"signgate webhook receiver listening on {url}", flush=True)

    run_receiver(settings, host=args.host, port=args.port, store=store, on_started=announce)
    return 0


def _register(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        registration = asyncio.run(
            _register_with_settings(settings, args.url, args.description, args.replace)
        )
    except SettingsError as exc:
        print(f"signgate webhook register: {exc}", file=sys.stderr)
        return 2
    except (DfnsError, SecretFileError) as exc:
        print(f"signgate webhook register: {exc}", file=sys.stderr)
        return 1
    print(
        f"registered webhook {registration.webhook_id} for {registration.url}\n"
        f"events: {', '.join(registration.events)}\n"
        f"secret stored in {registration.secret_file} (mode 0600)",
        flush=True,
    )
    if registration.previous_id is not None:
        done = "deleted at Dfns" if registration.deleted_previous else "kept at Dfns"
        print(
            f"previous webhook {registration.previous_id}: {done}; its secret is still "
            "accepted until the next registration",
            flush=True,
        )
    return 0


async def _register_with_settings(
    settings: Settings, url: str, description: str | None, replace: bool
) -> Registration:
    dfns, http = dfns_client(settings)
    async with http:
        return await register_webhook(
            dfns,
            url,
            settings.webhook_secret_file,
            description=description,
            replace=replace,
            startup_timeout=settings.startup_timeout_seconds,
            say=lambda line: print(f"signgate webhook register: {line}", flush=True),
        )
