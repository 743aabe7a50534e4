"""activities.downstream: the append-only ledger, callback signatures, both activities."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.downstream import (
    SIGNATURE_HEADER,
    CallbackSignatureError,
    DownstreamActivities,
    SqliteLedger,
    callback_signature,
    verify_callback_signature,
)
from signgate import ids
from signgate.contracts import CallbackDelivery, CallbackInput, LedgerDelivery, LedgerInput

SECRET = "callback-secret-for-unit-tests"


def _entry(key: str = "wf-1/0-ledger", outcome: str = "signed") -> LedgerInput:
    return LedgerInput(
        spec=LedgerDelivery(),
        idempotency_key=key,
        workflow_id="wf-1",
        record_kind="signature",
        outcome=outcome,
        signature_id="sig-1",
        payload={"kind": outcome, "n": 1},
    )


async def test_the_ledger_records_each_key_once(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "nested" / "ledger.sqlite")
    first = await ledger.append(_entry())
    again = await ledger.append(_entry(outcome="rejected"))
    other = await ledger.append(_entry("wf-2/0-ledger"))
    assert first.first_time and not again.first_time and other.first_time
    assert again.seq == first.seq and other.seq > first.seq
    records = await ledger.records()
    assert [(r.idempotency_key, r.outcome) for r in records] == [
        ("wf-1/0-ledger", "signed"),
        ("wf-2/0-ledger", "signed"),
    ]
    assert records[0].payload == {"kind": "signed", "n": 1}


async def test_the_ledger_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    await SqliteLedger(path).append(_entry())
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE signgate_ledger SET outcome = 'forged'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM signgate_ledger")
    finally:
        conn.close()


def test_callback_signatures_verify_and_refuse_tampering() -> None:
    body = b'{"a":1}'
    now = int(time.time())
    header = callback_signature(SECRET.encode(), now, body)
    assert verify_callback_signature(SECRET.encode(), header, body) == now
    with pytest.raises(CallbackSignatureError, match="does not match"):
        verify_callback_signature(SECRET.encode(), header, b'{"a":2}')
    with pytest.raises(CallbackSignatureError, match="does not match"):
        verify_callback_signature(b"another secret", header, body)
    with pytest.raises(CallbackSignatureError, match="tolerance"):
        verify_callback_signature(SECRET.encode(), header, body, now=now + 3600)
    with pytest.raises(CallbackSignatureError, match="missing"):
        verify_callback_signature(SECRET.encode(), None, body)
    with pytest.raises(CallbackSignatureError):
        verify_callback_signature(SECRET.encode(), "garbage", body)


def _activities(
    handler: Any, tmp_path: Path, *, secrets: dict[str, SecretStr] | None = None
) -> DownstreamActivities:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DownstreamActivities(
        http,
        callback_secrets=secrets if secrets is not None else {"default": SecretStr(SECRET)},
        ledgers={"default": SqliteLedger(tmp_path / "ledger.sqlite")},
    )


def _callback(url: str = "https://receiver.test/hook") -> CallbackInput:
    return CallbackInput(
        spec=CallbackDelivery(url=url),
        idempotency_key="wf-1/1-callback",
        event="signature.outcome",
        payload={"kind": "signed", "signature_id": "sig-1"},
    )


async def test_a_callback_is_signed_and_carries_its_idempotency_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    activities = _activities(handler, tmp_path)
    receipt = await ActivityEnvironment().run(activities.deliver_callback, _callback())
    [request] = seen
    verify_callback_signature(SECRET.encode(), request.headers[SIGNATURE_HEADER], request.content)
    assert request.headers["Idempotency-Key"] == "wf-1/1-callback"
    assert json.loads(request.content)["payload"]["signature_id"] == "sig-1"
    assert receipt.kind == "callback" and receipt.first_time and "HTTP 204" in receipt.detail
    assert SECRET not in repr(activities)


async def test_a_callback_answered_with_an_error_is_retried(tmp_path: Path) -> None:
    activities = _activities(lambda _r: httpx.Response(503), tmp_path)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.deliver_callback, _callback())
    assert caught.value.type == ids.ERR_DELIVERY_FAILED and not caught.value.non_retryable
    assert "HTTP 503" in caught.value.message


async def test_a_callback_without_its_secret_waits_for_a_worker_that_has_it(
    tmp_path: Path,
) -> None:
    activities = _activities(lambda _r: httpx.Response(200), tmp_path, secrets={})
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.deliver_callback, _callback())
    assert caught.value.type == ids.ERR_MISCONFIGURED and not caught.value.non_retryable
    assert "'default'" in caught.value.message


async def test_record_ledger_reports_a_repeat(tmp_path: Path) -> None:
    activities = _activities(lambda _r: httpx.Response(200), tmp_path)
    env = ActivityEnvironment()
    first = await env.run(activities.record_ledger, _entry())
    second = await env.run(activities.record_ledger, _entry())
    assert first.first_time and not second.first_time
    assert "already recorded" in second.detail
    unknown = _entry().model_copy(update={"spec": LedgerDelivery(ledger="elsewhere")})
    with pytest.raises(ApplicationError, match="no ledger named 'elsewhere'"):
        await env.run(activities.record_ledger, unknown)
