"""Scale benchmark: ``python bench/scale.py`` prints the engine's load on Dfns with N waiting.

For each N (``--n``, default 200 and 1,000) and each way of noticing change, on a fresh
dev server and a fresh ``signgate sandbox`` (in processes) with the engine's worker in this
process. No webhook reaches the engine, so every approval is news no webhook brings: the
case of a lost webhook.

* ``polls``: the default without webhooks, every request polls on its own timer (2 s,
  doubling to 60 s);
* ``webhook-polls``: webhooks on (``SIGNGATE_WEBHOOKS_ENABLED=true``) and the approval's
  webhook lost: every request polls as a safety net (15 s, doubling to 15 min);
* ``reconciler``: the reconciler sweeps the pending approvals at its share of the budget (50
  calls a minute, at most every 15 s) and the requests' safety-net polls (30 min to 6 h)
  skip Dfns while it sweeps (``SIGNGATE_RECONCILER_ENABLED=true``). Its polling policy is
  the same with webhooks on or off: this row is both.

N gated requests are submitted with the budget and the sandbox's limit off (at the default
budget a submit is one of the writes lane's 83 activities a minute, its 250 calls divided by
a submit's 3: 10,000 take about 2 h), or
with ``--budgeted-submit`` at the default budget with the sandbox enforcing the org limit,
sampled once a minute (the engine's calls, requests created at Dfns, 429s) until every
workflow has its Dfns request; at the end the workflows failed and, from the sandbox's
database, the Dfns requests created, how many distinct idempotency keys they carry and how
many the policy's one-hour auto-reject has already ended (at the budget's pace the first
requests of a large burst are auto-rejected before the last are submitted). Then a new worker
takes over with the default budget (org limit 1,000 a minute, the sandbox enforcing it) for
``--minutes``. Printed, from the sandbox's own count:
the engine's calls in each sliding minute (p50 and max of one sample a minute), 429s, the
time from one approval to its workflow noticing it, and worker and Temporal server CPU per
waiting request per hour. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.downstream import SqliteLedger  # noqa: E402
from bench import _common  # noqa: E402
from bench.engine import Org, _count, _until, engine_servers  # noqa: E402
from signgate import ids  # noqa: E402
from signgate.contracts import PollingPolicy, SignatureWorkflowInput  # noqa: E402
from signgate.dfns.client import DfnsClient  # noqa: E402
from signgate.dfns.errors import DfnsRateLimitError, DfnsUserActionError  # noqa: E402
from signgate.dfns.requests import ApprovalDecisionRequest, HashRequest  # noqa: E402
from signgate.logs import configure_logging  # noqa: E402
from signgate.settings import Settings  # noqa: E402
from worker import engine_activities, engine_workers, ensure_reconciler, lane_rates  # noqa: E402
from workflows.signature import SignatureWorkflow  # noqa: E402

ORG_LIMIT = 1000
GATED = "evm-treasury"
ENGINE = "engine"


@dataclass
class Figures:
    mode: str
    n: int
    submit_seconds: float
    per_minute: list[int]
    limited: int
    noticed_after: float | None
    cpu: dict[str, float]
    minutes: float
    submit: SubmitFigures | None = None


@dataclass
class SubmitFigures:
    """The submit at the default budget, the sandbox enforcing its limit (``--budgeted-submit``)."""

    per_minute: list[int]
    limited: int
    failed: int
    dfns_requests: int
    idempotency_keys: int
    auto_rejected: int


def _settings(mode: str, task_queue: str, budget: bool) -> Settings:
    return Settings.from_env(
        {
            "SIGNGATE_TASK_QUEUE": task_queue,
            "SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": str(ORG_LIMIT if budget else 0),
            "SIGNGATE_RECONCILER_ENABLED": str(mode == "reconciler").lower(),
            "SIGNGATE_WEBHOOKS_ENABLED": str(mode == "webhook-polls").lower(),
        }
    )


async def _local(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, f"/_local/{path}", json=body)
    response.raise_for_status()
    return response.json()


async def _run(mode: str, n: int, minutes: float, workdir: Path, budgeted: bool) -> Figures:
    async with engine_servers(workdir) as (client, org, pids):
        return await _measure(mode, n, minutes, client, org, workdir, pids, budgeted)


async def _measure(
    mode: str,
    n: int,
    minutes: float,
    client: Client,
    org: Org,
    workdir: Path,
    pids: dict[str, int],
    budgeted: bool = False,
) -> Figures:
    task_queue = f"scale-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=org.base_url, timeout=30, limits=limits) as http,
        httpx.AsyncClient(timeout=10) as callbacks,
    ):
        activities = engine_activities(
            org.client(ENGINE, http),
            callbacks,
            callback_secrets={"default": SecretStr("bench")},
            ledgers={"default": SqliteLedger(workdir / "ledger.sqlite")},
        )
        options: dict[str, Any] = {
            "task_queue": task_queue,
            "activities": activities,
            "max_concurrent_workflow_tasks": 200,
            "max_concurrent_activities": 200,
        }
        settings = _settings(mode, task_queue, budget=True)
        polling: PollingPolicy = settings.polling_policy()
        gated = org.key(GATED)
        submit: SubmitFigures | None = None
        if budgeted:
            await _local(http, "PUT", "rate-limit", {"limitPerMinute": ORG_LIMIT})
        began = time.perf_counter()
        async with engine_workers(
            client, rates=lane_rates(settings) if budgeted else None, **options
        ):
            if budgeted and settings.reconciler_enabled:
                await ensure_reconciler(client, settings)
            gate = asyncio.Semaphore(200)

            async def start(i: int) -> Any:
                async with gate:
                    return await client.start_workflow(
                        SignatureWorkflow.run,
                        SignatureWorkflowInput(
                            target=gated,
                            request=HashRequest(hash=os.urandom(32).hex()),
                            polling=polling,
                        ),
                        id=f"scale-{i}-{uuid.uuid4().hex[:8]}",
                        task_queue=task_queue,
                    )

            handles = await asyncio.gather(*(start(i) for i in range(n)))
            waiting = f"TaskQueue = '{task_queue}' AND {ids.SA_STATUS.name} = 'Pending'"
            if budgeted:
                submit = await _watch_submit(client, http, waiting, task_queue, n, workdir)
                # Printed now too: the measured minutes after it must not be able to lose it.
                print(_submit_line(n, time.perf_counter() - began, submit), flush=True)
            else:
                await _until(lambda: _count(client, waiting), n)
        submit_seconds = time.perf_counter() - began

        if not budgeted:
            await _local(http, "PUT", "rate-limit", {"limitPerMinute": ORG_LIMIT})
            # The submit's calls (unlimited) must leave the sandbox's sliding minute first, or
            # they would lock everyone out of the first measured minute.
            await asyncio.sleep(61)
        async with engine_workers(client, rates=lane_rates(settings), **options):
            if settings.reconciler_enabled:
                await ensure_reconciler(client, settings)
            cpu_before = _cpu(pids)
            limited_before = (await _local(http, "GET", "rate-limit"))["sinceReset"]["limited"]
            per_minute: list[int] = []
            noticed: float | None = None
            chosen = await _still_pending(handles)
            decided_at: float | None = None
            window_began = time.monotonic()
            for minute in range(int(minutes)):
                deadline = window_began + 60 * (minute + 1)
                if minute == 0:
                    # Half a minute in: one approval (approvers' calls count in the org's
                    # limit, not in the engine's figure), then watch its workflow notice it.
                    await asyncio.sleep(30)
                    approval = (await chosen.query(SignatureWorkflow.state)).approval_id
                    assert approval is not None
                    for name in ("alice", "bob"):
                        await _decide(org.client(name, http), approval)
                    decided_at = time.monotonic()
                while time.monotonic() < deadline:
                    if noticed is None and decided_at is not None:
                        status = (await chosen.query(SignatureWorkflow.state)).status
                        if status is not None and status.value != "Pending":
                            noticed = time.monotonic() - decided_at
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                report = await _local(http, "GET", "rate-limit")
                per_minute.append(int(report["lastMinute"]["byCaller"].get(ENGINE, 0)))
                print(f"  {mode} N={n} minute {minute + 1}: {per_minute[-1]} calls", flush=True)
            elapsed = time.monotonic() - window_began
            cpu_after = _cpu(pids)
            limited_after = (await _local(http, "GET", "rate-limit"))["sinceReset"]["limited"]
            while noticed is None and decided_at is not None:
                # Past the window: keep watching the approved request, for ten minutes at most.
                status = (await chosen.query(SignatureWorkflow.state)).status
                if status is not None and status.value != "Pending":
                    noticed = time.monotonic() - decided_at
                elif time.monotonic() - decided_at > 600:
                    break
                await asyncio.sleep(1.0)
        hours = elapsed / 3600
        cpu = {k: (cpu_after[k] - cpu_before[k]) / n / hours * 1000 for k in cpu_before}
        limited = limited_after - limited_before
        return Figures(mode, n, submit_seconds, per_minute, limited, noticed, cpu, minutes, submit)


async def _watch_submit(
    client: Client, http: httpx.AsyncClient, waiting: str, task_queue: str, n: int, workdir: Path
) -> SubmitFigures:
    """Sample the budgeted submit once a minute until all ``n`` requests exist at Dfns.

    "Submitted" is any workflow past submitting, closed ones included: with the policy's
    one-hour auto-reject, a burst longer than an hour never has all ``n`` pending at once.
    """
    limited_before = (await _local(http, "GET", "rate-limit"))["sinceReset"]["limited"]
    unsubmitted = "('Submitting', 'SubmitUnknown')"
    submitted_query = f"TaskQueue = '{task_queue}' AND {ids.SA_STATUS.name} NOT IN {unsubmitted}"
    per_minute: list[int] = []
    began = time.monotonic()
    submitted = 0
    while submitted < n:
        await asyncio.sleep(max(0.0, began + 60 * (len(per_minute) + 1) - time.monotonic()))
        report = await _local(http, "GET", "rate-limit")
        per_minute.append(int(report["lastMinute"]["byCaller"].get(ENGINE, 0)))
        submitted = await _count(client, submitted_query)
        pending = await _count(client, waiting)
        limited = report["sinceReset"]["limited"] - limited_before
        print(
            f"  submit minute {len(per_minute)}: {per_minute[-1]} engine calls, "
            f"{submitted} of {n} submitted ({pending} pending), {limited} 429s so far",
            flush=True,
        )
    limited = (await _local(http, "GET", "rate-limit"))["sinceReset"]["limited"] - limited_before
    failed = await _count(client, f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Failed'")
    with sqlite3.connect(f"file:{workdir / 'sandbox.db'}?mode=ro", uri=True) as db:
        requests, keys, rejected = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT external_id),"
            " COUNT(*) FILTER (WHERE status = 'Rejected') FROM sandbox_signatures"
        ).fetchone()
    return SubmitFigures(per_minute, limited, failed, int(requests), int(keys), int(rejected))


async def _decide(approver: DfnsClient, approval_id: str) -> None:
    """An approver's decision, retried after ``Retry-After`` as a person would click again."""
    for _ in range(30):
        try:
            await approver.create_approval_decision(
                approval_id, ApprovalDecisionRequest(value="Approved")
            )
            return
        except (DfnsRateLimitError, DfnsUserActionError) as exc:
            cause = exc.api_error if isinstance(exc, DfnsUserActionError) else exc
            if not isinstance(cause, DfnsRateLimitError):
                raise
            print(f"  approver got 429, waits {cause.retry_after or 5:g} s", flush=True)
            await asyncio.sleep(cause.retry_after or 5)
    raise RuntimeError("the approver was refused 30 times in a row")


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    taken = {"worker": _common.cpu_seconds(), "temporal": _common.cpu_seconds(pids["server"])}
    return taken


async def _still_pending(handles: list[Any]) -> Any:
    """The last-submitted request still waiting for its approval: a burst longer than the
    policy's auto-reject has expired the first ones, which take no decision any more."""
    for handle in reversed(handles):
        state = await handle.query(SignatureWorkflow.state)
        status = state.status.value if state.status is not None else None
        if state.approval_id is not None and status == "Pending":
            return handle
    raise RuntimeError("no request is still waiting for its approval")


def _submit_line(n: int, seconds: float, s: SubmitFigures) -> str:
    return (
        f"  submit at the default budget: {seconds:.0f} s, engine calls/min "
        f"p50 {statistics.median(s.per_minute):.0f} max {max(s.per_minute)} "
        f"(limit {ORG_LIMIT}), {s.limited} 429s, {s.failed} workflows failed, "
        f"{s.dfns_requests} Dfns requests ({s.idempotency_keys} idempotency keys) for "
        f"{n} workflows, {s.auto_rejected} already auto-rejected"
    )


def _print(figures: list[Figures]) -> None:
    print()
    print(
        f"engine load on Dfns, no webhook received, org limit {ORG_LIMIT}/min "
        f"(engine budget {ORG_LIMIT // 2}/min: reads 250, writes 250)"
    )
    header = (
        f"{'mode':13} {'N':>6} {'submit s':>9} {'calls/min p50':>14} {'max':>6} "
        f"{'429s':>5} {'noticed s':>10} {'worker CPU ms/req/h':>20} {'temporal CPU ms/req/h':>22}"
    )
    print(header)
    for f in figures:
        noticed = f"{f.noticed_after:.1f}" if f.noticed_after is not None else "not seen"
        p50 = statistics.median(f.per_minute) if f.per_minute else float("nan")
        print(
            f"{f.mode:13} {f.n:>6} {f.submit_seconds:>9.1f} {p50:>14.0f} "
            f"{max(f.per_minute, default=0):>6} {f.limited:>5} {noticed:>10} "
            f"{f.cpu['worker']:>20.1f} {f.cpu['temporal']:>22.1f}"
        )
        if f.submit is not None:
            print(_submit_line(f.n, f.submit_seconds, f.submit))
    print(
        "(calls/min: the engine's calls in the sandbox's sliding minute, sampled once a minute "
        "after the submit; noticed: from one approval to its workflow reading a status past "
        "Pending, no webhook)"
    )


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    figures = []
    for n in args.n:
        for mode in args.modes:
            print(f"{mode}, N={n}...", flush=True)
            directory = workdir / f"{mode}-{n}"
            directory.mkdir()
            figures.append(await _run(mode, n, args.minutes, directory, args.budgeted_submit))
    _print(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, nargs="+", default=[200, 1000], help="requests waiting (several: each)"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["polls", "webhook-polls", "reconciler"],
        default=["polls", "webhook-polls", "reconciler"],
    )
    parser.add_argument("--minutes", type=float, default=4, help="measured minutes per run")
    parser.add_argument(
        "--budgeted-submit",
        action="store_true",
        help="submit at the default budget with the sandbox's limit on (3 calls a request: "
        "10,000 take about two hours) and print the submit's calls a minute, 429s, failed "
        "workflows and Dfns requests created",
    )
    args = parser.parse_args()
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")
    configure_logging(level="WARNING")
    _common.stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="signgate-scale-") as tmp:
        asyncio.run(bench(args, Path(tmp)))
    # Skip interpreter teardown: the Temporal core runtime can crash while finalising
    # (sdk-python#300), which would turn a finished benchmark into a non-zero exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
