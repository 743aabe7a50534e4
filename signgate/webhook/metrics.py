"""The receiver's Prometheus metrics, served as text at ``GET /metrics``.

Each :class:`ReceiverMetrics` has its own registry (two receivers in one process do not
share counts). Labels are bounded: ``outcome`` is one of the receiver's outcomes,
``reason`` one of :class:`~signgate.webhook.verify.Rejection`, ``kind`` one of the event
kinds Dfns defines (an unknown kind is rejected before it is counted as a kind). No event
id, request id, secret or body is ever a label.

* ``signgate_webhook_events_total{outcome}``: every delivery, by what became of it
  (``delivered``, ``held``, ``duplicate``, ``not_ours``, ``closed``, ``ignored``,
  ``unavailable``, ``rejected``);
* ``signgate_webhook_rejections_total{reason}``: the refused ones, by reason;
* ``signgate_webhook_event_kinds_total{kind}``: verified events by kind;
* ``signgate_webhook_redeliveries_total``: verified events Dfns sent again;
* ``signgate_webhook_verification_seconds``: signature and timestamp check, per delivery;
* ``signgate_webhook_signal_seconds{outcome}``: routing a verified event to its workflow
  (visibility lookup and signal).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from signgate.metrics import HTTP_LATENCY_BUCKETS

__all__ = ["CONTENT_TYPE", "ReceiverMetrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class ReceiverMetrics:
    """Counters and latencies of one receiver."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._events = Counter(
            "signgate_webhook_events",
            "Webhook deliveries by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self._rejections = Counter(
            "signgate_webhook_rejections",
            "Refused webhook deliveries by reason",
            ["reason"],
            registry=self.registry,
        )
        self._kinds = Counter(
            "signgate_webhook_event_kinds",
            "Verified webhook events by Dfns event kind",
            ["kind"],
            registry=self.registry,
        )
        self._redeliveries = Counter(
            "signgate_webhook_redeliveries",
            "Verified webhook events that Dfns delivered again (deliveryAttempt > 1)",
            registry=self.registry,
        )
        self._verification = Histogram(
            "signgate_webhook_verification_seconds",
            "Seconds to check a delivery's signature and timestamp",
            buckets=HTTP_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._signal = Histogram(
            "signgate_webhook_signal_seconds",
            "Seconds to route a verified event to its workflow (lookup and signal)",
            ["outcome"],
            buckets=HTTP_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def event(self, outcome: str) -> None:
        """A delivery ended with ``outcome`` (``-`` becomes ``_``: ``not-ours`` -> ``not_ours``)."""
        self._events.labels(outcome=outcome.replace("-", "_")).inc()

    def rejected(self, reason: str) -> None:
        """A delivery was refused for ``reason`` (a :class:`Rejection` value)."""
        self.event("rejected")
        self._rejections.labels(reason=reason).inc()

    def kind(self, kind: str, *, attempt: int) -> None:
        """A verified event of ``kind`` arrived (its ``attempt``-th delivery)."""
        self._kinds.labels(kind=kind).inc()
        if attempt > 1:
            self._redeliveries.inc()

    def verified_in(self, seconds: float) -> None:
        """The signature check of one delivery took ``seconds``."""
        self._verification.observe(seconds)

    def signalled_in(self, seconds: float, outcome: str) -> None:
        """Routing one event took ``seconds`` and ended with ``outcome``."""
        self._signal.labels(outcome=outcome.replace("-", "_")).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
