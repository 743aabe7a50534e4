"""Creating the Dfns webhook and storing its secret: what ``signgate webhook register`` and
``signgate dev`` do.

:func:`register_webhook` creates the webhook at Dfns and records its secret in the secret
file the receiver reads; :func:`dfns_client` builds a client that can sign the user action
that needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from signgate.dfns.auth import CredentialSigner
from signgate.dfns.client import DfnsClient
from signgate.dfns.errors import DfnsNotFoundError
from signgate.dfns.requests import CreateWebhookRequest
from signgate.logs import get_logger
from signgate.settings import Settings, SettingsError
from signgate.startup import DEFAULT_STARTUP_TIMEOUT_SECONDS, retry_startup
from signgate.webhook.events import SUBSCRIBED_EVENTS
from signgate.webhook.secrets import SecretFileError, record_webhook

__all__ = ["DEFAULT_DESCRIPTION", "Registration", "dfns_client", "register_webhook"]

DEFAULT_DESCRIPTION = "signgate webhook receiver"
_log = get_logger("signgate.webhook.registration")


@dataclass(frozen=True)
class Registration:
    """A webhook created at Dfns, its secret stored in ``secret_file``.

    ``previous_id`` is the webhook registered before it (its secret is still accepted);
    ``deleted_previous`` says whether that one was deleted at Dfns (``--replace``).
    """

    webhook_id: str
    url: str
    events: tuple[str, ...]
    secret_file: Path
    previous_id: str | None = None
    deleted_previous: bool = False


def dfns_client(settings: Settings) -> tuple[DfnsClient, httpx.AsyncClient]:
    """A Dfns client that can sign user actions, and the HTTP client to close after use.

    Raises :class:`SettingsError` when the token or the credential is missing.
    """
    if settings.dfns_auth_token is None:
        raise SettingsError("SIGNGATE_DFNS_AUTH_TOKEN is not set (the service account token)")
    pem = settings.credential_private_key_pem()
    if pem is None or settings.dfns_credential_id is None:
        raise SettingsError(
            "creating a webhook is a user action: set SIGNGATE_DFNS_CREDENTIAL_ID and "
            "SIGNGATE_DFNS_PRIVATE_KEY_FILE (or SIGNGATE_DFNS_PRIVATE_KEY)"
        )
    try:
        signer = CredentialSigner(
            settings.dfns_credential_id, pem, app_origin=settings.dfns_app_origin
        )
    except ValueError as exc:
        raise SettingsError(f"SIGNGATE_DFNS_PRIVATE_KEY: {exc}") from None
    http = httpx.AsyncClient(
        base_url=settings.dfns_base_url, timeout=settings.dfns_timeout_seconds, trust_env=False
    )
    client = DfnsClient(
        http,
        auth_token=settings.dfns_auth_token,
        signer=signer,
        app_id=settings.dfns_app_id,
        send_nonce=settings.dfns_send_nonce,
    )
    return client, http


async def register_webhook(
    dfns: DfnsClient,
    url: str,
    secret_file: Path,
    *,
    description: str | None = DEFAULT_DESCRIPTION,
    replace: bool = False,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_SECONDS,
    say: Callable[[str], None] | None = None,
) -> Registration:
    """Create the webhook at Dfns and store its secret in ``secret_file`` (mode 0600).

    If storing fails, the new webhook is deleted again so no webhook signs with a secret
    nobody holds. With ``replace``, the webhook stored before is deleted at Dfns once the
    new one is safely stored (a 404 counts as deleted). Each Dfns call retries transient
    errors for ``startup_timeout`` seconds (:func:`~signgate.startup.retry_startup`; ``say``
    gets its progress lines).
    """
    request = CreateWebhookRequest(url=url, events=list(SUBSCRIBED_EVENTS), description=description)

    async def delete(webhook_id: str, what: str) -> None:
        # A retried delete whose first attempt went through answers 404: deleted either way.
        with contextlib.suppress(DfnsNotFoundError):
            await retry_startup(
                lambda: dfns.delete_webhook(webhook_id),
                what=what,
                budget=startup_timeout,
                say=say,
            )

    created = await retry_startup(
        lambda: dfns.create_webhook(request),
        what=f"the webhook registration at {dfns.base_url}",
        budget=startup_timeout,
        say=say,
    )
    try:
        stored = record_webhook(
            secret_file,
            webhook_id=created.id,
            url=created.url,
            events=created.events,
            secret=created.secret,
        )
    except SecretFileError:
        _log.error("webhook.register_rollback", webhook_id=created.id)
        await delete(created.id, f"the deletion of webhook {created.id}")
        raise
    _log.info("webhook.registered", webhook_id=created.id, url=created.url)
    previous = stored.previous
    deleted = False
    if replace and previous is not None and previous.webhook_id != created.id:
        await delete(previous.webhook_id, f"the deletion of webhook {previous.webhook_id}")
        deleted = True
        _log.info("webhook.deleted_previous", webhook_id=previous.webhook_id)
    return Registration(
        webhook_id=created.id,
        url=created.url,
        events=tuple(created.events),
        secret_file=secret_file,
        previous_id=previous.webhook_id if previous is not None else None,
        deleted_previous=deleted,
    )
