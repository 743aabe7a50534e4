"""Batch benchmark: ``python bench/batch.py`` prints payouts per second three ways, in one run.

On one Temporal dev server (in-memory) with the sandbox in its own process and the engine's
worker in this process, N auto-approved EIP-1559 payouts (key ``evm-ops``) are signed:

1. as one ``PayoutBatchWorkflow`` (``--concurrency`` in flight, continuing as new every 250);
2. as N independent ``SignatureWorkflow`` s started at once by one client (what a script
   calling ``signgate.client`` or ``start_workflow`` in a loop does);
3. as N independent ``SignatureWorkflow`` s started by ``signgate sign --transaction`` (one
   process per payout, ``--cli-parallel`` at a time), the CLI a shell loop would run.

Each figure is N divided by the time from the first start to the last signed outcome; the
three run in turn, on the same servers and worker, after a warm-up. The figures depend on the
machine; this script prints them and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.client import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.downstream import SqliteLedger  # noqa: E402
from activities.payout import serialize_eip1559  # noqa: E402
from bench import _common  # noqa: E402
from bench.engine import BIN, BYTECODE_NOTE, Org, engine_servers  # noqa: E402
from signgate.contracts import (  # noqa: E402
    BatchPayout,
    BuildTransferInput,
    PayoutBatchInput,
    SignatureOutcome,
    SignatureWorkflowInput,
)
from signgate.dfns.requests import TransactionRequest  # noqa: E402
from signgate.logs import configure_logging  # noqa: E402
from worker import engine_activities, engine_workers  # noqa: E402
from workflows.batch import PayoutBatchWorkflow  # noqa: E402
from workflows.signature import SignatureWorkflow  # noqa: E402

TO = "0x" + "42" * 20
SIGNED = ("signed", "confirmed")


def _transfer(nonce: int) -> BuildTransferInput:
    return BuildTransferInput(
        chain_id=11155111,
        nonce=nonce,
        to=TO,
        value_wei=10**15 + nonce,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
    )


def _transaction_hex(nonce: int) -> str:
    return "0x" + serialize_eip1559(_transfer(nonce)).hex()


async def _batch(client: Client, org: Org, tq: str, n: int, concurrency: int) -> float:
    batch_id = f"bench-batch-{uuid.uuid4().hex[:8]}"
    payouts = [
        BatchPayout(id=f"{batch_id}-{i}", to=TO, value_wei=10**15 + i, nonce=i) for i in range(n)
    ]
    began = time.perf_counter()
    outcome = await client.execute_workflow(
        PayoutBatchWorkflow.run,
        PayoutBatchInput(
            source=org.key("evm-ops"), payouts=payouts, concurrency=concurrency, deliveries=[]
        ),
        id=batch_id,
        task_queue=tq,
    )
    elapsed = time.perf_counter() - began
    signed = sum(outcome.by_outcome.get(kind, 0) for kind in SIGNED)
    assert signed == n, outcome.by_outcome
    return n / elapsed


async def _independent(client: Client, org: Org, tq: str, n: int) -> float:
    prefix = f"bench-ind-{uuid.uuid4().hex[:8]}"
    source = org.key("evm-ops")
    began = time.perf_counter()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                SignatureWorkflow.run,
                SignatureWorkflowInput(
                    target=source,
                    request=TransactionRequest(
                        transaction=_transaction_hex(i), network="EthereumSepolia"
                    ),
                ),
                id=f"{prefix}-{i}",
                task_queue=tq,
            )
            for i in range(n)
        )
    )
    outcomes = await asyncio.gather(*(handle.result() for handle in handles))
    elapsed = time.perf_counter() - began
    assert all(o.kind in SIGNED for o in outcomes)
    return n / elapsed


async def _cli(
    client: Client, tq: str, n: int, parallel: int, env: dict[str, str], key_id: str, tmp: Path
) -> float:
    prefix = f"bench-cli-{uuid.uuid4().hex[:8]}"
    files = []
    for i in range(n):
        path = tmp / f"{prefix}-{i}.hex"
        path.write_text(_transaction_hex(i))
        files.append(path)
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> SignatureOutcome:
        async with gate:
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "signgate"), "sign", "--key", key_id, "--transaction", str(files[i]),
                "--network", "EthereumSepolia", "--request-id", f"{prefix}-{i}", "--json",
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"signgate sign exited {proc.returncode}: {err.decode()}")
            assert json.loads(out.splitlines()[0])["existing"] is False
        handle = client.get_workflow_handle_for(SignatureWorkflow.run, f"{prefix}-{i}")
        return await handle.result()

    began = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - began
    assert all(o.kind in SIGNED for o in outcomes)
    return n / elapsed


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    async with engine_servers(workdir) as (client, org, _pids):
        tq = f"bench-{uuid.uuid4().hex[:8]}"
        engine = org.credentials["identities"]["engine"]
        pem = workdir / "engine.pem"
        pem.write_text(engine["privateKeyPem"])
        pem.chmod(0o600)
        cli_env = _common.clean_env(
            TEMPORAL_ADDRESS=client.service_client.config.target_host,
            SIGNGATE_TASK_QUEUE=tq,
            SIGNGATE_DFNS_BASE_URL=org.base_url,
            SIGNGATE_DFNS_AUTH_TOKEN=engine["authToken"],
            SIGNGATE_DFNS_CREDENTIAL_ID=engine["credId"],
            SIGNGATE_DFNS_PRIVATE_KEY_FILE=str(pem),
        )
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
            async with engine_workers(
                client,
                task_queue=tq,
                activities=activities,
                max_concurrent_workflow_tasks=200,
                max_concurrent_activities=200,
            ):
                if BYTECODE_NOTE:
                    print(BYTECODE_NOTE)
                print(f"warming up ({args.warmup} payouts each way)...", flush=True)
                await _batch(client, org, tq, args.warmup, args.concurrency)
                await _independent(client, org, tq, args.warmup)
                rates: dict[str, list[float]] = {"batch": [], "independent": [], "cli": []}
                key_id = org.key_id("evm-ops")
                for round_no in range(args.rounds):
                    rates["batch"].append(await _batch(client, org, tq, args.n, args.concurrency))
                    rates["independent"].append(await _independent(client, org, tq, args.n))
                    rates["cli"].append(
                        await _cli(client, tq, args.n, args.cli_parallel, cli_env, key_id, workdir)
                    )
                    print(
                        f"round {round_no + 1}: "
                        + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()),
                        flush=True,
                    )
    med = {k: statistics.median(v) for k, v in rates.items()}
    rows = [
        (f"PayoutBatchWorkflow (concurrency {args.concurrency})", med["batch"]),
        ("independent SignatureWorkflows, one client", med["independent"]),
        (f"independent, `signgate sign` x{args.cli_parallel} processes", med["cli"]),
    ]
    print()
    print(f"{args.n} auto-approved payouts, payouts per second (median of {args.rounds} rounds):")
    for label, rate in rows:
        print(f"  {label:48}: {rate:6.1f}")
    print(f"  {'batch / one client':48}: {med['batch'] / med['independent']:6.2f}")
    print(f"  {'batch / CLI':48}: {med['batch'] / med['cli']:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="payouts per round and way")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100, help="the batch's in flight")
    parser.add_argument("--cli-parallel", type=int, default=8, help="signgate sign at a time")
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    configure_logging(level="WARNING")
    _common.stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="signgate-bench-") as tmp:
        asyncio.run(bench(args, Path(tmp)))
    sys.stdout.flush()
    os._exit(0)  # skip the Temporal runtime's teardown (sdk-python#300)


if __name__ == "__main__":
    main()
