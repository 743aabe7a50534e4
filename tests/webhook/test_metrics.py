"""The receiver's ``GET /metrics``: Prometheus text with counts by outcome and reason, latencies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signgate.webhook.app import DEFAULT_PATH, StaticSecrets, WebhookReceiver, create_app
from signgate.webhook.events import Notice
from signgate.webhook.routing import Delivery, TemporalUnavailable
from signgate.webhook.verify import SIGNATURE_HEADER
from tests.webhook.support import SECRET, event, sign, signed


class Router:
    """Answers each notice with the next outcome it is given (``unavailable`` raises)."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def deliver(self, notice: Notice) -> Delivery:
        del notice
        outcome = self.outcomes.pop(0)
        if outcome == "unavailable":
            raise TemporalUnavailable("Temporal is down")
        return Delivery(outcome, "test", ())  # type: ignore[arg-type]

    async def aclose(self) -> None:
        """Holds nothing back."""


@pytest.fixture
def router() -> Router:
    return Router()


@pytest.fixture
async def http(router: Router) -> AsyncIterator[httpx.AsyncClient]:
    receiver = WebhookReceiver(StaticSecrets(SECRET), router, max_body_bytes=4096)
    transport = httpx.ASGITransport(app=create_app(receiver))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield client


async def _post(http: httpx.AsyncClient, body: bytes, header: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    return (await http.post(DEFAULT_PATH, content=body, headers=headers)).status_code


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_events_by_outcome_and_reason_and_time_them(
    http: httpx.AsyncClient, router: Router
) -> None:
    router.outcomes = ["delivered", "delivered", "duplicate", "not-ours", "unavailable"]
    for attempt in (1, 2, 1, 1, 1):
        await _post(http, *signed(event(attempt=attempt)))
    body, _ = signed(event())
    assert await _post(http, body, sign(body, "not-the-secret")) == 401
    assert await _post(http, body, None) == 401
    assert await _post(http, b"x" * 5000, sign(b"x" * 5000)) == 413

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = _samples(response.text)

    def count(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    events = "signgate_webhook_events_total"
    assert count(events, outcome="delivered") == 2
    assert count(events, outcome="duplicate") == 1
    assert count(events, outcome="not_ours") == 1
    assert count(events, outcome="unavailable") == 1
    assert count(events, outcome="rejected") == 3
    rejections = "signgate_webhook_rejections_total"
    assert count(rejections, reason="bad-signature") == 1
    assert count(rejections, reason="missing-signature-header") == 1
    assert count(rejections, reason="body-too-large") == 1
    assert count("signgate_webhook_event_kinds_total", kind="wallet.signature.signed") == 5
    assert count("signgate_webhook_redeliveries_total") == 1
    # Every delivery that got as far as verification is timed (the 413 did not).
    assert count("signgate_webhook_verification_seconds_count") == 7
    assert count("signgate_webhook_signal_seconds_count", outcome="delivered") == 2
    assert count("signgate_webhook_signal_seconds_count", outcome="unavailable") == 1


async def test_metrics_carry_no_secret_event_id_or_body(
    http: httpx.AsyncClient, router: Router
) -> None:
    router.outcomes = ["delivered"]
    payload = event()
    await _post(http, *signed(payload))
    text = (await http.get("/metrics")).text
    labels = {
        value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for value in s.labels.values()
    }
    assert labels  # something was labelled
    for forbidden in (SECRET, payload["id"], payload["data"]["signatureRequest"]["id"]):
        assert forbidden not in text
        assert not any(forbidden in value for value in labels)
