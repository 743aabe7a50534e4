"""Correctly signed bodies that are not Dfns events: a 4xx with a JSON reason, one warning, and
the receiver (real uvicorn, over HTTP) serves the next good event as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import structlog

from signgate.webhook.app import DEFAULT_MAX_BODY_BYTES, StaticSecrets, WebhookReceiver
from signgate.webhook.events import Notice
from signgate.webhook.routing import Delivery
from signgate.webhook.server import ReceiverServer
from signgate.webhook.verify import MAX_JSON_DEPTH, SIGNATURE_HEADER, nesting_depth
from tests.webhook.support import SECRET, encode, event, sign, signature_request, signed

MAX_BODY = DEFAULT_MAX_BODY_BYTES


class Router:
    """Counts what reaches routing (only good events should)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def deliver(self, notice: Notice) -> Delivery:
        self.notices.append(notice)
        return Delivery("delivered", "signalled", ("wf-1",))

    async def aclose(self) -> None:
        """Holds nothing back."""


@pytest.fixture
async def served() -> AsyncIterator[tuple[ReceiverServer, Router]]:
    router = Router()
    receiver = WebhookReceiver(StaticSecrets(SECRET), router, max_body_bytes=MAX_BODY)
    async with ReceiverServer(receiver) as server:
        yield server, router


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def with_data(raw: str) -> bytes:
    """A fresh signature event whose ``data`` is the JSON text ``raw``, spliced in as is."""
    body = encode(event(data={"placeholder": True}))
    return body.replace(b'{"placeholder":true}', raw.encode())


def deep_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def bodies() -> dict[str, tuple[Callable[[], bytes], int, str]]:
    """Every kind of bad body: how to build it (fresh timestamp), status, reason."""

    def payload(**changes: Any) -> bytes:
        return encode(event() | changes)

    return {
        "50,000 nested arrays": (lambda: with_data(nested(50_000)), 400, "nested-too-deep"),
        "50,000 nested objects": (lambda: with_data(deep_objects(50_000)), 400, "nested-too-deep"),
        "one level over the limit": (
            lambda: with_data(nested(MAX_JSON_DEPTH)),  # data itself is one level more
            400,
            "nested-too-deep",
        ),
        "larger than the limit": (
            lambda: payload(padding="x" * MAX_BODY),
            413,
            "body-too-large",
        ),
        "UTF-16": (lambda: json.dumps(event()).encode("utf-16"), 400, "malformed-json"),
        "Latin-1 byte": (
            lambda: encode(event(note="café")).replace("é".encode(), b"\xe9"),
            400,
            "malformed-json",
        ),
        "UTF-8 encoded surrogate": (
            lambda: payload(note="x").replace(b'"x"', b'"\xed\xa0\x80"'),
            400,
            "malformed-json",
        ),
        "unpaired surrogate escape": (
            lambda: payload(note="x").replace(b'"x"', b'"\\ud800"'),
            400,
            "malformed-json",
        ),
        "NaN": (lambda: payload(note="x").replace(b'"x"', b"NaN"), 400, "malformed-json"),
        "truncated": (lambda: payload()[:-1], 400, "malformed-json"),
        "a number of 5,000 digits": (
            lambda: payload(note="x").replace(b'"x"', b"9" * 5000),
            400,
            "malformed-json",
        ),
        "an array, not an object": (lambda: encode([event()]), 400, "malformed-json"),  # type: ignore[arg-type]
        "timestampSent beyond any clock": (
            lambda: payload(timestampSent=10**400),
            400,
            "missing-timestamp",
        ),
        "data is a string": (lambda: payload(data="Signed"), 400, "invalid-event"),
        "signatureRequest id is a number": (
            lambda: payload(data={"signatureRequest": signature_request() | {"id": 5}}),
            400,
            "invalid-event",
        ),
        "date is not a date": (lambda: payload(date="yesterday"), 400, "invalid-event"),
        "a kind Dfns does not define": (
            lambda: encode(event("wallet.signature.teleported")),
            422,
            "unknown-kind",
        ),
    }


CASES = bodies()


async def post(server: ReceiverServer, body: bytes, header: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(
            server.url,
            content=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
        )


async def assert_still_serves(server: ReceiverServer, router: Router) -> None:
    before = len(router.notices)
    response = await post(server, *signed(event()))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "delivered"
    assert len(router.notices) == before + 1


@pytest.mark.parametrize("case", list(CASES))
async def test_a_signed_bad_body_gets_its_4xx_and_the_receiver_serves_on(
    served: tuple[ReceiverServer, Router], case: str
) -> None:
    server, router = served
    build, status, reason = CASES[case]
    body = build()
    with structlog.testing.capture_logs() as logs:
        response = await post(server, body, sign(body))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["error"] == reason
    assert 0 < len(answer["message"]) <= 200
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("webhook.rejected", "warning")
    ]
    assert router.notices == []
    await assert_still_serves(server, router)


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ("uppercase hex", "bad-signature"),
        ("short digest", "bad-signature"),
        ("trailing characters", "bad-signature"),
        ("two signatures", "bad-signature"),
        ("uppercase prefix", "wrong-signature-scheme"),
        ("no prefix", "wrong-signature-scheme"),
        ("sha512 prefix", "wrong-signature-scheme"),
    ],
)
async def test_only_the_exact_header_form_dfns_sends_is_accepted(
    served: tuple[ReceiverServer, Router], form: str, reason: str
) -> None:
    server, router = served
    body, header = signed(event())
    digest = header.removeprefix("sha256=")
    header = {
        "uppercase hex": f"sha256={digest.upper()}",
        "short digest": f"sha256={digest[:-2]}",
        "trailing characters": f"sha256={digest};v=1",
        "two signatures": f"sha256={digest},sha256={digest}",
        "uppercase prefix": f"SHA256={digest}",
        "no prefix": digest,
        "sha512 prefix": f"sha512={digest}",
    }[form]
    response = await post(server, body, header)
    assert response.status_code == 401
    assert response.json()["error"] == reason
    assert router.notices == []
    await assert_still_serves(server, router)


async def test_brackets_inside_strings_do_not_count_as_nesting(
    served: tuple[ReceiverServer, Router],
) -> None:
    server, router = served
    request = signature_request() | {"note": nested(10_000) + '\\"' + nested(10_000, "{", "}")}
    response = await post(server, *signed(event(data={"signatureRequest": request})))
    assert response.status_code == 200, response.text
    assert len(router.notices) == 1


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 1),
        (b'{"a":[1,{"b":[]}]}', 4),
        (b'{"a":"[[[{{{"}', 1),
        (b'{"a":"\\"[[[","b":[[]]}', 3),
        (b'{"a":"\\\\","b":[[]]}', 3),
        (b'["\\\\\\"]]]"]', 1),
        (b"1", 0),
    ],
)
def test_nesting_depth_counts_only_structure(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth
    assert nesting_depth(text) == _parsed_depth(json.loads(text))


def test_nesting_depth_stops_early_once_over_the_limit() -> None:
    assert nesting_depth(nested(50_000).encode(), stop_above=64) == 65


def _parsed_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_parsed_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_parsed_depth(v) for v in value), default=0)
    return 0
