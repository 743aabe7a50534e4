"""The secret file: owner-only, atomic, rotation-friendly, and never shown."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr

from signgate.webhook.secrets import (
    SecretFile,
    SecretFileError,
    SecretStore,
    StoredWebhook,
    read_secret_file,
    record_webhook,
    write_secret_file,
)
from tests.webhook.support import OLD_SECRET, SECRET


def record(path: Path, webhook_id: str, secret: str) -> None:
    record_webhook(
        path,
        webhook_id=webhook_id,
        url="https://hooks.example.com/webhooks/dfns",
        events=["wallet.signature.signed"],
        secret=SecretStr(secret),
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_the_file_is_owner_only_in_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "webhook.json"
    record(path, "wh-1", SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["current"]["secret"] == SECRET
    assert document["current"]["webhookId"] == "wh-1"
    assert document["previous"] is None
    # No temporary file is left behind.
    assert [p.name for p in path.parent.iterdir()] == ["webhook.json"]


def test_registering_again_keeps_exactly_one_previous(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    record(path, "wh-1", OLD_SECRET)
    record(path, "wh-2", SECRET)
    content = read_secret_file(path)
    assert content is not None
    assert content.current.webhook_id == "wh-2"
    assert content.previous is not None and content.previous.webhook_id == "wh-1"
    assert [s.get_secret_value() for s in content.secrets()] == [SECRET, OLD_SECRET]
    record(path, "wh-3", "whs-third")
    content = read_secret_file(path)
    assert content is not None and content.previous is not None
    assert content.previous.webhook_id == "wh-2"
    assert OLD_SECRET not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    record(path, "wh-1", SECRET)
    content = read_secret_file(path)
    store = SecretStore(path, extra=[SecretStr("whs-extra")])
    assert SECRET not in repr(content) and SECRET not in str(content)
    assert SECRET not in repr(store.secrets())
    assert "whs-extra" not in repr(store.secrets())


def test_the_store_merges_file_and_configured_secrets(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    record(path, "wh-1", SECRET)
    store = SecretStore(path, extra=[SecretStr(SECRET), SecretStr("whs-extra"), None])
    assert [s.get_secret_value() for s in store.secrets()] == [SECRET, "whs-extra"]
    assert SecretStore(None, extra=[SecretStr("")]).secrets() == ()


def test_a_missing_file_is_no_secrets_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    store = SecretStore(path)
    assert store.secrets() == ()
    assert store.refresh() is False
    record(path, "wh-1", SECRET)
    assert store.refresh() is True
    assert [s.get_secret_value() for s in store.secrets()] == [SECRET]
    assert store.refresh() is False


def test_a_broken_edit_keeps_the_secrets_read_before(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    record(path, "wh-1", SECRET)
    store = SecretStore(path)
    path.write_text("{ half a file")
    with structlog.testing.capture_logs() as logs:
        assert store.refresh() is False
    assert [s.get_secret_value() for s in store.secrets()] == [SECRET]
    assert any(entry["event"] == "webhook.secret_file_invalid" for entry in logs)
    assert SECRET not in json.dumps(logs, default=str)


def test_loose_permissions_are_warned_about(tmp_path: Path) -> None:
    path = tmp_path / "webhook.json"
    record(path, "wh-1", SECRET)
    path.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        SecretStore(path)
    assert any(entry["event"] == "webhook.secret_file_permissions" for entry in logs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not a JSON webhook secret file"),
        ('{"version": 9}', "expected a version 1"),
        ('{"version": 1, "current": {"webhookId": "wh-1"}}', "current.secret"),
        ('{"version": 1, "current": {"secret": "s"}}', "current.webhookId"),
    ],
)
def test_invalid_files_are_explained_without_their_content(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "webhook.json"
    path.write_text(text)
    with pytest.raises(SecretFileError, match=message) as info:
        read_secret_file(path)
    assert str(path) in str(info.value)


def test_an_unusable_place_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = blocker / "webhook.json"
    with pytest.raises(SecretFileError, match="cannot read"):
        record(path, "wh-1", SECRET)
    content = SecretFile(
        current=StoredWebhook("wh-1", "https://x/", (), SecretStr(SECRET), "2025-01-01")
    )
    with pytest.raises(SecretFileError, match="cannot write") as info:
        write_secret_file(path, content)
    assert SECRET not in str(info.value)
