"""Webhook secrets: a JSON file (mode 0600) written by ``register``, read by the receiver.

The file holds the webhook registered last (``current``) and the one before it
(``previous``), so registering again rotates the secret without refusing events that the
old webhook still delivers or retries::

    {"version": 1,
     "current":  {"webhookId": "wh-...", "url": "...", "events": [...], "secret": "...",
                  "registeredAt": "..."},
     "previous": {... the same fields ...} | null}

It is written atomically (a temporary file created 0600 in the same directory, then
renamed), so the receiver never reads half a file. :class:`SecretStore` re-reads it when it
changes on disk, so a receiver picks up a rotation without a restart.

Secrets are :class:`~pydantic.SecretStr` everywhere in memory; nothing here logs or
``repr``-s a secret value, and error messages name the file, never its content.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from signgate.logs import get_logger

__all__ = [
    "SecretFile",
    "SecretFileError",
    "SecretStore",
    "StoredWebhook",
    "read_secret_file",
    "record_webhook",
    "write_secret_file",
]

_VERSION: Final = 1
_log = get_logger("signgate.webhook.secrets")


class SecretFileError(ValueError):
    """The secret file cannot be read or written; the message names the file and why."""


@dataclass(frozen=True)
class StoredWebhook:
    """One registered webhook and its signing secret."""

    webhook_id: str
    url: str
    events: tuple[str, ...]
    secret: SecretStr = field(repr=False)
    registered_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "webhookId": self.webhook_id,
            "url": self.url,
            "events": list(self.events),
            "secret": self.secret.get_secret_value(),
            "registeredAt": self.registered_at,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> StoredWebhook:
        if not isinstance(raw, dict):
            raise SecretFileError(f"{where} must be an object")
        secret = raw.get("secret")
        webhook_id = raw.get("webhookId")
        if not isinstance(secret, str) or not secret:
            raise SecretFileError(f"{where}.secret must be a non-empty string")
        if not isinstance(webhook_id, str) or not webhook_id:
            raise SecretFileError(f"{where}.webhookId must be a non-empty string")
        events = raw.get("events") or []
        return cls(
            webhook_id=webhook_id,
            url=str(raw.get("url") or ""),
            events=tuple(str(e) for e in events) if isinstance(events, list) else (),
            secret=SecretStr(secret),
            registered_at=str(raw.get("registeredAt") or ""),
        )


@dataclass(frozen=True)
class SecretFile:
    """The content of the secret file."""

    current: StoredWebhook
    previous: StoredWebhook | None = None

    def secrets(self) -> tuple[SecretStr, ...]:
        """Accepted secrets, the current one first."""
        found = [self.current.secret]
        if self.previous is not None:
            found.append(self.previous.secret)
        return tuple(found)


def read_secret_file(path: Path) -> SecretFile | None:
    """The file's content, or ``None`` when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretFileError(
            f"{path}: cannot read the webhook secret file ({exc.strerror})"
        ) from None
    try:
        raw = json.loads(text)
    except ValueError:
        raise SecretFileError(f"{path}: not a JSON webhook secret file") from None
    where = str(path)
    if not isinstance(raw, dict) or raw.get("version") != _VERSION:
        raise SecretFileError(f"{where}: expected a version {_VERSION} webhook secret file")
    current = StoredWebhook.from_json(raw.get("current"), f"{where}: current")
    previous_raw = raw.get("previous")
    previous = (
        None
        if previous_raw is None
        else StoredWebhook.from_json(previous_raw, f"{where}: previous")
    )
    return SecretFile(current=current, previous=previous)


def write_secret_file(path: Path, content: SecretFile) -> None:
    """Write ``content`` to ``path`` atomically, readable by the owner only (0600)."""
    document = {
        "version": _VERSION,
        "current": content.current.to_json(),
        "previous": content.previous.to_json() if content.previous is not None else None,
    }
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file 0600, so the secret is never readable by others, not
        # even for the moment between creation and a chmod.
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise SecretFileError(
            f"{path}: cannot write the webhook secret file ({exc.strerror})"
        ) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SecretFileError(
            f"{path}: cannot write the webhook secret file ({exc.strerror})"
        ) from None


def record_webhook(
    path: Path,
    *,
    webhook_id: str,
    url: str,
    events: Sequence[str],
    secret: SecretStr,
    now: datetime | None = None,
) -> SecretFile:
    """Make a newly created webhook current; the one it replaces becomes ``previous``.

    Returns what was written. The webhook registered before ``previous`` is forgotten: its
    events stop verifying, which is what retiring a secret means.
    """
    existing = read_secret_file(path)
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    current = StoredWebhook(
        webhook_id=webhook_id,
        url=url,
        events=tuple(events),
        secret=secret,
        registered_at=moment,
    )
    previous = existing.current if existing is not None else None
    content = SecretFile(current=current, previous=previous)
    write_secret_file(path, content)
    return content


class SecretStore:
    """The secrets a receiver accepts: the file's (current, previous) and any ``extra`` ones.

    :meth:`refresh` re-reads the file when its modification time or size changed; the
    receiver calls it when a signature does not verify, so a rotation done while it runs
    costs one ``stat`` on the failing request and nothing on the others.
    """

    def __init__(self, path: Path | None, extra: Sequence[SecretStr | None] = ()) -> None:
        self._path = path
        self._extra = tuple(s for s in extra if s is not None and s.get_secret_value())
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._file: SecretFile | None = None
        self.refresh()

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def file(self) -> SecretFile | None:
        """The secret file as last read (``None`` when there is none)."""
        return self._file

    def secrets(self) -> tuple[SecretStr, ...]:
        """Accepted secrets: the file's current, its previous, then the extra ones."""
        found: list[SecretStr] = list(self._file.secrets()) if self._file is not None else []
        for secret in self._extra:
            if all(secret.get_secret_value() != s.get_secret_value() for s in found):
                found.append(secret)
        return tuple(found)

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when the accepted secrets may have changed.

        A file that became unreadable or invalid keeps the secrets read before (logged):
        a bad edit must not lock out every delivery.
        """
        if self._path is None:
            return False
        with self._lock:
            try:
                info = self._path.stat()
            except FileNotFoundError:
                stamp = None
            except OSError as exc:
                _log.warning(
                    "webhook.secret_file_unreadable", path=str(self._path), error=exc.strerror
                )
                return False
            else:
                stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return False
            if stamp is not None:
                _warn_if_readable_by_others(self._path, info.st_mode)
            try:
                content = read_secret_file(self._path) if stamp is not None else None
            except SecretFileError as exc:
                _log.warning("webhook.secret_file_invalid", path=str(self._path), error=str(exc))
                return False
            self._stamp = stamp
            self._file = content
            _log.info(
                "webhook.secrets_loaded",
                path=str(self._path),
                webhook_id=content.current.webhook_id if content is not None else None,
                accepted=len(self.secrets()),
            )
            return True


def _warn_if_readable_by_others(path: Path, mode: int) -> None:
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning(
            "webhook.secret_file_permissions",
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
            advice="chmod 600 the file: it holds the webhook signing secret",
        )
