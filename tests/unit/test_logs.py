"""One log shape for every process, with secrets redacted before anything is written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from signgate.logs import REDACTED, configure_logging, get_logger, is_secret_key, scrub_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1cy0xMjMifQ.c2lnbmF0dXJl"
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH\n-----END PRIVATE KEY-----"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_when_not_a_tty_with_event_level_and_time() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    get_logger("signgate.test").info("signature.submitted", signature_id="sig-1")
    [line] = _lines(out)
    assert line["event"] == "signature.submitted"
    assert line["signature_id"] == "sig-1"
    assert line["level"] == "info"
    assert line["logger"] == "signgate.test"
    assert str(line["timestamp"]).endswith("Z")


def test_console_on_a_tty() -> None:
    out = _Tty()
    configure_logging(stream=out)
    get_logger().info("worker.started", task_queue="q")
    text = out.getvalue()
    assert "worker.started" in text
    assert "task_queue=q" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_secret_fields_and_embedded_secrets_are_redacted() -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    get_logger().info(
        "dfns.call",
        auth_token="abc",
        headers={"Authorization": f"Bearer {JWT}", "X-DFNS-USERACTION": "ua-token"},
        webhook_secret="whs-1",
        private_key_pem=PEM,
        note=f"failed with token {JWT} and key {PEM}",
        token_id="to-123",
        next_page_token="cursor",
    )
    [line] = _lines(out)
    raw = out.getvalue()
    for secret in ("abc", JWT, "ua-token", "whs-1", "MC4CAQAw"):
        assert secret not in raw
    assert line["auth_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "X-DFNS-USERACTION": REDACTED}
    # Identifiers and cursors are not secrets and stay readable.
    assert line["token_id"] == "to-123"
    assert line["next_page_token"] == "cursor"


def test_stdlib_logs_are_routed_and_redacted() -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    # A logger name of our own: servers such as uvicorn set their loggers' levels.
    logging.getLogger("thirdparty.lib").warning("client sent Bearer %s", JWT)
    [line] = _lines(out)
    assert line["logger"] == "thirdparty.lib"
    assert JWT not in out.getvalue()
    assert REDACTED in str(line["event"])


def test_exception_text_is_scrubbed() -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    try:
        raise RuntimeError(f"upstream echoed {JWT}")
    except RuntimeError:
        get_logger().exception("call.failed")
    assert JWT not in out.getvalue()
    assert "RuntimeError" in out.getvalue()


def test_level_filter_and_bad_level() -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="WARNING")
    get_logger().info("hidden")
    get_logger().warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="chatty")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("authToken", True),
        ("X-DFNS-USERACTION", True),
        ("secret", True),
        ("privateKey", True),
        ("api_key", True),
        ("tokenId", False),
        ("credential_id", False),
        ("paginationToken", False),
        ("status", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_scrub_text_leaves_ordinary_text() -> None:
    assert scrub_text("sig-abc signed with recid 1") == "sig-abc signed with recid 1"
