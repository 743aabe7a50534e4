"""The Dfns webhook receiver: verify each delivery, then wake the workflow it concerns.

* :mod:`~signgate.webhook.verify`: HMAC-SHA256 over the raw body and ``timestampSent``,
  pure functions;
* :mod:`~signgate.webhook.events`: what a verified event means (signature status,
  approval progress, or nothing for us);
* :mod:`~signgate.webhook.routing`: ``externalId`` -> workflow through Temporal's
  visibility index (no lookup table of our own), delivered by signal;
* :mod:`~signgate.webhook.app`: the ASGI app; :mod:`~signgate.webhook.server`: uvicorn;
* :mod:`~signgate.webhook.secrets`: the secret file ``register`` writes (mode 0600);
* :mod:`~signgate.webhook.registration`: create the webhook at Dfns, store its secret
  (``signgate webhook register``, :mod:`signgate.commands.webhook`).
"""

from signgate.webhook.app import DEFAULT_PATH, Reply, StaticSecrets, WebhookReceiver, create_app
from signgate.webhook.events import SUBSCRIBED_EVENTS, parse_notice
from signgate.webhook.routing import Delivery, TemporalRouter, TemporalUnavailable
from signgate.webhook.verify import SIGNATURE_HEADER, Rejection, WebhookRejected, sign_body

__all__ = [
    "DEFAULT_PATH",
    "SIGNATURE_HEADER",
    "SUBSCRIBED_EVENTS",
    "Delivery",
    "Rejection",
    "Reply",
    "StaticSecrets",
    "TemporalRouter",
    "TemporalUnavailable",
    "WebhookReceiver",
    "WebhookRejected",
    "create_app",
    "parse_notice",
    "sign_body",
]
