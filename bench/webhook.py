"""Webhook benchmark: ``python bench/webhook.py`` prints what push buys over pull.

One run starts a Temporal dev server (in memory, the venv's ``temporal``), the sandbox in its
own process (``signgate sandbox``, the shipped org, signing at once on approval), the
webhook receiver in its own process (``python -m signgate.webhook``, registered with the
sandbox) and the engine's worker in this process. Then, twice:

* **webhooks on**: N requests on the treasury key (two approvals needed) start with the
  ``webhook_poll_*`` policy, wait ``--wait`` seconds, and are approved at once: alice
  approves them all, then bob's N deciding approvals are sent together;
* **webhooks off**: the same with no webhook registered and the tight ``poll_*`` policy.

It prints, per mode: the latency from the sandbox's approval (the approval's
``dateResolved``) to the workflow's completion (its close time), p50 / p90 / p99 / max; the
Dfns HTTP calls the worker made per signed request (a user-action-signed submit is three:
challenge, signed challenge, write), split by purpose; and polls per request. For context it
also prints how many polls each policy makes for a request that waits an hour (arithmetic on
the policy, not a measurement).

Bob's user actions are signed before the burst, so "approved at once" is N plain decision
POSTs sent together; the sandbox still takes them one after another, and its approval
timestamps say when each one resolved.

The figures depend on the machine; the script asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from signgate import ids  # noqa: E402
from signgate.contracts import (  # noqa: E402
    PollingPolicy,
    SignatureOutcome,
    SignatureProgress,
    SignatureWorkflowInput,
    SigningTarget,
)
from signgate.dfns.auth import CredentialSigner  # noqa: E402
from signgate.dfns.client import DfnsClient  # noqa: E402
from signgate.dfns.requests import ApprovalDecisionRequest, HashRequest  # noqa: E402
from signgate.logs import configure_logging  # noqa: E402
from signgate.settings import Settings  # noqa: E402
from signgate.webhook.command import register_webhook  # noqa: E402
from worker import ENGINE_WORKFLOWS, engine_activities  # noqa: E402
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "TEMPORAL_"))}
    env.update(extra)
    return env


@contextmanager
def _process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own venv binaries, fixed arguments
            args, stdout=out, stderr=subprocess.STDOUT, env=env or _clean_env()
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class Org:
    base_url: str
    credentials: dict[str, Any]

    def client(self, name: str, http: httpx.AsyncClient) -> DfnsClient:
        ident = self.credentials["identities"][name]
        signer = CredentialSigner(ident["credId"], ident["privateKeyPem"], "http://localhost")
        return DfnsClient(http, auth_token=ident["authToken"], signer=signer)

    def target(self) -> SigningTarget:
        return SigningTarget(kind="key", id=self.credentials["keys"][KEY]["keyId"])

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
    """Counts the worker's HTTP requests to Dfns by purpose (an httpx request hook)."""

    calls: Counter[str] = field(default_factory=Counter)

    async def __call__(self, request: httpx.Request) -> None:
        path = request.url.path
        purpose = next((name for pattern, name in _PURPOSES if pattern.search(path)), path)
        self.calls[purpose] += 1


@dataclass
class Result:
    mode: str
    latencies: list[float]
    calls: Counter[str]
    polls: list[int]
    n: int
    receiver: dict[str, Any] | None = None
    to_signal: list[float] = field(default_factory=list)


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


async def _round(
    mode: str,
    args: argparse.Namespace,
    client: Client,
    org: Org,
    task_queue: str,
    counter: CallCounter,
    policy: PollingPolicy,
) -> Result:
    counter.calls.clear()
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(20)

    async def start(i: int) -> Handle:
        async with gate:
            return await client.start_workflow(
                SignatureWorkflow.run,
                SignatureWorkflowInput(
                    target=org.target(),
                    request=HashRequest(hash="0x" + os.urandom(32).hex()),
                    polling=policy,
                ),
                id=f"bench-webhook-{mode}-{run}-{i}",
                task_queue=task_queue,
            )

    began = time.monotonic()
    handles = list(await asyncio.gather(*(start(i) for i in range(args.requests))))
    approvals = await _approval_ids(handles)
    await asyncio.sleep(max(0.0, args.wait - (time.monotonic() - began)))

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
        print(f"  [{mode}] {len(approvals)} requests waited {args.wait:g}s; bob approves all")

        async def decide(approval_id: str, token: str, body: bytes) -> datetime:
            response = await http.post(
                f"/v2/policy-approvals/{approval_id}/decisions",
                content=body,
                headers={**org.headers("bob"), "X-DFNS-USERACTION": token},
            )
            response.raise_for_status()
            return datetime.fromisoformat(response.json()["dateResolved"])

        pairs = zip(approvals, prepared, strict=True)
        resolved = list(await asyncio.gather(*(decide(a, t, b) for a, (t, b) in pairs)))

    outcomes = await asyncio.gather(*(h.result() for h in handles))
    latencies: list[float] = []
    to_signal: list[float] = []
    for handle, when, outcome in zip(handles, resolved, outcomes, strict=True):
        assert outcome.kind == "signed", (handle.id, outcome.kind)
        closed = (await handle.describe()).close_time
        assert closed is not None
        latencies.append((closed - when).total_seconds())
        signalled = await _first_signal_after(handle, when)
        if signalled is not None:
            to_signal.append((signalled - when).total_seconds())
    return Result(
        mode,
        latencies,
        Counter(counter.calls),
        [o.polls for o in outcomes],
        len(handles),
        to_signal=to_signal,
    )


async def _first_signal_after(handle: Handle, moment: datetime) -> datetime | None:
    """When the first webhook signal after ``moment`` entered the workflow's history."""
    history = await handle.fetch_history()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        when = event.event_time.ToDatetime(tzinfo=UTC)
        if when >= moment:
            return when
    return None


def _polls_in(policy: PollingPolicy, horizon: timedelta) -> int:
    elapsed, interval, polls = timedelta(0), policy.initial_interval, 0
    while elapsed + interval <= horizon:
        elapsed += interval
        polls += 1
        interval = min(interval * policy.backoff_coefficient, policy.max_interval)
    return polls


def _report(results: list[Result], policies: dict[str, PollingPolicy]) -> None:
    print()
    print("latency from the sandbox's approval to the workflow's completion")
    for r in results:
        ms = [x * 1000 for x in r.latencies]
        print(
            f"  webhooks {r.mode:<3}  n={r.n}  p50 {_percentile(ms, 0.50):7.0f} ms"
            f"  p90 {_percentile(ms, 0.90):7.0f} ms  p99 {_percentile(ms, 0.99):7.0f} ms"
            f"  max {max(ms):7.0f} ms"
        )
        if r.to_signal:
            push = [x * 1000 for x in r.to_signal]
            print(
                f"    of which approval -> webhook signal in history: p50 "
                f"{_percentile(push, 0.50):5.0f} ms  p99 {_percentile(push, 0.99):5.0f} ms "
                "(sandbox dispatch, receiver, Temporal); the rest is the worker's poll, "
                "verify and approval read"
            )
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


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    settings = Settings.from_env({})
    policies = {
        "on": settings.polling_policy(webhooks=True),
        "off": settings.polling_policy(webhooks=False),
    }
    temporal_port, sandbox_port, receiver_port = _free_port(), _free_port(), _free_port()
    dev_args = [
        str(BIN / "temporal"), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
        "--port", str(temporal_port), "--http-port", str(_free_port()), "--log-level", "error",
    ]  # fmt: skip
    for key in ids.SEARCH_ATTRIBUTES:
        dev_args += ["--search-attribute", f"{key.name}=Keyword"]
    sandbox_args = [
        sys.executable, "-m", "signgate.cli", "sandbox", "--port", str(sandbox_port),
        "--db", str(workdir / "sandbox.db"), "--log-level", "WARNING", "--executing-delay", "0",
    ]  # fmt: skip
    with (
        _process(dev_args, workdir / "temporal.log"),
        _process(sandbox_args, workdir / "sandbox.log"),
    ):
        _wait_for(lambda: _listening(temporal_port), "the Temporal dev server")
        credentials = workdir / "sandbox-credentials.json"
        _wait_for(
            lambda: credentials.exists() and "baseUrl" in json.loads(credentials.read_text()),
            "the sandbox",
        )
        org = Org(f"http://127.0.0.1:{sandbox_port}", json.loads(credentials.read_text()))
        client = await Client.connect(
            f"127.0.0.1:{temporal_port}", data_converter=pydantic_data_converter
        )
        results = await _with_worker(args, client, org, workdir, temporal_port, receiver_port)
    _report(results, policies)


async def _with_worker(
    args: argparse.Namespace,
    client: Client,
    org: Org,
    workdir: Path,
    temporal_port: int,
    receiver_port: int,
) -> list[Result]:
    settings = Settings.from_env({})
    counter = CallCounter()
    task_queue = f"bench-webhook-{uuid.uuid4().hex[:6]}"
    results: list[Result] = []
    async with (
        httpx.AsyncClient(
            base_url=org.base_url, timeout=30, event_hooks={"request": [counter]}
        ) as http,
        httpx.AsyncClient(timeout=10) as callbacks,
        Worker(
            client,
            task_queue=task_queue,
            workflows=list(ENGINE_WORKFLOWS),
            activities=engine_activities(
                org.client("engine", http), callbacks, callback_secrets={}, ledgers={}
            ),
            max_concurrent_activities=200,
            max_concurrent_workflow_tasks=200,
        ),
    ):
        if args.mode in ("both", "on"):
            results.append(
                await _webhooks_on(
                    args, client, org, workdir, temporal_port, receiver_port, task_queue, counter
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
                )
            )
    return results


async def _webhooks_on(
    args: argparse.Namespace,
    client: Client,
    org: Org,
    workdir: Path,
    temporal_port: int,
    receiver_port: int,
    task_queue: str,
    counter: CallCounter,
) -> Result:
    settings = Settings.from_env({})
    secret_file = workdir / "webhook.json"
    url = f"http://127.0.0.1:{receiver_port}/webhooks/dfns"
    async with httpx.AsyncClient(base_url=org.base_url, timeout=30) as http:
        admin = org.client("engine", http)
        registration = await register_webhook(admin, url, secret_file)
        env = _clean_env(
            SIGNGATE_WEBHOOK_SECRET_FILE=str(secret_file),
            SIGNGATE_LOG_LEVEL="WARNING",
            TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        )
        receiver_args = [sys.executable, "-m", "signgate.webhook", "--port", str(receiver_port)]
        try:
            with _process(receiver_args, workdir / "receiver.log", env):
                _wait_for(lambda: _listening(receiver_port), "the webhook receiver")
                result = await _round(
                    "on",
                    args,
                    client,
                    org,
                    task_queue,
                    counter,
                    settings.polling_policy(webhooks=True),
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
        "--wait", type=float, default=10.0, help="seconds the requests wait before approval"
    )
    parser.add_argument("--mode", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory(prefix="signgate-bench-webhook-") as directory:
        asyncio.run(bench(args, Path(directory)))


if __name__ == "__main__":
    main()
