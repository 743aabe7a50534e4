"""Dfns's per-organisation rate limit: every authenticated call counted, 429 + Retry-After,
the load report at /_local/rate-limit, and the org file's choices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signgate.sandbox.app import org_rate_limit
from signgate.sandbox.config import ConfigError, load_org_config
from signgate.sandbox.ratelimit import RateLimiter
from tests.sandbox.helpers import ORG_FILE, Dfns

HASH = "0x" + "5a" * 32


@pytest.fixture
def limited(dfns: Dfns) -> Iterator[Dfns]:
    """``dfns`` with the org limited to 6 calls a minute; off again afterwards."""
    assert dfns.http.put("/_local/rate-limit", json={"limitPerMinute": 6}).status_code == 200
    try:
        yield dfns
    finally:
        assert dfns.http.put("/_local/rate-limit", json={"limitPerMinute": 0}).status_code == 200


def test_every_authenticated_call_counts_and_the_next_gets_429(limited: Dfns) -> None:
    dfns = limited
    # One signed write is three calls: init, action, the write itself.
    assert dfns.sign("evm", {"kind": "Hash", "hash": HASH}).status_code == 200
    assert dfns.get("/keys").status_code == 200
    assert dfns.get("/keys", as_="alice").status_code == 200
    # A call refused before authentication is not the org's.
    assert dfns.http.get("/keys", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert dfns.get("/keys", as_="bob").status_code == 200  # the sixth
    refused = dfns.get("/keys")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["status"] == 429 and "6 requests per minute" in error["message"]
    challenge = dfns.http.post(
        "/auth/action/init", json={}, headers=dfns.headers("engine")
    )  # the challenge is counted too, and refused before its body is read
    assert challenge.status_code == 429

    report = dfns.http.get("/_local/rate-limit").json()
    assert report["limitPerMinute"] == 6
    minute = report["lastMinute"]
    assert minute["total"] == 6 and minute["limited"] == 2
    assert minute["byRoute"] == {
        "GET /keys": 3,
        "POST /auth/action": 1,
        "POST /auth/action/init": 1,
        "POST /keys/{keyId}/signatures": 1,
    }
    assert sum(minute["byRoute"].values()) == 6
    assert minute["byCaller"] == {"engine": 4, "alice": 1, "bob": 1}
    assert minute["limitedByRoute"] == {"GET /keys": 1, "POST /auth/action/init": 1}
    assert report["sinceReset"]["total"] == 6 and report["sinceReset"]["limited"] == 2


def test_local_paths_are_never_limited_and_reset_forgets_the_calls(limited: Dfns) -> None:
    dfns = limited
    for _ in range(6):
        assert dfns.get("/keys").status_code == 200
    assert dfns.get("/keys").status_code == 429
    for _ in range(10):
        assert dfns.http.get("/_local/faults").status_code == 200
    dfns.reset()
    assert dfns.get("/keys").status_code == 200
    assert dfns.http.get("/_local/rate-limit").json()["lastMinute"]["total"] == 1


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"limitPerMinute": -1}, "limitPerMinute"),
        ({"limitPerMinute": "1000"}, "limitPerMinute"),
        ({"limitPerMinute": True}, "limitPerMinute"),
        ({}, "limitPerMinute"),
        ([5], "limitPerMinute"),
        ({"windowSeconds": 10}, "limitPerMinute"),
        ({"limitPerMinute": 60, "window": 10}, "windowSeconds"),
        ({"limitPerMinute": 60, "windowSeconds": "10"}, "windowSeconds"),
        ({"limitPerMinute": 60, "windowSeconds": True}, "windowSeconds"),
        ({"limitPerMinute": 60, "windowSeconds": 0.5}, "windowSeconds must be from 1 to 60"),
        ({"limitPerMinute": 60, "windowSeconds": 61}, "windowSeconds must be from 1 to 60"),
        ({"limitPerMinute": 5, "windowSeconds": 10}, "windowSeconds 10 admits no call"),
    ],
)
def test_a_bad_limit_is_refused_and_changes_nothing(dfns: Dfns, body: object, names: str) -> None:
    before = dfns.http.get("/_local/rate-limit").json()
    response = dfns.http.put("/_local/rate-limit", json=body)
    assert response.status_code == 400
    assert names in response.json()["error"]["message"]
    after = dfns.http.get("/_local/rate-limit").json()
    assert (after["limitPerMinute"], after["windowSeconds"]) == (
        before["limitPerMinute"],
        before["windowSeconds"],
    )


def test_a_shorter_window_admits_the_rate_scaled_to_it(dfns: Dfns) -> None:
    body = {"limitPerMinute": 36, "windowSeconds": 10}
    report = dfns.http.put("/_local/rate-limit", json=body).json()
    try:
        assert (report["limitPerMinute"], report["windowSeconds"], report["limitPerWindow"]) == (
            36,
            10,
            6,
        )
        for _ in range(6):
            assert dfns.get("/keys").status_code == 200
        refused = dfns.get("/keys")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert "36 requests per minute (6 in any 10 s)" in refused.json()["error"]["message"]
    finally:
        report = dfns.http.put("/_local/rate-limit", json={"limitPerMinute": 0}).json()
    # Each PUT states the whole limit: without windowSeconds the window is Dfns's minute.
    assert (report["limitPerMinute"], report["windowSeconds"]) == (None, 60)


def _fill(limiter: RateLimiter, now: list[float], steps: tuple[float, ...]) -> None:
    """One call admitted at each of ``steps`` seconds after 1000 on ``limiter``'s clock."""
    for step in steps:
        now[0] = 1000.0 + step
        assert limiter.admit("GET /keys", "engine") is None


def test_the_window_slides_and_retry_after_names_when_a_slot_frees() -> None:
    now = [1000.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    _fill(limiter, now, (0.0, 10.0, 20.0))
    now[0] = 1030.0
    assert limiter.admit("GET /keys", "engine") == 30  # the call at 1000 leaves at 1060
    now[0] = 1059.5
    assert limiter.admit("GET /keys", "engine") == 1  # never less than one second
    now[0] = 1060.0
    assert limiter.admit("GET /keys", "engine") is None
    assert limiter.report()["lastMinute"] == {
        "total": 3,
        "limited": 2,
        "byRoute": {"GET /keys": 3},
        "byCaller": {"engine": 3},
        "limitedByRoute": {"GET /keys": 2},
        "limitedByCaller": {"engine": 2},
    }
    limiter.set_limit(0)
    assert all(limiter.admit("GET /keys", "engine") is None for _ in range(100))


def test_a_short_window_frees_its_slots_sooner_and_the_report_keeps_a_minute() -> None:
    now = [1000.0]
    limiter = RateLimiter(0, clock=lambda: now[0])
    limiter.set_limit(12, window_seconds=15)  # 3 calls in any 15 s
    assert limiter.limit_per_window == 3
    _fill(limiter, now, (0.0, 5.0, 10.0))
    now[0] = 1012.0
    assert limiter.admit("GET /keys", "engine") == 3  # the call at 1000 leaves at 1015
    now[0] = 1015.0
    assert limiter.admit("GET /keys", "engine") is None
    now[0] = 1050.0
    report = limiter.report()
    # The window forgot every call; the report's minute still holds all five.
    assert report["lastMinute"]["total"] == 4 and report["lastMinute"]["limited"] == 1
    assert (report["windowSeconds"], report["limitPerWindow"]) == (15, 3)
    with pytest.raises(ValueError, match="windowSeconds must be from 1 to 60"):
        limiter.set_limit(12, window_seconds=0)
    assert (limiter.limit_per_minute, limiter.window_seconds) == (12, 15)


def _org(tmp_path: Path, org_extra: str = "", behaviour_extra: str = "") -> Path:
    text = ORG_FILE.read_text()
    text = text.replace('initiator = "engine"\n', f'initiator = "engine"\n{org_extra}', 1)
    text = text.replace("[behaviour]\n", f"[behaviour]\n{behaviour_extra}", 1)
    path = tmp_path / "org.toml"
    path.write_text(text)
    return path


def test_the_org_file_chooses_the_limit(tmp_path: Path) -> None:
    plain = load_org_config(ORG_FILE)
    assert plain.trial is False
    assert org_rate_limit(plain, plain.behaviour) == 1000
    trial = load_org_config(_org(tmp_path, org_extra="trial = true\n"))
    assert trial.trial is True
    assert org_rate_limit(trial, trial.behaviour) == 100
    chosen = load_org_config(_org(tmp_path, behaviour_extra="rate_limit_per_minute = 250\n"))
    assert org_rate_limit(chosen, chosen.behaviour) == 250
    off = load_org_config(_org(tmp_path, "trial = true\n", "rate_limit_per_minute = 0\n"))
    assert org_rate_limit(off, off.behaviour) == 0


@pytest.mark.parametrize(
    ("org_extra", "behaviour_extra", "message"),
    [
        ('trial = "yes"\n', "", "org.trial: must be true or false"),
        ("", "rate_limit_per_minute = -5\n", "behaviour.rate_limit_per_minute: must be a whole"),
        ("", "rate_limit_per_minute = 2.5\n", "behaviour.rate_limit_per_minute: must be a whole"),
    ],
)
def test_a_bad_limit_in_the_org_file_names_the_field(
    tmp_path: Path, org_extra: str, behaviour_extra: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_org_config(_org(tmp_path, org_extra, behaviour_extra))
