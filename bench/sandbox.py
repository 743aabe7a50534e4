"""Sandbox benchmark: ``python bench/sandbox.py`` prints full signed requests per second.

One *flow* is what a Dfns client does for one signature: ``POST /auth/action/init``, sign
the challenge's clientData with the service account's Key credential, ``POST /auth/action``,
then ``POST /keys/{keyId}/signatures`` with the user-action token. Each flow is driven by
:class:`signgate.dfns.DfnsClient` (``generate_signature``) and checked to come back
``Signed`` with a signature.

The sandbox runs in its own process (``signgate sandbox`` from the venv, on 127.0.0.1, a
fresh database in a temporary directory, the shipped org) so server and client do not
share a GIL. It signs with the org's ``evm-ops`` key, which no policy gates, so every
request is signed while it is being answered. ``--workers W`` spreads the flows over W
client processes (``--concurrency`` flows in flight in each) for when one client process
cannot keep up with the server; the default is one. More than about 8 flows in flight per
client makes httpx's connection pool the bottleneck (its CPU per request grows with the
number of connections), so raise ``--workers`` rather than ``--concurrency``.

Printed: flows per second; latency of a whole flow (p50 / p90 / p99 / max); the mean time
of each HTTP step (init, action, create: request sent to response headers, as seen by the
client) and the client's own share (signing the challenge, building and parsing); the
sandbox's and the clients' CPU time per flow. The run is bounded by ``--requests`` and
``--max-seconds``; the sandbox process is stopped at the end. The figures depend on the
machine and on what else runs on it; the script asserts nothing.

    .venv/bin/python bench/sandbox.py --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.synchronize
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# httpcore 1.0.9 runs ``import sniffio`` each time it sets up a lock (several times per
# request). This venv has no sniffio (anyio no longer needs it), so every attempt searches
# sys.path before failing: a sixth of the client's CPU time. A ``None`` entry makes the import
# fail at once with the same outcome (asyncio), so the client spends its time on HTTP.
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _common  # noqa: E402
from signgate.dfns.auth import CredentialSigner  # noqa: E402
from signgate.dfns.client import DfnsClient  # noqa: E402
from signgate.dfns.requests import HashRequest  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "evm-ops"  # the shipped org: ECDSA secp256k1, no policy applies to it
IDENTITY = "engine"  # the initiator service account (Ed25519 credential)
STEPS = ("init", "action", "create")
_STARTED = "signgate_bench_started"


# --- the sandbox process ------------------------------------------------------------------


@contextmanager
def _sandbox(workdir: Path, log_level: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``signgate sandbox`` on a free port with a fresh database; yields (process, base URL)."""
    port = _common.free_port()
    db = workdir / "sandbox.db"
    args = [
        str(BIN / "signgate"), "sandbox", "--host", "127.0.0.1", "--port", str(port),
        "--rate-limit", "0", "--db", str(db), "--log-level", log_level,
    ]  # fmt: skip
    credentials = workdir / "sandbox-credentials.json"
    with (workdir / "sandbox.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            deadline = time.monotonic() + 60
            while not _has_base_url(credentials):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the sandbox exited with {proc.returncode}; see {workdir / 'sandbox.log'}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError("the sandbox did not start within 60 s")
                time.sleep(0.05)
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _has_base_url(path: Path) -> bool:
    try:
        return "baseUrl" in json.loads(path.read_text())
    except (OSError, ValueError):
        return False


# --- one client process ------------------------------------------------------------------


@dataclass
class Job:
    """What one client process does (picklable: it crosses to spawned workers)."""

    base_url: str
    token: str = field(repr=False)
    cred_id: str
    private_key_pem: str = field(repr=False)
    key_id: str
    server_pid: int
    requests: int
    concurrency: int
    warmup: int
    deadline: float  # time.monotonic(): start no new flow after it


@dataclass
class Result:
    """What one client process measured."""

    latencies: list[float] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))
    errors: Counter[str] = field(default_factory=Counter)
    began: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    server_cpu_began: float = 0.0  # the sandbox's CPU seconds when this client began
    server_cpu_ended: float = 0.0


def _step_of(request: httpx.Request) -> str:
    path = request.url.path
    if path.endswith("/auth/action/init"):
        return "init"
    if path.endswith("/auth/action"):
        return "action"
    return "create"


async def _run_job(job: Job, ready: multiprocessing.synchronize.Barrier | None) -> Result:
    result = Result()
    measuring = False

    async def on_request(request: httpx.Request) -> None:
        request.extensions[_STARTED] = time.perf_counter()

    async def on_response(response: httpx.Response) -> None:
        started = response.request.extensions.get(_STARTED)
        if measuring and isinstance(started, float):
            result.steps[_step_of(response.request)] += time.perf_counter() - started

    limits = httpx.Limits(
        max_connections=job.concurrency, max_keepalive_connections=job.concurrency
    )
    async with httpx.AsyncClient(
        base_url=job.base_url,
        timeout=30,
        limits=limits,
        event_hooks={"request": [on_request], "response": [on_response]},
    ) as http:
        signer = CredentialSigner(job.cred_id, job.private_key_pem, "http://localhost")
        dfns = DfnsClient(http, auth_token=job.token, signer=signer)

        async def flow() -> None:
            began = time.perf_counter()
            try:
                signed = await dfns.generate_signature(
                    job.key_id, HashRequest(hash=os.urandom(32).hex())
                )
            except Exception as exc:  # counted and reported, never fatal
                result.errors[type(exc).__name__] += 1
                return
            if signed.status != "Signed" or signed.signature is None:
                result.errors[f"status {signed.status}"] += 1
                return
            if measuring:
                result.latencies.append(time.perf_counter() - began)

        async def run(count: int) -> None:
            remaining = iter(range(count))

            async def lane() -> None:
                for _ in remaining:
                    if time.monotonic() > job.deadline:
                        return
                    await flow()

            await asyncio.gather(*(lane() for _ in range(min(job.concurrency, count))))

        await run(job.warmup)
        result.errors.clear()
        if ready is not None:
            await asyncio.to_thread(ready.wait)
        measuring = True
        cpu = _common.cpu_seconds()
        result.server_cpu_began = _common.cpu_seconds(job.server_pid)
        result.began = time.monotonic()
        await run(job.requests)
        result.ended = time.monotonic()
        result.server_cpu_ended = _common.cpu_seconds(job.server_pid)
        result.cpu_seconds = _common.cpu_seconds() - cpu
    return result


def _worker(
    job: Job, ready: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue[Result]
) -> None:
    results.put(asyncio.run(_run_job(job, ready)))


def _drive(jobs: list[Job]) -> list[Result]:
    """Run the jobs: in this process when there is one, else one spawned process each."""
    if len(jobs) == 1:
        return [asyncio.run(_run_job(jobs[0], None))]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(len(jobs))
    queue: multiprocessing.Queue[Result] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(job, ready, queue)) for job in jobs]
    for proc in procs:
        proc.start()
    try:
        deadline = max(job.deadline for job in jobs) + 60
        return [queue.get(timeout=max(1.0, deadline - time.monotonic())) for _ in jobs]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()


# --- report --------------------------------------------------------------------------------


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _report(args: argparse.Namespace, results: list[Result]) -> int:
    latencies = sorted(x for r in results for x in r.latencies)
    done = len(latencies)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    first = min(results, key=lambda r: r.began)
    last = max(results, key=lambda r: r.ended)
    wall = last.ended - first.began
    server_cpu = last.server_cpu_ended - first.server_cpu_began
    print(
        f"sandbox benchmark: {done} flows signed (init -> sign clientData -> /auth/action -> "
        f"POST /keys/{{id}}/signatures), {args.workers} client process(es) x "
        f"{args.concurrency} in flight, sandbox log level {args.sandbox_log_level}"
    )
    if done == 0:
        print(f"no flow completed; errors: {dict(errors)}")
        return 1
    print(f"throughput: {done / wall:.1f} flows/s ({done} in {wall:.2f} s)")
    ms = [x * 1000 for x in latencies]
    print(
        "latency per flow: "
        f"p50 {_percentile(ms, 0.50):.1f} ms, p90 {_percentile(ms, 0.90):.1f} ms, "
        f"p99 {_percentile(ms, 0.99):.1f} ms, max {ms[-1]:.1f} ms, "
        f"mean {sum(ms) / done:.1f} ms"
    )
    steps = {name: sum(r.steps[name] for r in results) / done * 1000 for name in STEPS}
    client_share = sum(ms) / done - sum(steps.values())
    print(
        "mean time per step: "
        + ", ".join(f"{name} {value:.1f} ms" for name, value in steps.items())
        + f", client (sign challenge, build, parse) {client_share:.1f} ms"
    )
    client_cpu = sum(r.cpu_seconds for r in results)
    print(
        f"CPU per flow: sandbox {server_cpu / done * 1000:.2f} ms, "
        f"clients {client_cpu / done * 1000:.2f} ms"
    )
    if errors:
        print(f"errors: {dict(errors)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="measured flows (all clients)")
    parser.add_argument("--concurrency", type=int, default=8, help="flows in flight per client")
    parser.add_argument("--workers", type=int, default=1, help="client processes (default 1)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured flows per client")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop starting flows after")
    parser.add_argument(
        "--sandbox-log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the sandbox's --log-level (INFO logs a line per request)",
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.workers) < 1 or args.warmup < 0:
        parser.error("--requests, --concurrency and --workers must be >= 1, --warmup >= 0")
    with (
        tempfile.TemporaryDirectory(prefix="signgate-bench-sandbox-") as tmp,
        _sandbox(Path(tmp), args.sandbox_log_level) as (proc, base_url),
    ):
        credentials = json.loads((Path(tmp) / "sandbox-credentials.json").read_text())
        ident = credentials["identities"][IDENTITY]
        deadline = time.monotonic() + args.max_seconds
        share, extra = divmod(args.requests, args.workers)
        jobs = [
            Job(
                base_url=base_url,
                token=ident["authToken"],
                cred_id=ident["credId"],
                private_key_pem=ident["privateKeyPem"],
                key_id=credentials["keys"][KEY]["keyId"],
                server_pid=proc.pid,
                requests=share + (1 if i < extra else 0),
                concurrency=args.concurrency,
                warmup=args.warmup,
                deadline=deadline,
            )
            for i in range(args.workers)
        ]
        jobs = [job for job in jobs if job.requests > 0]
        return _report(args, _drive(jobs))


if __name__ == "__main__":
    sys.exit(main())
