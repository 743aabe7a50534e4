"""Webhook benchmark: ``python bench/webhook.py`` prints what push buys over pull.

One run starts a Temporal dev server (the venv's ``temporal``; in memory by default, or an
SQLite file in WAL mode with ``--server-db wal``), the sandbox in its own process
(``signgate sandbox``, the shipped org, signing at once on approval), the webhook receiver
in its own process (``python -m signgate.webhook``, registered with the sandbox) and the
engine's worker in this process, sized as the shipped worker is (``--max-workflow-tasks``,
``--max-activities`` override it). Then, twice:

* **webhooks on**: N requests on the treasury key (two approvals needed) start with the
  ``webhook_poll_*`` policy, wait ``--wait-on`` seconds (20: past their first safety-net poll
  at 15 s, whose next is 30 s later; a poll inside the burst would measure the poll
  schedule, not the webhooks), and are approved at once: alice approves them all, then
  bob's N deciding approvals are sent together;
* **webhooks off**: the same with no webhook registered, the tight ``poll_*`` policy and
  ``--wait`` seconds (10).

Before those rounds it measures the **floor**: N minimal workflows (``bench/floor.py``: wait
for a signal, then return; no activity) on the same worker, server and machine, and N
signals sent to them at once by a process of their own. Its latency, from a signal's
sending to the workflow's close, is what Temporal and the worker need for the cheapest
possible completion under the same burst; the ``burst ratio`` line divides signgate's
approval-to-completion p50 (and p99) by the floor's.

It prints, per mode: the latency from the sandbox's approval (the approval's
``dateResolved``) to the workflow's completion (its close time), p50 / p90 / p99 / max, and
the same for ``--single`` requests approved one at a time afterwards (nothing else
happening: the floor under the burst); where the burst's time went, read from each
request's history (approval to first webhook signal, workflow task schedule-to-start and
start-to-complete, activity schedule-to-start and start-to-close), with the workflow tasks,
activity tasks, local activities and signals each completion took, when approvals resolved,
signals arrived and workflows closed, how long the worker's reads of the request took, the
worker's event-loop lag and the CPU seconds every process spent; the Dfns HTTP calls the
worker made per signed request (a user-action-signed submit is three: challenge, signed
challenge, write), split by purpose; and polls per request. For context it also prints how
many polls each policy makes for a request that waits an hour (arithmetic on the policy,
not a measurement).

Bob's user actions are signed before the burst, and his N decisions are POSTed together by a
process of their own (the load generator is not the system under test); the sandbox still
takes them one after another, and its approval timestamps say when each one resolved.

The dev server runs in memory by default: its SQLite file would measure SQLite's writes, and
a deployment runs Temporal on Postgres, Cassandra or Temporal Cloud, not on the dev server.

The figures depend on the machine; the script asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# As in bench/engine.py: the workflow sandbox re-imports a workflow's module for every new
# run; a deployed worker reads it from a .pyc, so cache bytecode aside when
# PYTHONDONTWRITEBYTECODE (set on the build machines) would make it compile from source.
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    sys.pycache_prefix = tempfile.mkdtemp(prefix="signgate-bench-pyc-")
    atexit.register(shutil.rmtree, sys.pycache_prefix, ignore_errors=True)

from bench import _common  # noqa: E402
from bench.floor import SignalFloorWorkflow  # noqa: E402
from signgate import ids  # noqa: E402
from signgate.contracts import (  # noqa: E402
    PollingPolicy,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
    SigningTarget,
)
from signgate.dfns.auth import CredentialSigner  # noqa: E402
from signgate.dfns.requests import ApprovalDecisionRequest, HashRequest  # noqa: E402
from signgate.logs import configure_logging  # noqa: E402
from signgate.settings import Settings  # noqa: E402
from signgate.webhook.registration import register_webhook  # noqa: E402
from worker import ENGINE_WORKFLOWS, engine_activities, engine_workers  # noqa: E402
from workflows.signature import SignatureWorkflow  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "evm-treasury"  # the shipped org: two of alice, bob, carol approve
Handle = WorkflowHandle[SignatureWorkflow, SignatureOutcome]

_PURPOSES = (
    (re.compile(r"^/auth/action"), "user-action challenge"),
    (re.compile(r"^/keys/[^/]+/signatures$"), "submit"),
    (re.compile(r"^/keys/[^/]+/signatures/[^/]+$"), "poll"),
    (re.compile(r"^/keys/[^/]+$"), "public key (verify)"),
    (re.compile(r"^/v2/policy-approvals/"), "approval (outcome)"),
)


class Org(_common.Org):
    def target(self) -> SigningTarget:
        return SigningTarget(kind="key", id=self.key_id(KEY))

    def headers(self, name: str) -> dict[str, str]:
        token = self.credentials["identities"][name]["authToken"]
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def presign(
        self, http: httpx.AsyncClient, name: str, approval_id: str
    ) -> tuple[str, bytes]:
        """A user-action token for ``name`` approving ``approval_id``, and the body it covers."""
        ident = self.credentials["identities"][name]
        signer = CredentialSigner(ident["credId"], ident["privateKeyPem"], "http://localhost")
        body = json.dumps({"value": "Approved"}, separators=(",", ":"))
        init = await http.post(
            "/auth/action/init",
            json={
                "userActionPayload": body,
                "userActionHttpMethod": "POST",
                "userActionHttpPath": f"/v2/policy-approvals/{approval_id}/decisions",
                "userActionServerKind": "Api",
            },
            headers=self.headers(name),
        )
        init.raise_for_status()
        challenge = init.json()
        complete = await http.post(
            "/auth/action",
            json={
                "challengeIdentifier": challenge["challengeIdentifier"],
                "firstFactor": signer.sign_challenge(challenge["challenge"]),
            },
            headers=self.headers(name),
        )
        complete.raise_for_status()
        return str(complete.json()["userAction"]), body.encode()


@dataclass
class CallCounter:
    """Counts the worker's HTTP requests to Dfns by purpose, and times them (httpx hooks)."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def purpose(request: httpx.Request) -> str:
        path = request.url.path
        return next((name for pattern, name in _PURPOSES if pattern.search(path)), path)

    async def __call__(self, request: httpx.Request) -> None:
        self.calls[self.purpose(request)] += 1
        request.extensions["bench_sent"] = time.monotonic()

    async def answered(self, response: httpx.Response) -> None:
        sent = response.request.extensions.get("bench_sent")
        if sent is not None:
            elapsed = time.monotonic() - sent
            self.seconds.setdefault(self.purpose(response.request), []).append(elapsed)

    def clear(self) -> None:
        self.calls.clear()
        self.seconds.clear()


class LoopLag:
    """How late this process's event loop runs a 10 ms sleep: the worker's own congestion."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            await asyncio.sleep(0.01)
            self.samples.append(time.monotonic() - began - 0.01)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return list(self.samples)


@dataclass
class FloorResult:
    """The floor round: N signals at once to workflows that complete on them."""

    latencies: list[float]
    cpu: dict[str, float]
    burst_seconds: float
    loop_lag: list[float]


@dataclass
class Result:
    mode: str
    latencies: list[float]
    calls: Counter[str]
    polls: list[int]
    n: int
    receiver: dict[str, Any] | None = None
    to_signal: list[float] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    burst_seconds: float = 0.0
    single: list[float] = field(default_factory=list)
    timeline: dict[str, list[float]] = field(default_factory=dict)
    loop_lag: list[float] = field(default_factory=list)
    fetch_seconds: list[float] = field(default_factory=list)
    after_signal: list[float] = field(default_factory=list)


_SEGMENT_OF: dict[int, str] = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: "workflow task schedule-to-start",
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow task start-to-complete",
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow task start-to-complete",
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity schedule-to-start",
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity start-to-close",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity start-to-close",
    EventType.EVENT_TYPE_TIMER_FIRED: "waiting for the next poll",
}
_SEGMENTS = (
    "approval -> first signal",
    "workflow task schedule-to-start",
    "workflow task start-to-complete",
    "activity schedule-to-start",
    "activity start-to-close",
    "waiting for the next poll",
    "other server time",
)


@dataclass
class Breakdown:
    """Where one request's time went after its approval, read from its history.

    Events after the approval are taken in time order and each gap is charged to the event
    that ends it (a workflow task's start ends its wait in the queue, its completion ends
    the worker's work on it, including local activities run inside it). The segments add
    up to the latency.
    """

    segments: dict[str, float]
    workflow_tasks: int = 0
    failed_workflow_tasks: int = 0
    activities: int = 0
    local_activities: int = 0
    signals: int = 0
    events: int = 0


def _breakdown(history: WorkflowHistory, moment: datetime) -> Breakdown:
    timed = [
        (event.event_time.ToDatetime(tzinfo=UTC), event.event_id, event) for event in history.events
    ]
    after = sorted((t, i, e) for t, i, e in timed if t >= moment)
    result = Breakdown(segments=dict.fromkeys(_SEGMENTS, 0.0), events=len(after))
    cursor = moment
    for when, _, event in after:
        gap = max(0.0, (when - cursor).total_seconds())
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            result.signals += 1
            segment = "approval -> first signal" if result.signals == 1 else "other server time"
        else:
            segment = _SEGMENT_OF.get(kind, "other server time")
        result.segments[segment] += gap
        cursor = max(cursor, when)
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            result.workflow_tasks += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            result.failed_workflow_tasks += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            result.activities += 1
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            result.local_activities += 1
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _approval_ids(handles: list[Handle]) -> list[str]:
    async def one(handle: Handle) -> str:
        while True:
            state: SignatureProgress = await handle.query(
                ids.QUERY_STATE, result_type=SignatureProgress
            )
            if state.approval_id is not None:
                return state.approval_id
            await asyncio.sleep(0.1)

    return list(await asyncio.gather(*(one(h) for h in handles)))


def _cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: _common.cpu_seconds(pid) for name, pid in pids.items()}


async def _start(
    client: Client, org: Org, task_queue: str, policy: PollingPolicy, workflow_id: str
) -> Handle:
    return await client.start_workflow(
        SignatureWorkflow.run,
        SignatureWorkflowInput(
            target=org.target(),
            request=HashRequest(hash="0x" + os.urandom(32).hex()),
            polling=policy,
        ),
        id=workflow_id,
        task_queue=task_queue,
    )


async def _decide(
    http: httpx.AsyncClient, org: Org, approval_id: str, token: str, body: bytes
) -> datetime:
    response = await http.post(
        f"/v2/policy-approvals/{approval_id}/decisions",
        content=body,
        headers={**org.headers("bob"), "X-DFNS-USERACTION": token},
    )
    response.raise_for_status()
    return datetime.fromisoformat(response.json()["dateResolved"])


class _Decider:
    """Bob's decisions, POSTed all at once by a process of their own.

    The load generator is not the system under test: in this process its 100 concurrent
    HTTP requests would take the worker's event loop for a good part of the burst.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.cpu_seconds = 0.0

    @classmethod
    async def start(
        cls, org: Org, approvals: list[str], prepared: list[tuple[str, bytes]]
    ) -> _Decider:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--decide",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        job = {
            "baseUrl": org.base_url,
            "headers": org.headers("bob"),
            "decisions": [
                {"approvalId": a, "token": t, "body": b.decode()}
                for a, (t, b) in zip(approvals, prepared, strict=True)
            ],
        }
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        await proc.stdin.drain()
        ready = await proc.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the decider did not start: {ready!r}")
        return cls(proc)

    async def go(self) -> list[datetime]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        answer = json.loads(await proc.stdout.readline())
        await proc.wait()
        self.cpu_seconds = float(answer["cpuSeconds"])
        return [datetime.fromisoformat(when) for when in answer["resolved"]]


async def _decide_from_stdin() -> None:
    """The decider process: read the job, say ready, POST every decision on "go"."""
    job = json.loads(sys.stdin.readline())
    # One client (one connection) per decision, made before "go": a shared pool of N
    # connections checks every one of them on each request (httpcore), N^2 work that is the
    # load generator's, not the engine's, on the same two cores.
    tls = httpx.create_ssl_context()  # one, not one per client: each costs milliseconds
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=job["baseUrl"], timeout=60, verify=tls)
            )
            for _ in job["decisions"]
        ]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu_before = time.process_time()

        async def one(http: httpx.AsyncClient, decision: dict[str, str]) -> str:
            response = await http.post(
                f"/v2/policy-approvals/{decision['approvalId']}/decisions",
                content=decision["body"].encode(),
                headers={**job["headers"], "X-DFNS-USERACTION": decision["token"]},
            )
            response.raise_for_status()
            return str(response.json()["dateResolved"])

        resolved = await asyncio.gather(
            *(one(http, d) for http, d in zip(clients, job["decisions"], strict=True))
        )
        spent = time.process_time() - cpu_before
    print(json.dumps({"resolved": resolved, "cpuSeconds": spent}), flush=True)


class _Signaller:
    """N signals to the floor's workflows, sent all at once by a process of their own."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.cpu_seconds = 0.0

    @classmethod
    async def start(cls, address: str, workflow_ids: list[str]) -> _Signaller:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--signal",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        job = {"address": address, "workflowIds": workflow_ids}
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        await proc.stdin.drain()
        ready = await proc.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the signaller did not start: {ready!r}")
        return cls(proc)

    async def go(self) -> list[datetime]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        answer = json.loads(await proc.stdout.readline())
        await proc.wait()
        self.cpu_seconds = float(answer["cpuSeconds"])
        return [datetime.fromisoformat(when) for when in answer["sent"]]


async def _signal_from_stdin() -> None:
    """The signaller process: read the job, connect, say ready, signal every workflow on "go"."""
    job = json.loads(sys.stdin.readline())
    client = await Client.connect(job["address"])
    handles = [client.get_workflow_handle(workflow_id) for workflow_id in job["workflowIds"]]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu_before = time.process_time()

    async def one(handle: WorkflowHandle[Any, Any]) -> str:
        sent = datetime.now(UTC)
        await handle.signal("go")
        return sent.isoformat()

    sent = await asyncio.gather(*(one(h) for h in handles))
    spent = time.process_time() - cpu_before
    print(json.dumps({"sent": sent, "cpuSeconds": spent}), flush=True)


async def _floor_round(
    args: argparse.Namespace,
    client: Client,
    address: str,
    task_queue: str,
    pids: dict[str, int],
) -> FloorResult:
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(20)

    async def start(i: int) -> WorkflowHandle[SignalFloorWorkflow, None]:
        async with gate:
            return await client.start_workflow(
                SignalFloorWorkflow.run, id=f"bench-floor-{run}-{i}", task_queue=task_queue
            )

    handles = list(await asyncio.gather(*(start(i) for i in range(args.requests))))

    async def waiting(handle: WorkflowHandle[SignalFloorWorkflow, None]) -> None:
        while True:
            # started, task scheduled, task started, task completed: it waits for the signal
            if (await handle.describe()).history_length >= 4:
                return
            await asyncio.sleep(0.1)

    await asyncio.gather(*(waiting(h) for h in handles))
    await asyncio.sleep(2.0)  # as the rounds do: let the starts' work settle first
    print(f"  [floor] {len(handles)} minimal workflows wait; {len(handles)} signals at once")
    signaller = await _Signaller.start(address, [h.id for h in handles])
    cpu_before, burst_began = _cpu_snapshot(pids), time.monotonic()
    lag = LoopLag()
    lag.start()
    sent = await signaller.go()
    await asyncio.gather(*(h.result() for h in handles))
    burst_seconds = time.monotonic() - burst_began
    cpu_after = _cpu_snapshot(pids)
    cpu_after["load generator"] = signaller.cpu_seconds
    cpu_before["load generator"] = 0.0
    lags = await lag.stop()
    latencies: list[float] = []
    for handle, when in zip(handles, sent, strict=True):
        closed = (await handle.describe()).close_time
        assert closed is not None
        latencies.append((closed - when).total_seconds())
    return FloorResult(
        latencies,
        {k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        burst_seconds,
        lags,
    )


async def _round(
    mode: str,
    args: argparse.Namespace,
    client: Client,
    org: Org,
    task_queue: str,
    counter: CallCounter,
    policy: PollingPolicy,
    pids: dict[str, int],
) -> Result:
    counter.clear()
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(20)

    async def start(i: int) -> Handle:
        async with gate:
            return await _start(client, org, task_queue, policy, f"bench-webhook-{mode}-{run}-{i}")

    began = time.monotonic()
    handles = list(await asyncio.gather(*(start(i) for i in range(args.requests))))
    approvals = await _approval_ids(handles)
    wait = args.wait_on if mode == "on" else args.wait
    await asyncio.sleep(max(0.0, wait - (time.monotonic() - began)))

    resolved: list[datetime] = []
    async with httpx.AsyncClient(base_url=org.base_url, timeout=60) as http:
        alice = org.client("alice", http)

        async def first(approval_id: str) -> None:
            async with gate:
                await alice.create_approval_decision(
                    approval_id, ApprovalDecisionRequest(value="Approved")
                )

        await asyncio.gather(*(first(a) for a in approvals))
        # Bob's user actions are signed beforehand, so "at once" is N plain POSTs: the
        # load generator's signing does not compete with the worker in the measured window.
        prepared = await asyncio.gather(*(org.presign(http, "bob", a) for a in approvals))
        # Let alice's webhooks and the workflows' reactions to them settle first.
        await asyncio.sleep(2.0)
        print(f"  [{mode}] {len(approvals)} requests waited {wait:g}s; bob approves all")
        decider = await _Decider.start(org, approvals, prepared)
        cpu_before, burst_began = _cpu_snapshot(pids), time.monotonic()
        lag = LoopLag()
        lag.start()
        fetch_times_before = len(counter.seconds.get("poll", []))
        resolved = await decider.go()
        outcomes = await asyncio.gather(*(h.result() for h in handles))
        burst_seconds = time.monotonic() - burst_began
        cpu_after = _cpu_snapshot(pids)
        cpu_after["load generator"] = decider.cpu_seconds
        cpu_before["load generator"] = 0.0
        lags = await lag.stop()
        fetch_seconds = counter.seconds.get("poll", [])[fetch_times_before:]
    latencies: list[float] = []
    to_signal: list[float] = []
    after_signal: list[float] = []
    breakdowns: list[Breakdown] = []
    signal_times: list[datetime] = []
    close_times: list[datetime] = []
    for handle, when, outcome in zip(handles, resolved, outcomes, strict=True):
        assert outcome.kind == "signed", (handle.id, outcome.kind)
        closed = (await handle.describe()).close_time
        assert closed is not None
        close_times.append(closed)
        latencies.append((closed - when).total_seconds())
        history = await handle.fetch_history()
        breakdown = _breakdown(history, when)
        breakdowns.append(breakdown)
        if breakdown.signals:
            to_signal.append(breakdown.segments["approval -> first signal"])
            after_signal.append(latencies[-1] - to_signal[-1])
            signal_times.append(when + timedelta(seconds=to_signal[-1]))
    origin = min(resolved)
    timeline = {
        name: [(t - origin).total_seconds() for t in times]
        for name, times in (
            ("approvals resolved", resolved),
            ("first webhook signals", signal_times),
            ("workflows closed", close_times),
        )
        if times
    }
    result = Result(
        mode,
        latencies,
        Counter(counter.calls),
        [o.polls for o in outcomes],
        len(handles),
        to_signal=to_signal,
        breakdowns=breakdowns,
        cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        burst_seconds=burst_seconds,
        timeline=timeline,
        loop_lag=lags,
        fetch_seconds=fetch_seconds,
        after_signal=after_signal,
    )
    result.single = await _single_approvals(args, client, org, task_queue, policy, mode)
    return result


async def _single_approvals(
    args: argparse.Namespace,
    client: Client,
    org: Org,
    task_queue: str,
    policy: PollingPolicy,
    mode: str,
) -> list[float]:
    """Latency of one approval at a time, nothing else happening: the floor of the burst."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=org.base_url, timeout=60) as http:
        for i in range(args.single):
            handle = await _start(
                client, org, task_queue, policy, f"bench-webhook-{mode}-single-{uuid.uuid4()}-{i}"
            )
            (approval_id,) = await _approval_ids([handle])
            await org.client("alice", http).create_approval_decision(
                approval_id, ApprovalDecisionRequest(value="Approved")
            )
            token, body = await org.presign(http, "bob", approval_id)
            await asyncio.sleep(1.0)
            when = await _decide(http, org, approval_id, token, body)
            outcome = await handle.result()
            assert outcome.kind == "signed", (handle.id, outcome.kind)
            closed = (await handle.describe()).close_time
            assert closed is not None
            latencies.append((closed - when).total_seconds())
    return latencies


def _polls_in(policy: PollingPolicy, horizon: timedelta) -> int:
    elapsed, interval, polls = timedelta(0), policy.initial_interval, 0
    while elapsed + interval <= horizon:
        elapsed += interval
        polls += 1
        interval = min(interval * policy.backoff_coefficient, policy.max_interval)
    return polls


def _report_breakdown(results: list[Result]) -> None:
    print()
    print("where the burst's time went, per request (from its history; segments add up)")
    for r in results:
        if not r.breakdowns:
            continue
        print(f"  webhooks {r.mode}: segment p50 / p99 / mean (ms)")
        for segment in _SEGMENTS:
            values = [b.segments[segment] * 1000 for b in r.breakdowns]
            print(
                f"    {segment:<34} {_percentile(values, 0.5):6.0f} / "
                f"{_percentile(values, 0.99):6.0f} / {statistics.mean(values):6.0f}"
            )

        def mean(attr: str, r: Result = r) -> float:
            return statistics.mean(float(getattr(b, attr)) for b in r.breakdowns)

        print(
            f"    per request after the approval: {mean('workflow_tasks'):.2f} workflow tasks "
            f"({mean('failed_workflow_tasks'):.2f} failed), {mean('activities'):.2f} activity "
            f"tasks, {mean('local_activities'):.2f} local activities, {mean('signals'):.2f} "
            f"signals, {mean('events'):.1f} history events"
        )
        for name, offsets in r.timeline.items():
            ms = [x * 1000 for x in offsets]
            print(
                f"    {name:<22} from the first approval: first {min(ms):5.0f} ms, "
                f"median {_percentile(ms, 0.5):5.0f} ms, last {max(ms):5.0f} ms"
            )
        if r.fetch_seconds:
            ms = [x * 1000 for x in r.fetch_seconds]
            print(
                f"    the worker's reads of the request (GET, as the worker saw them): "
                f"p50 {_percentile(ms, 0.5):.0f} ms, p99 {_percentile(ms, 0.99):.0f} ms"
            )
        if r.loop_lag:
            ms = [x * 1000 for x in r.loop_lag]
            print(
                f"    worker event-loop lag (a 10 ms sleep's overshoot): p50 "
                f"{_percentile(ms, 0.5):.0f} ms, p99 {_percentile(ms, 0.99):.0f} ms, "
                f"max {max(ms):.0f} ms"
            )
        cpu = ", ".join(f"{name} {seconds:.2f}" for name, seconds in r.cpu.items())
        print(
            f"    worker CPU per approval: {r.cpu['worker+bench'] / r.n * 1000:.1f} ms "
            "(the worker's process, which also runs this script's bookkeeping)"
        )
        print(
            f"    burst: all {r.n} done {r.burst_seconds:.2f} s after the first decision was "
            f"sent; CPU seconds meanwhile: {cpu} (2 cores = {2 * r.burst_seconds:.2f})"
        )


def _report_floor(results: list[Result], floor: FloorResult) -> None:
    ms = [x * 1000 for x in floor.latencies]
    floor_p50, floor_p99 = _percentile(ms, 0.50), _percentile(ms, 0.99)
    print(
        f"  floor (n={len(ms)} signals at once to workflows that complete on them):"
        f"  p50 {floor_p50:5.0f} ms  p99 {floor_p99:5.0f} ms  max {max(ms):5.0f} ms"
    )
    for r in results:
        signgate = [x * 1000 for x in r.latencies]
        print(
            f"  burst ratio (webhooks {r.mode}): p50 "
            f"{_percentile(signgate, 0.50) / floor_p50:.2f}, p99 "
            f"{_percentile(signgate, 0.99) / floor_p99:.2f}  (signgate / floor)"
        )
        if r.after_signal:
            # The same, from each request's first webhook signal: Dfns's side (signing, the
            # deliveries to the receiver) left out, the receiver's signal and the engine in.
            engine = [x * 1000 for x in r.after_signal]
            print(
                f"    from the first webhook signal (the engine's part): p50 "
                f"{_percentile(engine, 0.50):.0f} ms, ratio "
                f"{_percentile(engine, 0.50) / floor_p50:.2f}; p99 "
                f"{_percentile(engine, 0.99):.0f} ms, "
                f"ratio {_percentile(engine, 0.99) / floor_p99:.2f}"
            )
    lag = [x * 1000 for x in floor.loop_lag]
    cpu = ", ".join(f"{name} {seconds:.2f}" for name, seconds in floor.cpu.items())
    print(
        f"    floor burst: all done {floor.burst_seconds:.2f} s after the signals were sent; "
        f"worker event-loop lag p99 {_percentile(lag, 0.99):.0f} ms; CPU seconds: {cpu}"
    )


def _report(results: list[Result], policies: dict[str, PollingPolicy], floor: FloorResult) -> None:
    print()
    print("latency from the sandbox's approval to the workflow's completion")
    for r in results:
        ms = [x * 1000 for x in r.latencies]
        print(
            f"  webhooks {r.mode:<3}  n={r.n}  p50 {_percentile(ms, 0.50):7.0f} ms"
            f"  p90 {_percentile(ms, 0.90):7.0f} ms  p99 {_percentile(ms, 0.99):7.0f} ms"
            f"  max {max(ms):7.0f} ms"
        )
        if r.single:
            alone = [x * 1000 for x in r.single]
            print(
                f"    one approval at a time (n={len(alone)}): p50 "
                f"{_percentile(alone, 0.50):5.0f} ms  max {max(alone):5.0f} ms"
            )
    _report_floor(results, floor)
    _report_breakdown(results)
    print()
    print("Dfns HTTP calls made by the worker, per signed request")
    for r in results:
        total = sum(r.calls.values()) / r.n
        parts = ", ".join(f"{name} {count / r.n:.2f}" for name, count in sorted(r.calls.items()))
        print(f"  webhooks {r.mode:<3}  {total:5.2f}  ({parts})")
        print(
            f"               polls per request: mean {statistics.mean(r.polls):.2f}, "
            f"max {max(r.polls)}"
        )
    for r in results:
        if r.receiver is not None:
            print(f"  receiver counts (webhooks {r.mode}): {json.dumps(r.receiver)}")
    print()
    print("polls a request waiting for approval makes (from the policy, not measured)")
    for mode, policy in policies.items():
        print(
            f"  webhooks {mode:<3}  first after {policy.initial_interval.total_seconds():g}s,"
            f" x{policy.backoff_coefficient:g} up to {policy.max_interval.total_seconds():g}s:"
            f" {_polls_in(policy, timedelta(hours=1))} in 1 h,"
            f" {_polls_in(policy, timedelta(days=1))} in 1 day"
        )


def _settings() -> Settings:
    """The shipped settings with the Dfns budget off, as the bench's workers run."""
    return Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "0"})


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    settings = _settings()
    policies = {
        "on": settings.polling_policy(webhooks=True),
        "off": settings.polling_policy(webhooks=False),
    }
    temporal_port, sandbox_port, receiver_port = (
        _common.free_port(),
        _common.free_port(),
        _common.free_port(),
    )
    dev_args = _common.dev_server_args(BIN / "temporal", temporal_port)
    if args.server_db == "wal":
        dev_args += [
            "--db-filename", str(workdir / "temporal.sqlite"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=1",
        ]  # fmt: skip
    sandbox_args = [
        sys.executable, "-m", "signgate.cli", "sandbox", "--port", str(sandbox_port),
        "--db", str(workdir / "sandbox.db"), "--log-level", "WARNING", "--executing-delay", "0",
        "--rate-limit", "0",  # the engine's own figures, not Dfns's budget
    ]  # fmt: skip
    with (
        _common.process(dev_args, workdir / "temporal.log") as dev,
        _common.process(sandbox_args, workdir / "sandbox.log") as sandbox,
    ):
        _common.wait_for(
            lambda: _common.listening(temporal_port),
            "the Temporal dev server",
            proc=dev,
            log=workdir / "temporal.log",
        )
        credentials = workdir / "sandbox-credentials.json"
        _common.wait_for(
            lambda: credentials.exists() and "baseUrl" in json.loads(credentials.read_text()),
            "the sandbox",
            proc=sandbox,
            log=workdir / "sandbox.log",
        )
        org = Org(f"http://127.0.0.1:{sandbox_port}", json.loads(credentials.read_text()))
        client = await Client.connect(
            f"127.0.0.1:{temporal_port}", data_converter=pydantic_data_converter
        )
        pids = {"temporal": dev.pid, "sandbox": sandbox.pid, "worker+bench": os.getpid()}
        floor, results = await _with_worker(
            args, client, org, workdir, temporal_port, receiver_port, pids
        )
    _report(results, policies, floor)


async def _with_worker(
    args: argparse.Namespace,
    client: Client,
    org: Org,
    workdir: Path,
    temporal_port: int,
    receiver_port: int,
    pids: dict[str, int],
) -> tuple[FloorResult, list[Result]]:
    settings = _settings()
    counter = CallCounter()
    task_queue = f"bench-webhook-{uuid.uuid4().hex[:6]}"
    results: list[Result] = []
    async with (
        httpx.AsyncClient(
            base_url=org.base_url,
            timeout=30,
            event_hooks={"request": [counter], "response": [counter.answered]},
        ) as http,
        httpx.AsyncClient(timeout=10) as callbacks,
        engine_workers(
            client,
            task_queue=task_queue,
            workflows=[*ENGINE_WORKFLOWS, SignalFloorWorkflow],
            activities=engine_activities(
                org.client("engine", http), callbacks, callback_secrets={}, ledgers={}
            ),
            **_worker_tuning(args),
        ),
    ):
        floor = await _floor_round(args, client, f"127.0.0.1:{temporal_port}", task_queue, pids)
        if args.mode in ("both", "on"):
            results.append(
                await _webhooks_on(
                    args,
                    client,
                    org,
                    workdir,
                    temporal_port,
                    receiver_port,
                    task_queue,
                    counter,
                    pids,
                )
            )
        if args.mode in ("both", "off"):
            results.append(
                await _round(
                    "off",
                    args,
                    client,
                    org,
                    task_queue,
                    counter,
                    settings.polling_policy(webhooks=False),
                    pids,
                )
            )
    return floor, results


def _worker_tuning(args: argparse.Namespace) -> dict[str, Any]:
    tuning: dict[str, Any] = {
        "max_concurrent_activities": args.max_activities,
        "max_concurrent_workflow_tasks": args.max_workflow_tasks,
    }
    if args.max_local_activities is not None:
        tuning["max_concurrent_local_activities"] = args.max_local_activities
    if args.workflow_pollers is not None:
        tuning["max_concurrent_workflow_task_polls"] = args.workflow_pollers
    return tuning


async def _webhooks_on(
    args: argparse.Namespace,
    client: Client,
    org: Org,
    workdir: Path,
    temporal_port: int,
    receiver_port: int,
    task_queue: str,
    counter: CallCounter,
    pids: dict[str, int],
) -> Result:
    settings = _settings()
    secret_file = workdir / "webhook.json"
    url = f"http://127.0.0.1:{receiver_port}/webhooks/dfns"
    async with httpx.AsyncClient(base_url=org.base_url, timeout=30) as http:
        admin = org.client("engine", http)
        registration = await register_webhook(admin, url, secret_file)
        env = _common.clean_env(
            SIGNGATE_WEBHOOK_SECRET_FILE=str(secret_file),
            SIGNGATE_LOG_LEVEL="WARNING",
            TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        )
        receiver_args = [sys.executable, "-m", "signgate.webhook", "--port", str(receiver_port)]
        try:
            with _common.process(receiver_args, workdir / "receiver.log", env) as receiver:
                _common.wait_for(
                    lambda: _common.listening(receiver_port),
                    "the webhook receiver",
                    proc=receiver,
                    log=workdir / "receiver.log",
                )
                result = await _round(
                    "on",
                    args,
                    client,
                    org,
                    task_queue,
                    counter,
                    settings.polling_policy(webhooks=True),
                    {**pids, "receiver": receiver.pid},
                )
                health = (await http.get(f"http://127.0.0.1:{receiver_port}/healthz")).json()
                result.receiver = health["counts"]
        finally:
            await admin.delete_webhook(registration.webhook_id)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests approved at once")
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds the requests wait before approval, webhooks off",
    )
    parser.add_argument(
        "--wait-on",
        type=float,
        default=20.0,
        help="the same with webhooks on: past the first safety-net poll (15 s), so that no "
        "poll falls in the burst",
    )
    parser.add_argument("--mode", choices=["both", "on", "off"], default="both")
    parser.add_argument(
        "--single", type=int, default=5, help="requests then approved one at a time, alone"
    )
    shipped = _settings()
    parser.add_argument(
        "--max-workflow-tasks",
        type=int,
        default=shipped.max_concurrent_workflow_tasks,
        help="the worker's workflow task slots (default: the worker's own default)",
    )
    parser.add_argument(
        "--max-activities",
        type=int,
        default=shipped.max_concurrent_activities,
        help="the worker's activity slots (default: the worker's own default)",
    )
    parser.add_argument("--max-local-activities", type=int, default=None)
    parser.add_argument("--workflow-pollers", type=int, default=None)
    parser.add_argument(
        "--server-db",
        choices=["memory", "wal"],
        default="memory",
        help="the dev server's persistence: in memory, or an SQLite file in WAL mode",
    )
    parser.add_argument("--decide", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--signal", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decide:
        asyncio.run(_decide_from_stdin())
        return
    if args.signal:
        asyncio.run(_signal_from_stdin())
        return
    configure_logging(level="WARNING")
    _common.stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="signgate-bench-webhook-") as directory:
        asyncio.run(bench(args, Path(directory)))


if __name__ == "__main__":
    main()
