"""WebhookService configuration, validation, events listing and faults (service level)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from signgate.sandbox.clock import Clock
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.webhooks import WebhookFaults, WebhookService, event_kinds

FIXTURES = Path(__file__).parent.parent / "fixtures" / "spec"
WEBHOOK_ID = re.compile(r"^wh-[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{14,16}$")
SECRET = re.compile(r"^whs-[A-Za-z0-9]{32}$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def spec_validator(name: str) -> Any:
    text = resources.files("signgate.sandbox").joinpath("schemas/webhooks.json").read_text()
    defs = json.loads(text)["$defs"]
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})


@pytest.fixture
def clock() -> Clock:
    return Clock(scale=1e-9)  # effectively frozen; tests move it with advance()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "sandbox.db")
    yield database
    database.close()


@pytest.fixture
async def service(db: Database, clock: Clock) -> AsyncIterator[WebhookService]:
    webhooks = WebhookService(db, clock)
    yield webhooks
    await webhooks.aclose()


def test_shipped_slices_match_the_independently_vendored_spec() -> None:
    pairs = {
        "CreateWebhookRequest": "webhook_create_request",
        "CreateWebhookResponse": "webhook_create_response",
        "UpdateWebhookRequest": "webhook_update_request",
        "GetWebhookResponse": "webhook_get_response",
        "ListWebhooksResponse": "webhook_list_response",
        "GetWebhookEventResponse": "webhook_event_get_response",
        "ListWebhookEventsResponse": "webhook_event_list_response",
    }
    text = resources.files("signgate.sandbox").joinpath("schemas/webhooks.json").read_text()
    shipped = json.loads(text)["$defs"]
    for name, fixture in pairs.items():
        vendored = json.loads((FIXTURES / f"{fixture}.json").read_text())
        assert vendored["source"]["version"] == "1.578.2"
        mine = {key: value for key, value in shipped[name].items() if key != "x-source"}
        assert mine == vendored["schema"], name
    assert "wallet.signature.signed" in event_kinds()
    assert "*" not in event_kinds()


def test_create_returns_the_secret_once(service: WebhookService) -> None:
    created = service.create(
        {"url": "https://example.test/hook", "events": ["wallet.signature.signed"]}
    )
    spec_validator("CreateWebhookResponse").validate(created)
    assert WEBHOOK_ID.match(created["id"])
    assert SECRET.match(created["secret"])
    assert created["status"] == "Enabled"
    assert created["events"] == ["wallet.signature.signed"]
    assert "description" not in created
    assert DATE.match(created["dateCreated"])
    assert created["dateCreated"] == created["dateUpdated"]

    fetched = service.get(created["id"])
    spec_validator("GetWebhookResponse").validate(fetched)
    assert "secret" not in fetched
    assert fetched == {key: value for key, value in created.items() if key != "secret"}
    listed = service.list()
    spec_validator("ListWebhooksResponse").validate(listed)
    assert listed == {"items": [fetched]}

    other = service.create(
        {
            "url": "http://127.0.0.1:9/x",
            "events": ["*"],
            "status": "Disabled",
            "description": "né pour échouer",
        }
    )
    assert other["secret"] != created["secret"]
    assert other["status"] == "Disabled"
    assert service.get(other["id"])["description"] == "né pour échouer"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "request body must be a JSON object"),
        ({"events": ["*"]}, "url is required"),
        ({"url": "https://a.test"}, "events is required"),
        ({"url": "https://a.test", "events": []}, "events must contain at least 1 item"),
        ({"url": "https://a.test", "events": ["wallet.nope"]}, "events[0] must be one of"),
        ({"url": "https://a.test", "events": "*"}, "events must be of type array"),
        ({"url": 5, "events": ["*"]}, "url must be of type string"),
        ({"url": "https://a.test", "events": ["*"], "secret": "x"}, "secret is not an allowed"),
        ({"url": "https://a.test", "events": ["*"], "status": "On"}, "status must be one of"),
        (
            {"url": "https://a.test", "events": ["*"], "description": "x" * 257},
            "description must be at most 256 characters",
        ),
        ({"url": "ftp://a.test/x", "events": ["*"]}, "url must be a valid http or https URL"),
        ({"url": "not a url", "events": ["*"]}, "url must be a valid http or https URL"),
    ],
)
def test_create_rejects_bad_bodies_naming_the_field(
    service: WebhookService, body: Any, message: str
) -> None:
    with pytest.raises(SandboxError) as caught:
        service.create(body)
    assert caught.value.status == 400
    assert caught.value.message.startswith(message), caught.value.message
    assert service.list() == {"items": []}


def test_status_enum_error_lists_the_values(service: WebhookService) -> None:
    with pytest.raises(SandboxError) as caught:
        service.create({"url": "https://a.test", "events": ["*"], "status": "On"})
    assert caught.value.message == "status must be one of Enabled, Disabled, got 'On'"
    assert caught.value.details == {"field": "status", "allowed": ["Enabled", "Disabled"]}


def test_event_kind_error_points_at_the_allowed_values(service: WebhookService) -> None:
    with pytest.raises(SandboxError) as caught:
        service.create({"url": "https://a.test", "events": ["*", "wallet.nope"]})
    assert caught.value.message == (
        "events[1] must be one of the 30 values in details.allowed, got 'wallet.nope'"
    )
    assert caught.value.details is not None
    assert caught.value.details["field"] == "events[1]"
    assert set(caught.value.details["allowed"]) == {*event_kinds(), "*"}


def test_update_replaces_given_fields(service: WebhookService, clock: Clock) -> None:
    created = service.create({"url": "https://a.test/1", "events": ["*"]})
    clock.advance(5)
    updated = service.update(
        created["id"],
        {"url": "https://b.test/2", "events": ["policy.triggered"], "description": "moved"},
    )
    spec_validator("GetWebhookResponse").validate(updated)
    assert updated["url"] == "https://b.test/2"
    assert updated["events"] == ["policy.triggered"]
    assert updated["description"] == "moved"
    assert updated["status"] == "Enabled"
    assert updated["dateCreated"] == created["dateCreated"]
    assert updated["dateUpdated"] > created["dateUpdated"]
    assert "secret" not in updated
    assert service.get(created["id"]) == updated
    assert service.update(created["id"], {"status": "Disabled"})["status"] == "Disabled"

    for body, message in [
        ({"events": []}, "events must contain at least 1 item"),
        ({"id": "wh-x"}, "id is not an allowed field"),
        ({"url": "mailto:x@y.z"}, "url must be a valid http or https URL"),
    ]:
        with pytest.raises(SandboxError) as caught:
            service.update(created["id"], body)
        assert caught.value.status == 400
        assert caught.value.message.startswith(message)
    with pytest.raises(SandboxError) as missing:
        service.update("wh-00000-00000-0000000000000000", {"status": "Enabled"})
    assert missing.value.status == 404


def test_delete(service: WebhookService) -> None:
    created = service.create({"url": "https://a.test/1", "events": ["*"]})
    deleted = service.delete(created["id"])
    spec_validator("DeleteWebhookResponse").validate(deleted)
    assert deleted == {"deleted": True}
    calls: list[Callable[[], object]] = [
        lambda: service.get(created["id"]),
        lambda: service.delete(created["id"]),
        lambda: service.list_events(created["id"]),
    ]
    for call in calls:
        with pytest.raises(SandboxError) as caught:
            call()
        assert caught.value.status == 404
        assert caught.value.details == {"webhookId": created["id"]}


def test_list_pages_newest_first(service: WebhookService) -> None:
    ids = [service.create({"url": f"https://a.test/{n}", "events": ["*"]})["id"] for n in range(5)]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = service.list(limit="2", pagination_token=token)
        spec_validator("ListWebhooksResponse").validate(page)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        token = page.get("nextPageToken")
        if token is None:
            break
    assert seen == ids[::-1]
    assert pages == 3
    assert [item["id"] for item in service.list(limit=200)["items"]] == ids[::-1]

    for limit in (0, 201, "0", "abc", "-1", True):
        with pytest.raises(SandboxError) as caught:
            service.list(limit=limit)
        assert caught.value.status == 400
        assert "limit" in caught.value.message
    for bad_token in ("!!!", "e30", "bm90IGpzb24"):
        with pytest.raises(SandboxError) as caught:
            service.list(pagination_token=bad_token)
        assert caught.value.message == "paginationToken is invalid"


def test_events_list_validates_its_query(service: WebhookService) -> None:
    created = service.create({"url": "https://a.test/1", "events": ["*"]})
    assert service.list_events(created["id"]) == {"items": []}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "key.signature.signed"}, "kind must be a webhook event kind"),
        ({"delivery_failed": "yes"}, "deliveryFailed must be true or false"),
        ({"limit": 0}, "limit must be an integer from 1 to 200"),
        ({"limit": "201"}, "limit must be an integer from 1 to 200"),
        ({"pagination_token": "%%%"}, "paginationToken is invalid"),
    ]
    for query, message in cases:
        with pytest.raises(SandboxError) as caught:
            service.list_events(created["id"], **query)
        assert caught.value.status == 400
        assert caught.value.message.startswith(message)
    with pytest.raises(SandboxError) as missing:
        service.get_event(created["id"], "whe-00000-00000-0000000000000000")
    assert missing.value.status == 404


def test_publish_queues_per_subscribed_enabled_webhook(
    service: WebhookService, db: Database
) -> None:
    signed = service.create({"url": "https://a.test/s", "events": ["wallet.signature.signed"]})
    everything = service.create({"url": "https://a.test/all", "events": ["*"]})
    service.create({"url": "https://a.test/p", "events": ["policy.triggered"]})
    service.create({"url": "https://a.test/off", "events": ["*"], "status": "Disabled"})

    service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-1"}})
    queued = service.outbox()
    assert sorted(entry["webhookId"] for entry in queued) == sorted(
        [signed["id"], everything["id"]]
    )
    assert all(entry["deliveryAttempt"] == 1 and not entry["inFlight"] for entry in queued)
    assert all("retryOf" not in entry for entry in queued)

    with pytest.raises(ValueError, match="unknown webhook event kind"):
        service.publish("key.signature.signed", {})

    # publish joins the caller's transaction: a rollback takes the rows with it.
    with pytest.raises(RuntimeError), db.transaction():
        service.publish("wallet.signature.signed", {"signatureRequest": {"id": "sig-2"}})
        raise RuntimeError("caller failed")
    assert len(service.outbox()) == 2


def test_reset_forgets_everything(service: WebhookService) -> None:
    created = service.create({"url": "https://a.test/1", "events": ["*"]})
    service.publish("policy.triggered", {"policyEvaluation": {"id": "plce-1"}})
    service.set_faults(WebhookFaults(loss_rate=0.5, seed=1))
    service.reset()
    assert service.list() == {"items": []}
    assert service.outbox() == []
    assert service.faults == WebhookFaults(loss_rate=0.5, seed=1)
    with pytest.raises(SandboxError):
        service.get(created["id"])


def test_faults_from_and_to_json() -> None:
    faults = WebhookFaults.from_dict(
        {"lossRate": 0.25, "duplicateRate": 1, "reorderWindow": 3, "seed": 9}
    )
    assert faults == WebhookFaults(loss_rate=0.25, duplicate_rate=1, reorder_window=3, seed=9)
    assert WebhookFaults.from_dict(faults.to_dict()) == faults
    cases: list[tuple[dict[str, Any], str]] = [
        ({"lossRate": 1.5}, "loss_rate must be a number from 0 to 1"),
        ({"duplicateRate": "x"}, "duplicate_rate must be a number from 0 to 1"),
        ({"reorderWindow": -1}, "reorder_window must be an integer >= 0"),
        ({"reorderHoldSeconds": -2}, "reorder_hold_seconds must be a number >= 0"),
        ({"seed": "abc"}, "seed must be an integer or null"),
        ({"shuffle": True}, "shuffle is not an allowed field"),
    ]
    for body, message in cases:
        with pytest.raises(SandboxError) as caught:
            WebhookFaults.from_dict(body)
        assert caught.value.status == 400
        assert caught.value.message == message
