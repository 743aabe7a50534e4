"""The receiver over ASGI: status codes, size limits, rotation, and that refusals do nothing."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr

from signgate.webhook.app import DEFAULT_PATH, StaticSecrets, WebhookReceiver, create_app
from signgate.webhook.events import Notice, SignatureNotice
from signgate.webhook.routing import Delivery, TemporalUnavailable
from signgate.webhook.secrets import SecretStore, record_webhook
from signgate.webhook.verify import SIGNATURE_HEADER
from tests.webhook.support import OLD_SECRET, SECRET, encode, event, sign, signed


class FakeRouter:
    """Records what reaches routing; answers ``delivered`` unless told otherwise."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.unavailable = False

    async def deliver(self, notice: Notice) -> Delivery:
        if self.unavailable:
            raise TemporalUnavailable("Temporal is down")
        self.notices.append(notice)
        return Delivery("delivered", "signalled", ("wf-1",))

    async def aclose(self) -> None:
        """Holds nothing back."""


@pytest.fixture
def router() -> FakeRouter:
    return FakeRouter()


@pytest.fixture
def receiver(router: FakeRouter) -> WebhookReceiver:
    return WebhookReceiver(StaticSecrets(SECRET), router, max_body_bytes=4096)


@pytest.fixture
async def http(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(receiver))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield client


async def post(http: httpx.AsyncClient, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    return await http.post(DEFAULT_PATH, content=body, headers=headers)


async def test_a_verified_event_is_routed_and_answered_200(
    http: httpx.AsyncClient, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    response = await post(http, *signed(event()))
    assert response.status_code == 200
    assert response.json()["outcome"] == "delivered"
    assert len(router.notices) == 1 and isinstance(router.notices[0], SignatureNotice)
    assert receiver.stats["delivered"] == 1


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("missing header", 401, "missing-signature-header"),
        ("wrong scheme", 401, "wrong-signature-scheme"),
        ("bad hmac", 401, "bad-signature"),
        ("one byte altered", 401, "bad-signature"),
        ("stale", 401, "stale-timestamp"),
        ("future", 401, "future-timestamp"),
        ("malformed json", 400, "malformed-json"),
        ("unknown kind", 422, "unknown-kind"),
        ("envelope incomplete", 400, "invalid-event"),
    ],
)
async def test_every_refusal_has_its_status_and_reaches_nothing(
    http: httpx.AsyncClient,
    router: FakeRouter,
    receiver: WebhookReceiver,
    case: str,
    status: int,
    reason: str,
) -> None:
    body, header = signed(event())
    sent: tuple[bytes, str | None]
    if case == "missing header":
        sent = (body, None)
    elif case == "wrong scheme":
        sent = (body, header.replace("sha256=", "sha1="))
    elif case == "bad hmac":
        sent = (body, sign(body, "whs-forged"))
    elif case == "one byte altered":
        sent = (body.replace(b'"Signed"', b'"Signex"'), header)
    elif case in ("stale", "future"):
        shift = -600 if case == "stale" else 600
        payload = event()
        payload["timestampSent"] += shift
        sent = signed(payload)
    elif case == "malformed json":
        broken = body[:-1]
        sent = (broken, sign(broken))
    elif case == "unknown kind":
        sent = signed(event("wallet.signature.teleported"))
    else:
        payload = event()
        del payload["deliveryAttempt"]
        sent = signed(payload)
    response = await post(http, *sent)
    assert response.status_code == status
    assert response.json()["error"] == reason
    assert response.json()["message"]
    assert router.notices == []
    assert receiver.stats[f"rejected:{reason}"] == 1


async def test_a_refusal_is_logged_without_the_signature(http: httpx.AsyncClient) -> None:
    body, _ = signed(event())
    forged = sign(body, "whs-forged")
    with structlog.testing.capture_logs() as logs:
        response = await post(http, body, forged)
    assert response.status_code == 401
    [line] = [entry for entry in logs if entry["event"] == "webhook.rejected"]
    assert line["reason"] == "bad-signature" and line["status"] == 401
    logged = json.dumps(logs, default=str)
    assert forged.removeprefix("sha256=") not in logged
    assert SECRET not in logged


async def test_an_oversized_declared_body_is_refused_before_reading(
    http: httpx.AsyncClient, router: FakeRouter
) -> None:
    payload = event()
    payload["padding"] = "x" * 5000
    body, header = signed(payload)
    response = await post(http, body, header)
    assert response.status_code == 413
    assert response.json()["error"] == "body-too-large"
    assert router.notices == []


async def test_an_oversized_streamed_body_is_refused(
    http: httpx.AsyncClient, router: FakeRouter
) -> None:
    payload = event()
    payload["padding"] = "x" * 5000
    body, header = signed(payload)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    # No Content-Length: the limit must hold while streaming.
    response = await http.post(DEFAULT_PATH, content=chunks(), headers={SIGNATURE_HEADER: header})
    assert response.status_code == 413
    assert router.notices == []


async def test_a_body_just_under_the_limit_is_read(
    http: httpx.AsyncClient, router: FakeRouter
) -> None:
    payload = event()
    payload["padding"] = ""
    size = len(encode(payload))
    payload["padding"] = "x" * (4096 - size)
    body, header = signed(payload)
    assert len(body) == 4096
    assert (await post(http, body, header)).status_code == 200
    assert len(router.notices) == 1


async def test_temporal_unavailable_is_503_so_dfns_retries(
    http: httpx.AsyncClient, router: FakeRouter, receiver: WebhookReceiver
) -> None:
    router.unavailable = True
    response = await post(http, *signed(event()))
    assert response.status_code == 503
    assert receiver.stats["unavailable"] == 1


async def test_the_rotation_secret_is_accepted(router: FakeRouter) -> None:
    receiver = WebhookReceiver(StaticSecrets(SECRET, OLD_SECRET), router)
    assert (await receiver.handle(*signed(event(), OLD_SECRET))).status == 200
    assert (await receiver.handle(*signed(event(), SECRET))).status == 200
    assert (await receiver.handle(*signed(event(), "whs-third"))).status == 401
    assert len(router.notices) == 2


async def test_a_rotation_on_disk_is_picked_up_without_restart(
    tmp_path: Path, router: FakeRouter
) -> None:
    path = tmp_path / "webhook.json"
    record_webhook(path, webhook_id="wh-1", url="http://x/", events=[], secret=SecretStr(SECRET))
    receiver = WebhookReceiver(SecretStore(path), router)
    assert (await receiver.handle(*signed(event(), SECRET))).status == 200
    new = "whs-the-next-secret-abcdefghijklmnop"
    record_webhook(path, webhook_id="wh-2", url="http://x/", events=[], secret=SecretStr(new))
    # Same second and size as before would hide the change from a stat; make sure it shows.
    os.utime(path, ns=(1, 1))
    assert (await receiver.handle(*signed(event(), new))).status == 200
    # The replaced secret is still accepted while its events drain.
    assert (await receiver.handle(*signed(event(), SECRET))).status == 200
    assert len(router.notices) == 3


async def test_no_secret_at_all_is_503_not_401(tmp_path: Path, router: FakeRouter) -> None:
    receiver = WebhookReceiver(SecretStore(tmp_path / "none.json"), router)
    reply = await receiver.handle(*signed(event()))
    assert reply.status == 503
    assert router.notices == []


async def test_health_reports_counts_only(
    http: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await post(http, *signed(event()))
    await post(http, b"{}", None)
    response = await http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"delivered": 1, "rejected:missing-signature-header": 1}
    assert SECRET not in json.dumps(body)


async def test_wrong_method_and_path(http: httpx.AsyncClient) -> None:
    assert (await http.get(DEFAULT_PATH)).status_code == 405
    assert (await http.post("/elsewhere", content=b"{}")).status_code == 404
