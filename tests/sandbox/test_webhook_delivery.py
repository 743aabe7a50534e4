"""WebhookService delivery over real HTTP on 127.0.0.1: signatures, retries, restarts, faults."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.webhooks import (
    PING_KIND,
    SIGNATURE_HEADER,
    WebhookFaults,
    WebhookService,
    encode_body,
)
from tests.support.eventually import eventually
from tests.support.ports import free_port
from tests.support.recorder import HttpRecorder

EVENT_ID = re.compile(r"^whe-[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{14,16}$")
SCHEDULE = (60.0, 720.0, 7200.0, 86400.0)


def spec_validator(name: str) -> Any:
    text = resources.files("signgate.sandbox").joinpath("schemas/webhooks.json").read_text()
    defs = json.loads(text)["$defs"]
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})


def verify(request: Any, secret: str) -> bool:
    """What a receiver does: HMAC-SHA256 over the raw received bytes, constant-time compare."""
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers.get(SIGNATURE_HEADER.lower(), ""))


def date_of(ts: float) -> str:
    return isoformat(datetime.fromtimestamp(ts, tz=UTC))


@pytest.fixture
def clock() -> Clock:
    return Clock(scale=1e-9)  # effectively frozen; tests move it with advance()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sandbox.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = Database(db_path)
    yield database
    database.close()


@pytest.fixture
async def service(db: Database, clock: Clock) -> AsyncIterator[WebhookService]:
    webhooks = WebhookService(db, clock)
    yield webhooks
    await webhooks.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[HttpRecorder]:
    async with HttpRecorder() as started:
        yield started


@contextlib.asynccontextmanager
async def dispatcher(service: WebhookService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_delivery_is_signed_compact_json_in_dfns_shape(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    webhook = service.create({"url": receiver.url("/hook"), "events": ["wallet.signature.signed"]})
    data = {"signatureRequest": {"id": "sig-1", "status": "Signed", "note": "reçu ✓"}}
    published_at = clock.now_ts()
    service.publish("wallet.signature.signed", data)
    assert await service.dispatch_due() == 1

    [request] = receiver.received
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers[SIGNATURE_HEADER.lower()].startswith("sha256=")
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", request.headers[SIGNATURE_HEADER.lower()])
    assert verify(request, webhook["secret"])
    assert not verify(request, webhook["secret"] + "x")
    body = request.json()
    # The bytes on the wire are exactly the compact, UTF-8 serialisation.
    assert request.body == encode_body(body)
    assert "reçu ✓".encode() in request.body
    spec_validator("WebhookDelivery").validate(body)
    assert list(body) == ["id", "kind", "date", "data", "timestampSent", "deliveryAttempt"]
    assert EVENT_ID.match(body["id"])
    assert body["kind"] == "wallet.signature.signed"
    assert body["data"] == data
    assert body["date"] == date_of(published_at)
    assert body["timestampSent"] == int(published_at)
    assert body["deliveryAttempt"] == 1

    events = service.list_events(webhook["id"])
    spec_validator("ListWebhookEventsResponse").validate(events)
    [event] = events["items"]
    assert event == {**body, "status": "200", "deliveryFailed": False}
    stored = service.get_event(webhook["id"], body["id"])
    spec_validator("GetWebhookEventResponse").validate(stored)
    assert stored == event
    assert service.outbox() == []


async def test_subscriptions_select_the_receivers(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    def create(path: str, events: list[str], status: str = "Enabled") -> str:
        body = {"url": receiver.url(path), "events": events, "status": status}
        webhook_id: str = service.create(body)["id"]
        return webhook_id

    create("/signed", ["wallet.signature.signed"])
    create("/all", ["*"])
    create("/policy", ["policy.triggered", "policy.approval.pending"])
    create("/disabled", ["*"], status="Disabled")
    paused = create("/paused", ["*"])
    service.update(paused, {"status": "Disabled"})

    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    service.publish("policy.triggered", {"policyEvaluation": {"id": "plce-1"}})
    service.publish("wallet.signature.requested", {"signatureRequest": {"id": "sig-2"}})
    assert await service.dispatch_due() == 5

    def kinds(path: str) -> list[str]:
        return sorted(request.json()["kind"] for request in receiver.at(path))

    assert kinds("/signed") == ["wallet.signature.signed"]
    assert kinds("/all") == [
        "policy.triggered",
        "wallet.signature.requested",
        "wallet.signature.signed",
    ]
    assert kinds("/policy") == ["policy.triggered"]
    assert receiver.at("/disabled") == []
    assert receiver.at("/paused") == []


async def test_failed_deliveries_follow_the_retry_schedule_then_stop(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    webhook = service.create({"url": receiver.url("/down"), "events": ["*"]})
    receiver.respond("/down", *[500] * 5)
    service.publish("wallet.signature.failed", {"signatureRequest": {"id": "sig-9"}})
    first_ts = clock.now_ts()
    assert await service.dispatch_due() == 1

    elapsed = 0.0
    for delay in SCHEDULE:
        clock.advance(delay - elapsed - 1)
        assert await service.dispatch_due() == 0, f"retry before +{delay}s"
        clock.advance(1)
        assert await service.dispatch_due() == 1, f"no retry at +{delay}s"
        elapsed = delay
    clock.advance(30 * 86400)
    assert await service.dispatch_due() == 0
    assert service.outbox() == []

    bodies = [request.json() for request in receiver.at("/down")]
    assert [body["deliveryAttempt"] for body in bodies] == [1, 2, 3, 4, 5]
    assert len({body["id"] for body in bodies}) == 5
    assert "retryOf" not in bodies[0]
    assert [body["retryOf"] for body in bodies[1:]] == [body["id"] for body in bodies[:-1]]
    assert {body["date"] for body in bodies} == {date_of(first_ts)}
    assert all(body["data"] == {"signatureRequest": {"id": "sig-9"}} for body in bodies)
    sent = [0.0, *SCHEDULE]
    assert [body["timestampSent"] for body in bodies] == [int(first_ts + s) for s in sent]
    assert all(verify(request, webhook["secret"]) for request in receiver.at("/down"))

    events = service.list_events(webhook["id"], delivery_failed="true")["items"]
    spec_validator("ListWebhookEventsResponse").validate({"items": events})
    assert [event["id"] for event in events] == [body["id"] for body in reversed(bodies)]
    for event in events:
        assert event["status"] == "500"
        assert event["error"] == "Internal Server Error"
        assert event["deliveryFailed"] is True
    by_attempt = {event["deliveryAttempt"]: event for event in events}
    for attempt, delay in enumerate(SCHEDULE, start=1):
        assert by_attempt[attempt]["nextAttemptDate"] == date_of(first_ts + delay)
    assert "nextAttemptDate" not in by_attempt[5]
    assert service.list_events(webhook["id"], delivery_failed=False) == {"items": []}


async def test_dispatcher_retries_on_a_scaled_clock_until_the_receiver_recovers(
    db: Database, receiver: HttpRecorder
) -> None:
    clock = Clock()
    clock.set_scale(10_000)  # +1 min of sandbox time is 6 ms of real time
    service = WebhookService(db, clock)
    webhook = service.create({"url": receiver.url("/flaky"), "events": ["*"]})
    receiver.respond("/flaky", 503)
    async with dispatcher(service):
        # publish from a worker thread: the dispatcher is woken thread-safely
        await asyncio.to_thread(
            service.publish, "policy.approval.pending", {"approval": {"id": "ap-1"}}
        )
        await receiver.wait_for(2, "/flaky")
        await eventually(lambda: len(service.list_events(webhook["id"])["items"]) == 2)
    first, second = (request.json() for request in receiver.at("/flaky"))
    assert second["retryOf"] == first["id"]
    assert second["deliveryAttempt"] == 2
    assert second["timestampSent"] >= first["timestampSent"] + 60
    newest, oldest = service.list_events(webhook["id"])["items"]
    assert (newest["id"], newest["status"], newest["deliveryFailed"]) == (
        second["id"],
        "200",
        False,
    )
    assert "nextAttemptDate" not in newest
    assert (oldest["status"], oldest["error"], oldest["deliveryFailed"]) == (
        "503",
        "Service Unavailable",
        True,
    )
    assert oldest["nextAttemptDate"]
    await service.aclose()


async def test_dispatcher_wakes_when_the_clock_is_advanced(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    service.create({"url": receiver.url("/later"), "events": ["*"]})
    receiver.respond("/later", 500)
    async with dispatcher(service):
        service.publish("wallet.signature.requested", {"signatureRequest": {"id": "sig-1"}})
        await receiver.wait_for(1, "/later")
        await eventually(lambda: any(e["deliveryAttempt"] == 2 for e in service.outbox()))
        clock.advance(60)
        service.wake()
        await receiver.wait_for(2, "/later")
    assert receiver.at("/later")[1].json()["deliveryAttempt"] == 2


async def test_no_response_is_a_failed_attempt(db: Database, clock: Clock) -> None:
    service = WebhookService(db, clock, delivery_timeout=0.2)
    async with HttpRecorder() as receiver:
        receiver.hold("/stuck")
        stuck = service.create({"url": receiver.url("/stuck"), "events": ["*"]})
        refused = service.create({"url": f"http://127.0.0.1:{free_port()}/gone", "events": ["*"]})
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
        assert await service.dispatch_due() == 2
        [timed_out] = service.list_events(stuck["id"])["items"]
        [no_connection] = service.list_events(refused["id"])["items"]
        assert (timed_out["status"], timed_out["deliveryFailed"]) == ("ETIMEDOUT", True)
        assert timed_out["error"] == "no response within 0.2 seconds"
        assert (no_connection["status"], no_connection["deliveryFailed"]) == ("ECONNREFUSED", True)
        assert no_connection["error"]
        assert {entry["deliveryAttempt"] for entry in service.outbox()} == {2}
    await service.aclose()


async def test_redirects_and_other_statuses_fail(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    webhook = service.create({"url": receiver.url("/odd"), "events": ["*"]})
    receiver.respond("/odd", 204, 302)
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-2"}})
    assert await service.dispatch_due() == 2
    statuses = sorted(event["status"] for event in service.list_events(webhook["id"])["items"])
    assert statuses == ["204", "302"]
    assert len(receiver.at("/odd")) == 2  # the 302 was not followed


async def test_retry_due_while_disabled_is_cancelled_and_reenabling_keeps_it(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    dropped = service.create({"url": receiver.url("/dropped"), "events": ["*"]})
    kept = service.create({"url": receiver.url("/kept"), "events": ["*"]})
    receiver.respond("/dropped", 500)
    receiver.respond("/kept", 500)
    service.publish("wallet.signature.rejected", {"signatureRequest": {"id": "sig-1"}})
    assert await service.dispatch_due() == 2
    service.update(dropped["id"], {"status": "Disabled"})
    service.update(kept["id"], {"status": "Disabled"})
    service.update(kept["id"], {"status": "Enabled"})
    clock.advance(60)
    assert await service.dispatch_due() == 1
    assert len(receiver.at("/dropped")) == 1
    assert [request.json()["deliveryAttempt"] for request in receiver.at("/kept")] == [1, 2]
    [first] = service.list_events(dropped["id"])["items"]
    assert first["deliveryFailed"] is True
    assert "nextAttemptDate" not in first  # Dfns: no nextAttemptDate = no more attempts
    service.update(dropped["id"], {"status": "Enabled"})
    clock.advance(86400 * 2)
    assert await service.dispatch_due() == 0
    assert len(receiver.at("/dropped")) == 1


async def test_deleting_a_webhook_drops_its_pending_attempts(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    webhook = service.create({"url": receiver.url("/bye"), "events": ["*"]})
    receiver.respond("/bye", 500)
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    await service.dispatch_due()
    assert len(service.outbox()) == 1
    service.delete(webhook["id"])
    assert service.outbox() == []
    clock.advance(3600)
    assert await service.dispatch_due() == 0


async def test_a_new_service_on_the_same_file_delivers_the_outbox(
    db_path: Path, receiver: HttpRecorder
) -> None:
    clock = Clock(scale=1e-9)
    before = Database(db_path)
    first = WebhookService(before, clock)
    webhook = first.create({"url": receiver.url("/r"), "events": ["*"]})
    receiver.respond("/r", 500)
    first.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-retry"}})
    assert await first.dispatch_due() == 1  # fails: its retry is now pending in the outbox
    first.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-new"}})
    first.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-inflight"}})
    # A dispatcher that died mid-delivery leaves its row claimed.
    before.execute(
        "UPDATE webhook_outbox SET claim = 'dead-process' WHERE data LIKE '%sig-inflight%'"
    )
    await first.aclose()
    before.close()

    after = Database(db_path)
    second = WebhookService(after, Clock(offset_seconds=clock.offset_seconds + 60))
    async with dispatcher(second):
        await receiver.wait_for(4, "/r")
        await eventually(lambda: not second.outbox())
    bodies = [request.json() for request in receiver.at("/r")]
    by_request = {body["data"]["signatureRequest"]["id"]: body for body in bodies[1:]}
    assert set(by_request) == {"sig-retry", "sig-new", "sig-inflight"}
    assert by_request["sig-retry"]["retryOf"] == bodies[0]["id"]
    assert by_request["sig-retry"]["deliveryAttempt"] == 2
    assert by_request["sig-new"]["deliveryAttempt"] == 1
    assert by_request["sig-inflight"]["deliveryAttempt"] == 1
    assert len(second.list_events(webhook["id"])["items"]) == 4
    await second.aclose()
    after.close()


async def test_a_slow_receiver_does_not_hold_back_the_others(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    service.create({"url": receiver.url("/slow"), "events": ["*"]})
    service.create({"url": receiver.url("/fast"), "events": ["*"]})
    release = receiver.hold("/slow")
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    delivering = asyncio.create_task(service.dispatch_due())
    # /slow was created first and is claimed first; /fast still arrives while /slow waits.
    await receiver.wait_for(1, "/fast")
    assert not delivering.done()
    release.set()
    assert await delivering == 2


def _approval_data(signature_id: str) -> dict[str, Any]:
    return {
        "approval": {
            "id": f"ap-{signature_id}",
            "status": "Approved",
            "activity": {"kind": "Wallets:Sign", "signatureRequest": {"id": signature_id}},
        }
    }


async def test_a_requests_events_wait_for_its_earlier_delivery_and_no_other_does(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    service.create({"url": receiver.url("/ordered"), "events": ["*"]})
    release = receiver.hold("/ordered")
    service.publish("policy.approval.resolved", _approval_data("sig-1"))
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-2"}})
    delivering = asyncio.create_task(service.dispatch_due())
    first = await receiver.wait_for(2, "/ordered")
    # sig-1's approval and sig-2's event are in flight together; sig-1's signed event is
    # claimed behind its approval and is not sent while the approval's delivery lasts.
    assert sorted(r.json()["kind"] for r in first) == [
        "policy.approval.resolved",
        "wallet.signature.signed",
    ]
    assert len(receiver.at("/ordered")) == 2
    release.set()
    assert await delivering == 3
    kinds = [r.json()["kind"] for r in receiver.at("/ordered")]
    assert kinds[-1] == "wallet.signature.signed" and len(kinds) == 3


async def test_a_busy_request_does_not_hold_back_the_requests_behind_it(
    db: Database, clock: Clock, receiver: HttpRecorder
) -> None:
    service = WebhookService(db, clock, max_concurrency=2)
    try:
        service.create({"url": receiver.url("/queue"), "events": ["*"]})
        release = receiver.hold("/queue")
        # sig-1's first event takes a slot; its next 20 wait behind it, ahead of sig-2's.
        for _ in range(21):
            service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-2"}})
        delivering = asyncio.create_task(service.dispatch_due())
        first = await receiver.wait_for(2, "/queue")
        ids = sorted(r.json()["data"]["signatureRequest"]["id"] for r in first)
        assert ids == ["sig-1", "sig-2"]
        release.set()
        assert await delivering == 22
    finally:
        await service.aclose()


async def test_every_request_has_its_approval_delivered_before_its_signature(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    service.create({"url": receiver.url("/burst"), "events": ["*"]})
    for n in range(40):
        service.publish("policy.approval.resolved", _approval_data(f"sig-{n}"))
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": f"sig-{n}"}})
    async with dispatcher(service):
        await receiver.wait_for(80, "/burst")
    seen: dict[str, list[str]] = {}
    for request in receiver.at("/burst"):
        body = request.json()
        data = body["data"]
        subject = data.get("signatureRequest") or data["approval"]["activity"]["signatureRequest"]
        seen.setdefault(subject["id"], []).append(body["kind"])
    assert len(seen) == 40
    assert all(
        kinds == ["policy.approval.resolved", "wallet.signature.signed"] for kinds in seen.values()
    )


async def test_each_row_is_sent_once_even_with_two_dispatch_paths(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    service.create({"url": receiver.url("/once"), "events": ["*"]})
    for n in range(40):
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": f"sig-{n}"}})
    async with dispatcher(service):
        made = await service.dispatch_due()
        await receiver.wait_for(40, "/once")
        await eventually(lambda: not service.outbox())
    ids = [request.json()["id"] for request in receiver.at("/once")]
    assert len(ids) == len(set(ids)) == 40
    assert 0 <= made <= 40


async def test_loss_fault_records_delivered_but_never_posts(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    webhook = service.create({"url": receiver.url("/lossy"), "events": ["*"]})
    service.set_faults(WebhookFaults(loss_rate=0.5, seed=7))
    for n in range(20):
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": f"sig-{n}"}})
    assert await service.dispatch_due() == 20

    draws = random.Random("7:loss")  # the documented stream for seed 7
    lost = {f"sig-{n}" for n in range(20) if draws.random() < 0.5}
    assert 0 < len(lost) < 20
    arrived = {r.json()["data"]["signatureRequest"]["id"] for r in receiver.at("/lossy")}
    assert arrived == {f"sig-{n}" for n in range(20)} - lost
    events = service.list_events(webhook["id"])["items"]
    assert len(events) == 20
    assert all(event["status"] == "200" and not event["deliveryFailed"] for event in events)
    assert service.outbox() == []  # a lost delivery is never retried


async def test_duplicate_fault_posts_the_same_bytes_twice(
    service: WebhookService, receiver: HttpRecorder
) -> None:
    webhook = service.create({"url": receiver.url("/dup"), "events": ["*"]})
    service.set_faults(WebhookFaults(duplicate_rate=1.0, seed=1))
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    assert await service.dispatch_due() == 1
    first, second = receiver.at("/dup")
    assert first.body == second.body
    assert first.headers[SIGNATURE_HEADER.lower()] == second.headers[SIGNATURE_HEADER.lower()]
    assert verify(second, webhook["secret"])
    assert len(service.list_events(webhook["id"])["items"]) == 1


async def test_reorder_fault_holds_back_and_shuffles_a_window(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    service.create({"url": receiver.url("/mixed"), "events": ["*"]})
    service.set_faults(WebhookFaults(reorder_window=4, reorder_hold_seconds=5, seed=3))
    for n in range(3):
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": f"sig-{n}"}})
    assert await service.dispatch_due() == 0  # held: the window is not full yet
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-3"}})
    assert await service.dispatch_due() == 4

    expected = list(range(4))
    random.Random("3:reorder").shuffle(expected)  # the documented stream
    assert expected != [0, 1, 2, 3]
    order = [r.json()["data"]["signatureRequest"]["id"] for r in receiver.at("/mixed")]
    assert order == [f"sig-{n}" for n in expected]

    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-4"}})
    assert await service.dispatch_due() == 0
    clock.advance(5)  # the oldest held delivery has waited long enough: send a short window
    assert await service.dispatch_due() == 1
    assert receiver.at("/mixed")[-1].json()["data"]["signatureRequest"]["id"] == "sig-4"


async def test_events_list_filters_and_pages(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    webhook = service.create({"url": receiver.url("/list"), "events": ["*"]})
    receiver.respond("/list", 200, 500, 200, 500, 200)
    published = [
        "wallet.signature.requested",
        "policy.triggered",
        "wallet.signature.signed",
        "policy.approval.pending",
        "wallet.signature.signed",
    ]
    for kind in published:
        service.publish(kind, {"n": kind})
        assert await service.dispatch_due() == 1
        clock.advance(1)
    sent = [request.json()["id"] for request in receiver.at("/list")]

    everything = service.list_events(webhook["id"])["items"]
    assert [event["id"] for event in everything] == sent[::-1]
    signed = service.list_events(webhook["id"], kind="wallet.signature.signed")["items"]
    assert [event["id"] for event in signed] == [sent[4], sent[2]]
    failed = service.list_events(webhook["id"], delivery_failed=True)["items"]
    assert [event["id"] for event in failed] == [sent[3], sent[1]]
    delivered = service.list_events(webhook["id"], delivery_failed="false")["items"]
    assert [event["id"] for event in delivered] == [sent[4], sent[2], sent[0]]
    both = service.list_events(webhook["id"], kind="policy.triggered", delivery_failed=True)
    assert [event["id"] for event in both["items"]] == [sent[1]]

    pages: list[list[str]] = []
    token: str | None = None
    while True:
        page = service.list_events(webhook["id"], limit=2, pagination_token=token)
        spec_validator("ListWebhookEventsResponse").validate(page)
        pages.append([event["id"] for event in page["items"]])
        token = page.get("nextPageToken")
        if token is None:
            break
    assert pages == [[sent[4], sent[3]], [sent[2], sent[1]], [sent[0]]]


async def test_events_older_than_the_retention_are_pruned(
    db: Database, clock: Clock, receiver: HttpRecorder
) -> None:
    service = WebhookService(db, clock, retention_days=31)
    webhook = service.create({"url": receiver.url("/old"), "events": ["*"]})
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-old"}})
    await service.dispatch_due()
    [old] = service.list_events(webhook["id"])["items"]
    clock.advance(30 * 86400)
    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-new"}})
    await service.dispatch_due()
    assert len(service.list_events(webhook["id"])["items"]) == 2
    clock.advance(2 * 86400)
    [remaining] = service.list_events(webhook["id"])["items"]
    assert remaining["data"] == {"signatureRequest": {"id": "sig-new"}}
    with pytest.raises(SandboxError) as caught:
        service.get_event(webhook["id"], old["id"])
    assert caught.value.status == 404
    await service.aclose()


async def test_ping_sends_an_unstored_signed_test_event(
    service: WebhookService, receiver: HttpRecorder, clock: Clock
) -> None:
    webhook = service.create(
        {"url": receiver.url("/ping"), "events": ["wallet.signature.signed"], "status": "Disabled"}
    )
    result = await service.ping(webhook["id"])
    spec_validator("PingWebhookResponse").validate(result)
    assert result == {"status": "200"}
    [request] = receiver.at("/ping")
    assert verify(request, webhook["secret"])
    body = request.json()
    assert request.body == encode_body(body)
    assert EVENT_ID.match(body["id"])
    assert body["kind"] == PING_KIND
    assert body["data"]["webhookId"] == webhook["id"]
    assert body["timestampSent"] == int(clock.now_ts())
    assert body["deliveryAttempt"] == 1
    assert service.list_events(webhook["id"]) == {"items": []}
    assert service.outbox() == []

    receiver.respond("/ping", 500)
    failed = await service.ping(webhook["id"])
    spec_validator("PingWebhookResponse").validate(failed)
    assert failed == {"status": "500", "error": "Internal Server Error"}
    with pytest.raises(SandboxError) as caught:
        await service.ping("wh-00000-00000-0000000000000000")
    assert caught.value.status == 404
