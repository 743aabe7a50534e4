"""Engine benchmark: ``python bench/engine.py`` prints the figures the README reports.

In one run, on one Temporal dev server (in-memory, started from the venv's ``temporal``),
with the sandbox in its own process (``signgate sandbox``, the shipped org) and the
engine's worker in this process:

1. throughput: ``SignatureWorkflow`` on an auto-approved key against a trivial
   one-activity workflow, in alternating rounds, as workflows per second and their ratio;
2. history events per signed request: auto-approved, and approved by two approvers after
   some polling;
3. worker memory (RSS of this process, which runs the worker) with N requests waiting for
   approval (5,000 by default), with the worker's default workflow cache and with every
   waiting workflow cached.

The figures depend on the machine; this script prints them and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The workflow sandbox re-imports workflow modules for every run. An installed worker reads
# them from .pyc files; with PYTHONDONTWRITEBYTECODE set (as on the build machines) it would
# compile them from source each time, which no deployment does. Cache bytecode aside.
BYTECODE_NOTE = ""
if sys.dont_write_bytecode:
    sys.dont_write_bytecode = False
    sys.pycache_prefix = tempfile.mkdtemp(prefix="signgate-bench-pyc-")
    BYTECODE_NOTE = f"(PYTHONDONTWRITEBYTECODE was set: bytecode cached in {sys.pycache_prefix})"

from activities.downstream import SqliteLedger  # noqa: E402
from bench import _common  # noqa: E402
from bench.trivial import TrivialWorkflow, noop  # noqa: E402
from signgate.contracts import PollingPolicy, SignatureWorkflowInput, SigningTarget  # noqa: E402
from signgate.dfns.requests import ApprovalDecisionRequest, HashRequest  # noqa: E402
from signgate.ids import SA_STATUS  # noqa: E402
from signgate.logs import configure_logging  # noqa: E402
from worker import ENGINE_WORKFLOWS, engine_activities, engine_workers  # noqa: E402
from workflows.signature import SignatureWorkflow  # noqa: E402

BIN = Path(sys.executable).parent


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Org(_common.Org):
    def key(self, name: str) -> SigningTarget:
        return SigningTarget(kind="key", id=self.key_id(name))


async def _run_many(
    n: int, concurrency: int, start: Callable[[int], Awaitable[Any]]
) -> tuple[float, list[Any]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with gate:
            return await start(i)

    began = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - began), list(results)


def _signature_input(target: SigningTarget, **overrides: Any) -> SignatureWorkflowInput:
    values: dict[str, Any] = {"target": target, "request": HashRequest(hash=os.urandom(32).hex())}
    values.update(overrides)
    return SignatureWorkflowInput.model_validate(values)


@contextlib.asynccontextmanager
async def engine_servers(workdir: Path) -> AsyncIterator[tuple[Client, Org, dict[str, int]]]:
    """A headless dev server and ``signgate sandbox`` (rate limit off: these benchmarks
    measure the engine, not Dfns's budget) as processes; yields a client, the sandbox org
    and the two pids. Both are stopped on the way out."""
    temporal_port = _common.free_port()
    sandbox_port = _common.free_port()
    dev_args = _common.dev_server_args(BIN / "temporal", temporal_port)
    sandbox_args = [
        str(BIN / "signgate"), "sandbox", "--port", str(sandbox_port),
        "--db", str(workdir / "sandbox.db"), "--rate-limit", "0",
        "--log-level", "WARNING", "--executing-delay", "0.2",
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
        credentials_path = workdir / "sandbox-credentials.json"
        _common.wait_for(
            lambda: (
                credentials_path.exists()
                and "baseUrl" in json.loads(credentials_path.read_text() or "{}")
            ),
            "the sandbox",
            proc=sandbox,
            log=workdir / "sandbox.log",
        )
        org = Org(f"http://127.0.0.1:{sandbox_port}", json.loads(credentials_path.read_text()))
        client = await Client.connect(
            f"127.0.0.1:{temporal_port}", data_converter=pydantic_data_converter
        )
        yield client, org, {"server": dev.pid, "sandbox": sandbox.pid}


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    async with engine_servers(workdir) as (client, org, pids):
        await _measure(args, client, org, workdir, pids)


@dataclass
class Cpu:
    """CPU seconds spent per workflow, by process, over one measured round."""

    pids: dict[str, int]

    def snapshot(self) -> dict[str, float]:
        taken = {name: _common.cpu_seconds(pid) for name, pid in self.pids.items()}
        taken["worker"] = _common.cpu_seconds()
        return taken

    @staticmethod
    def per_workflow(before: dict[str, float], after: dict[str, float], n: int) -> str:
        return ", ".join(f"{k} {(after[k] - before[k]) / n * 1000:.1f} ms" for k in before)


async def _measure(
    args: argparse.Namespace, client: Client, org: Org, workdir: Path, pids: dict[str, int]
) -> None:
    cpu = Cpu(pids)
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=org.base_url, timeout=30, limits=limits) as http,
        httpx.AsyncClient(timeout=10) as callbacks,
    ):
        activities = engine_activities(
            org.client("engine", http),
            callbacks,
            callback_secrets={"default": SecretStr("bench")},
            ledgers={"default": SqliteLedger(workdir / "ledger.sqlite")},
        )
        worker_kwargs: dict[str, Any] = {
            "task_queue": task_queue,
            "workflows": [*ENGINE_WORKFLOWS, TrivialWorkflow],
            "activities": [*activities, noop],
            "max_concurrent_workflow_tasks": 200,
            "max_concurrent_activities": 200,
        }
        auto = org.key("evm-ops")
        gated = org.key("evm-treasury")

        async def trivial(i: int) -> int:
            return await client.execute_workflow(
                TrivialWorkflow.run, i, id=f"trivial-{uuid.uuid4().hex}", task_queue=task_queue
            )

        async def signature(_i: int) -> Any:
            return await client.execute_workflow(
                SignatureWorkflow.run,
                _signature_input(auto),
                id=f"sig-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )

        async with engine_workers(client, **worker_kwargs):
            if BYTECODE_NOTE:
                print(BYTECODE_NOTE)
            print(f"warming up ({args.warmup} of each)...", flush=True)
            await _run_many(args.warmup, args.concurrency, trivial)
            _, warm = await _run_many(args.warmup, args.concurrency, signature)
            assert all(o.kind == "signed" and o.verification.status == "verified" for o in warm)

            trivial_rates: list[float] = []
            signature_rates: list[float] = []
            for round_no in range(args.rounds):
                before = cpu.snapshot()
                rate, _ = await _run_many(args.n, args.concurrency, trivial)
                trivial_cpu = Cpu.per_workflow(before, cpu.snapshot(), args.n)
                trivial_rates.append(rate)
                before = cpu.snapshot()
                rate, outcomes = await _run_many(args.n, args.concurrency, signature)
                signature_cpu = Cpu.per_workflow(before, cpu.snapshot(), args.n)
                signature_rates.append(rate)
                assert all(o.kind == "signed" for o in outcomes)
                print(
                    f"round {round_no + 1}: trivial {trivial_rates[-1]:.1f} wf/s "
                    f"(CPU per workflow: {trivial_cpu}); signature {signature_rates[-1]:.1f} wf/s "
                    f"(CPU per workflow: {signature_cpu})",
                    flush=True,
                )
            events_auto = await _events(client, warm[0].workflow_id)
            events_gated, polls = await _gated_events(client, org, gated, task_queue, http)
        tr, sr = statistics.median(trivial_rates), statistics.median(signature_rates)
        print()
        print(
            f"throughput, median of {args.rounds} rounds of {args.n} "
            f"(concurrency {args.concurrency}):"
        )
        print(f"  trivial one-activity workflow : {tr:6.1f} wf/s")
        print(f"  SignatureWorkflow (auto)      : {sr:6.1f} wf/s")
        print(f"  ratio                         : {sr / tr:6.2f} (target >= 0.6)")
        print("history events per signed request:")
        print(f"  auto-approved                 : {events_auto}")
        print(f"  approved after {polls} polls        : {events_gated}")

        print(f"\nmemory with {args.waiting} requests waiting for approval...", flush=True)
        for cache in (None, args.waiting + 100):
            label = "default cache (1000)" if cache is None else f"cache {cache} (all cached)"
            rss = await _memory(client, org, gated, http, activities, args, cache)
            print(f"  worker RSS, {label:28}: {rss[1]:7.1f} MB (idle {rss[0]:.1f} MB)", flush=True)
        print("  (target: under 400 MB)")


async def _events(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)


async def _gated_events(
    client: Client, org: Org, gated: SigningTarget, task_queue: str, http: httpx.AsyncClient
) -> tuple[int, int]:
    polling = PollingPolicy(
        initial_interval=timedelta(seconds=1), max_interval=timedelta(seconds=2)
    )
    handle = await client.start_workflow(
        SignatureWorkflow.run,
        _signature_input(gated, polling=polling),
        id=f"gated-{uuid.uuid4().hex}",
        task_queue=task_queue,
    )
    approval_id = None
    while approval_id is None:
        approval_id = (await handle.query(SignatureWorkflow.state)).approval_id
        await asyncio.sleep(0.05)
    await asyncio.sleep(4)
    for name in ("alice", "bob"):
        await org.client(name, http).create_approval_decision(
            approval_id, ApprovalDecisionRequest(value="Approved")
        )
    outcome = await handle.result()
    return await _events(client, handle.id), outcome.polls


async def _memory(
    client: Client,
    org: Org,
    gated: SigningTarget,
    http: httpx.AsyncClient,
    activities: list[Callable[..., Any]],
    args: argparse.Namespace,
    cache: int | None,
) -> tuple[float, float]:
    task_queue = f"bench-mem-{uuid.uuid4().hex[:8]}"
    kwargs: dict[str, Any] = {
        "max_concurrent_workflow_tasks": 200,
        "max_concurrent_activities": 200,
    }
    if cache is not None:
        kwargs["max_cached_workflows"] = cache
    polling = PollingPolicy(initial_interval=timedelta(hours=1))
    async with engine_workers(client, task_queue=task_queue, activities=activities, **kwargs):
        gc.collect()
        idle = _rss_mb()

        async def start(_i: int) -> Any:
            return await client.start_workflow(
                SignatureWorkflow.run,
                _signature_input(gated, polling=polling),
                id=f"wait-{uuid.uuid4().hex}",
                task_queue=task_queue,
            )

        await _run_many(args.waiting, 200, start)
        query = f"TaskQueue = '{task_queue}' AND {SA_STATUS.name} = 'Pending'"
        await _until(lambda: _count(client, query), args.waiting)
        gc.collect()
        loaded = _rss_mb()
    # The waiting workflows stay open on the in-memory server, which ends with the run.
    return idle, loaded


async def _count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def _until(count: Callable[[], Awaitable[int]], target: int) -> None:
    """Poll a visibility count (eventually consistent) until it reaches ``target``."""
    for _ in range(3600):
        if await count() >= target:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"only {await count()} of {target} requests reached Pending")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="workflows per throughput round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100, help="workflows in flight")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--waiting", type=int, default=5000, help="requests waiting for approval")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    _common.stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as tmp:
        asyncio.run(bench(args, Path(tmp)))
    # Skip interpreter teardown: the Temporal core runtime can crash while finalising
    # (sdk-python#300), which would turn a finished benchmark into a non-zero exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
