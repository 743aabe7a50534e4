"""``python -m signgate.demo`` (``make demo``): the dev stack and four payouts, start to finish.

Starts the stack of ``signgate dev`` (free ports, state in ``.signgate/demo``, wiped first so
every run starts from a fresh org), runs four ``PayoutWorkflow``s side by side and shows
their progress live:

* a small payout, under the demo's 0.1 ETH threshold: paid from the ungated operations
  wallet, signed at once;
* a large one from the treasury wallet, whose policy needs two of alice, bob and carol:
  after a pause alice approves, then bob;
* another treasury payout, which carol denies;
* a treasury payout with a 20-second deadline that nobody approves: at the deadline the
  engine denies its own pending approval and reports ``expired``.

The sandbox's policy engine cannot value a serialized transaction (its amount rules fail
closed), so the threshold is applied where the payout's source wallet is chosen; the
approval policy itself is the default org's. Every signed transaction is checked twice: by
the engine's verification activity, and here, by recovering the sender from the signed
transaction and comparing it with the wallet's address.

Ends with a summary table, stops the stack and checks that none of its processes is left.
Exit code 0 when every payout ended as expected. ``<state>/demo-summary.json`` records the
outcomes and the stack's process ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from signgate.commands.approve import decide
from signgate.commands.common import (
    CommandError,
    DfnsAccess,
    SandboxCredentials,
    pid_alive,
    print_table,
)
from signgate.commands.dev import DevOptions, DevStack
from signgate.commands.progress import ApprovalReader, Snapshot, snapshot
from signgate.settings import Settings

__all__ = ["SCENARIOS", "Scenario", "main"]

THRESHOLD_WEI = 10**17  # 0.1 ETH
_MARKER = ".signgate-demo"
_SEPOLIA = 11155111
_GWEI = 10**9


@dataclass(frozen=True)
class Scenario:
    """One payout of the demo and what should become of it."""

    name: str
    key: str  # the sandbox key whose first wallet pays
    value_wei: int
    to: str
    nonce: int
    expect: str
    story: str
    deadline_seconds: float | None = None
    approvers: tuple[str, ...] = ()
    deny_by: str | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="small",
        key="evm-ops",
        value_wei=2 * 10**16,
        to="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        nonce=0,
        expect="signed",
        story="under the threshold: paid from the operations wallet, no approval needed",
    ),
    Scenario(
        name="two-approvals",
        key="evm-treasury",
        value_wei=25 * 10**17,
        to="0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        nonce=0,
        expect="signed",
        story="treasury wallet: alice, then bob approve after a pause",
        approvers=("alice", "bob"),
    ),
    Scenario(
        name="denied",
        key="evm-treasury",
        value_wei=40 * 10**18,
        to="0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        nonce=1,
        expect="rejected",
        story="treasury wallet: carol denies it",
        deny_by="carol",
    ),
    Scenario(
        name="deadline",
        key="evm-treasury",
        value_wei=75 * 10**16,
        to="0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        nonce=2,
        expect="expired",
        story="treasury wallet, 20 s deadline, nobody decides: the engine withdraws it",
        deadline_seconds=20.0,
    ),
)


def _eth(wei: int) -> str:
    text = format(Decimal(wei) / Decimal(10**18), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} ETH"


@dataclass
class _Run:
    """A scenario in flight."""

    scenario: Scenario
    payout_id: str
    wallet: dict[str, Any]
    snap: Snapshot | None = None
    done: bool = False
    outcome: Any = None
    failure: str | None = None
    finished_after: float | None = None
    decisions: list[str] = field(default_factory=list)

    @property
    def signature_id(self) -> str:
        return f"{self.payout_id}/signature"


class _Live:
    """The progress view: event lines, plus a table redrawn in place on a terminal."""

    def __init__(self, out: TextIO, runs: Sequence[_Run], started: float) -> None:
        self._out = out
        self._runs = runs
        self._started = started
        self._tty = out.isatty()
        self._drawn = 0
        self._last: dict[str, str] = {}

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._started:6.1f}s"

    def _state(self, run: _Run) -> str:
        if run.done:
            if run.outcome is not None:
                return f"finished: {run.outcome.kind}"
            return f"failed: {run.failure}"
        if run.snap is None:
            return "building the transfer"
        return run.snap.describe(compact=True)

    def event(self, text: str) -> None:
        self._erase()
        print(f"{self._elapsed()}  {text}", file=self._out, flush=True)
        self._draw()

    def tick(self) -> None:
        if self._tty:
            self._erase()
            self._draw()
            return
        for run in self._runs:
            state = self._state(run)
            # Without a terminal, print changes only (time in status changes every tick).
            key = state if run.done or run.snap is None else repr(run.snap.key())
            if self._last.get(run.scenario.name) != key:
                self._last[run.scenario.name] = key
                print(
                    f"{self._elapsed()}  {run.scenario.name:<14} {state}",
                    file=self._out,
                    flush=True,
                )

    def _draw(self) -> None:
        if not self._tty:
            return
        lines = [f"  {run.scenario.name:<14} {self._state(run)}" for run in self._runs]
        for line in lines:
            print(line[: shutil.get_terminal_size().columns - 1], file=self._out)
        self._out.flush()
        self._drawn = len(lines)

    def _erase(self) -> None:
        if self._tty and self._drawn:
            self._out.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0

    def close(self) -> None:
        self._erase()
        self._draw()
        self._drawn = 0


async def _wait_for_approval(run: _Run, deadline: float) -> str:
    while time.monotonic() < deadline:
        if run.snap is not None and run.snap.approval_id:
            return run.snap.approval_id
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{run.payout_id}: no approval appeared")


async def _approver(
    run: _Run,
    creds: SandboxCredentials,
    settings: Settings,
    live: _Live,
    pause: float,
) -> None:
    scenario = run.scenario
    if not scenario.approvers and scenario.deny_by is None:
        return
    approval_id = await _wait_for_approval(run, time.monotonic() + 60)
    await asyncio.sleep(pause)
    deciders = [(name, False) for name in scenario.approvers]
    if scenario.deny_by is not None:
        deciders = [(scenario.deny_by, True)]
    for index, (name, deny) in enumerate(deciders):
        if index:
            await asyncio.sleep(pause / 2)
        access = DfnsAccess(creds.base_url, creds.identity(name), settings, creds)
        reason = "over the weekly treasury budget" if deny else "checked against the invoice"
        verb = "--deny " if deny else ""
        live.event(
            f"{name} decides on {scenario.name}: signgate approve {approval_id} --as {name} "
            f'{verb}--reason "{reason}"'
        )
        decision = await decide(access, approval_id, deny=deny, reason=reason)
        run.decisions.append(f"{name} {'denied' if deny else 'approved'}")
        live.event(f"  -> approval {decision.approval.status}, {decision.tally.summary()}")


async def _watch(run: _Run, client: Any, reader: ApprovalReader, started: float) -> None:
    from temporalio.client import WorkflowFailureError

    from signgate.commands.progress import failure_text
    from signgate.contracts import PayoutOutcome

    handle = client.get_workflow_handle(run.payout_id, result_type=PayoutOutcome)
    result = asyncio.create_task(handle.result())
    child = client.get_workflow_handle(run.signature_id)
    while not result.done():
        snap = await snapshot(child, reader)
        if snap.answered:
            run.snap = snap
        await asyncio.wait({result}, timeout=0.4)
    try:
        run.outcome = result.result()
    except WorkflowFailureError as exc:
        run.failure = failure_text(exc)
    run.finished_after = time.monotonic() - started
    run.done = True


async def _run_payouts(
    stack: DevStack, out: TextIO, pause: float, deadline_seconds: float
) -> list[_Run]:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from signgate import ids
    from signgate.contracts import BuildTransferInput, PayoutInput, SigningTarget

    info = stack.info
    creds = stack.credentials
    assert info is not None and creds is not None
    settings = Settings.from_env({})
    client = await Client.connect(
        info.temporal_address, namespace=info.namespace, data_converter=pydantic_data_converter
    )
    engine = DfnsAccess(creds.base_url, creds.identity(creds.initiator), settings, creds)
    tag = uuid.uuid4().hex[:6]
    keys = _keys(creds)
    runs = [
        _Run(scenario, f"payout-{scenario.name}-{tag}", keys[scenario.key]["wallets"][0])
        for scenario in SCENARIOS
    ]
    print("", file=out)
    print("Payouts:", file=out)
    for run in runs:
        wallet = run.wallet
        print(
            f"  {run.scenario.name:<14} {_eth(run.scenario.value_wei):>9} from {wallet['name']}"
            f" ({wallet['address']}): {run.scenario.story}",
            file=out,
        )
    print("", file=out, flush=True)
    started = time.monotonic()
    now = datetime.now(UTC)
    for run in runs:
        scenario = run.scenario
        deadline = None
        if scenario.deadline_seconds is not None:
            deadline = now + timedelta(seconds=deadline_seconds)
        await client.start_workflow(
            ids.PAYOUT_WORKFLOW,
            PayoutInput(
                source=SigningTarget(kind="wallet", id=run.wallet["id"]),
                transfer=BuildTransferInput(
                    chain_id=_SEPOLIA,
                    nonce=scenario.nonce,
                    to=scenario.to,
                    value_wei=scenario.value_wei,
                    max_fee_per_gas=30 * _GWEI,
                    max_priority_fee_per_gas=_GWEI,
                ),
                deadline=deadline,
                polling=settings.polling_policy(webhooks=True),
            ),
            id=run.payout_id,
            task_queue=info.task_queue,
        )
    live = _Live(out, runs, started)
    live.event(f"started {len(runs)} PayoutWorkflows (ids payout-<name>-{tag})")
    reader_tasks = [
        asyncio.create_task(_watch(run, client, ApprovalReader(engine), started)) for run in runs
    ]
    approver_tasks = [
        asyncio.create_task(_approver(run, creds, settings, live, pause)) for run in runs
    ]
    while not all(task.done() for task in reader_tasks):
        live.tick()
        await asyncio.sleep(0.5)
    live.close()
    for task in [*reader_tasks, *approver_tasks]:
        await task
    return runs


def _keys(creds: SandboxCredentials) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = json.loads(creds.path.read_text(encoding="utf-8"))["keys"]
    return raw


def _check_signature(run: _Run) -> tuple[bool | None, str]:
    """Recover the signer of the signed transaction here and compare it with the wallet."""
    from signgate.crypto import evm_transaction_sender

    outcome = run.outcome
    if outcome is None or not outcome.signed_transaction:
        return None, "none (not signed)"
    sender = evm_transaction_sender(bytes.fromhex(outcome.signed_transaction.removeprefix("0x")))
    wallet = str(run.wallet["address"])
    engine = outcome.signature.verification
    engine_ok = engine is not None and engine.status == "verified"
    short = f"{sender[:6]}..{sender[-4:]}"
    if sender.lower() == wallet.lower() and engine_ok:
        return True, f"verified: signer {short} = wallet; engine agrees"
    if sender.lower() == wallet.lower():
        return False, f"signer {short} = wallet, but the engine says {engine and engine.status}"
    return False, f"MISMATCH: signer {sender} is not the wallet {wallet}"


def _approvals_text(run: _Run, names: dict[str, str], engine_id: str) -> str:
    outcome = run.outcome
    if outcome is None:
        return "-"
    signature = outcome.signature
    approval = signature.approval
    if approval is None:
        return "none needed" if signature.approval_id is None else "-"
    by_people = [d for d in approval.decisions if d.user_id != engine_id]
    groups: dict[str, list[str]] = {}
    for decision in by_people:
        groups.setdefault(decision.value.lower(), []).append(
            names.get(decision.user_id, decision.user_id)
        )
    text = "; ".join(f"{', '.join(who)} {verb}" for verb, who in groups.items())
    if signature.expiry == "deadline" and signature.denial is not None and signature.denial.denied:
        text = (text + "; " if text else "nobody decided; ") + "engine withdrew it at the deadline"
    return text or approval.status


def _summary(
    runs: Sequence[_Run], creds: SandboxCredentials, out: TextIO
) -> tuple[bool, list[dict[str, Any]]]:
    """Print the summary table; whether every payout ended as expected, and the records."""
    names = creds.user_names()
    engine_id = str(creds.identity(creds.initiator).user_id)
    rows = []
    all_ok = True
    records = []
    for run in runs:
        kind = run.outcome.kind if run.outcome is not None else "failed"
        verified, text = _check_signature(run)
        expected = kind == run.scenario.expect and verified is not False
        if run.scenario.expect in ("signed", "confirmed"):
            expected = expected and verified is True
        all_ok = all_ok and expected
        approvals = _approvals_text(run, names, engine_id)
        rows.append(
            [
                run.scenario.name,
                _eth(run.scenario.value_wei),
                str(run.wallet["name"]).split(" (")[0],
                kind + ("" if expected else f" (expected {run.scenario.expect})"),
                approvals,
                text,
                f"{run.finished_after:.1f}s" if run.finished_after is not None else "-",
            ]
        )
        records.append(
            {
                "scenario": run.scenario.name,
                "payoutId": run.payout_id,
                "expected": run.scenario.expect,
                "outcome": kind,
                "asExpected": expected,
                "signatureVerified": verified,
                "txHash": run.outcome.tx_hash if run.outcome is not None else None,
            }
        )
    print("", file=out)
    print("Summary:", file=out)
    print_table(["PAYOUT", "AMOUNT", "FROM", "OUTCOME", "APPROVAL", "SIGNATURE", "TOOK"], rows, out)
    return all_ok, records


def _prepare_state_dir(path: Path) -> None:
    """Start from an empty directory; only one the demo made before is ever wiped."""
    if path.exists():
        if not (path / _MARKER).exists() and any(path.iterdir()):
            raise CommandError(
                f"{path} exists and was not made by the demo; pass another --state-dir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARKER).write_text("made by python -m signgate.demo; wiped on every run\n")


def _gone(pids: dict[str, int], within: float = 5.0) -> list[str]:
    deadline = time.monotonic() + within
    left = [name for name, pid in pids.items() if pid_alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [name for name, pid in pids.items() if pid_alive(pid)]
    return left


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """The demo; returns the exit code."""
    from signgate.logs import configure_logging

    configure_logging(level="WARNING")
    began = time.monotonic()
    state_dir: Path = args.state_dir
    _prepare_state_dir(state_dir)
    print("signgate demo: a local Temporal + Dfns sandbox stack and four payouts", file=out)
    print(
        "Policy: the sandbox's default org makes every wallet tagged 'treasury' wait for two\n"
        "of alice, bob and carol (auto-reject after 60 min); the operations wallet has no\n"
        "policy. The sandbox's amount rules cannot value a serialized transaction (they fail\n"
        f"closed), so the demo applies its {_eth(THRESHOLD_WEI)} threshold when it picks the "
        "paying\nwallet: below it the operations wallet, at or above it the treasury.\n",
        file=out,
        flush=True,
    )
    hermetic = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNGATE_", "TEMPORAL_"))}
    stack = DevStack(
        DevOptions(
            state_dir=state_dir,
            temporal_port=0,
            ui_port=0,
            sandbox_port=0,
            webhook_port=0,
            metrics_port=0,
            temporal_bin=args.temporal_bin,
        ),
        out=out,
        environ=hermetic,
    )
    pids: dict[str, int] = {}
    ok = False
    records: list[dict[str, Any]] = []
    try:
        stack.preflight()
        info = stack.start()
        pids = stack.pids()
        print(
            f"  Temporal UI {info.temporal_ui_url} · approval console {info.console_url} · "
            f"metrics {info.metrics_url}",
            file=out,
        )
        print(
            "  stack processes: " + " ".join(f"{n}={p}" for n, p in pids.items()),
            file=out,
            flush=True,
        )
        runs = asyncio.run(_run_payouts(stack, out, args.pause, args.deadline))
        assert stack.credentials is not None
        ok, records = _summary(runs, stack.credentials, out)
    finally:
        print("", file=out)
        print("Stopping the stack:", file=out, flush=True)
        stack.stop()
    left = _gone(pids)
    if left:
        print(f"processes left behind: {', '.join(left)}", file=out)
    else:
        print(f"no process left behind ({len(pids)} checked)", file=out)
    took = time.monotonic() - began
    verdict = "every payout ended as expected" if ok else "SOME PAYOUTS DID NOT END AS EXPECTED"
    print(f"demo finished in {took:.0f}s: {verdict}", file=out, flush=True)
    (state_dir / "demo-summary.json").write_text(
        json.dumps(
            {
                "ok": ok and not left,
                "seconds": round(took, 1),
                "processes": pids,
                "leftBehind": left,
                "payouts": records,
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if ok and not left else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m signgate.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m signgate.demo",
        description="Start the dev stack, run four payouts through policy approval, stop.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".signgate/demo"),
        help="the demo's state (wiped at start; default .signgate/demo)",
    )
    parser.add_argument(
        "--pause", type=float, default=4.0, help="seconds before approvers act (default 4)"
    )
    parser.add_argument(
        "--deadline", type=float, default=20.0, help="the deadline payout's deadline (s)"
    )
    parser.add_argument("--temporal-bin", type=Path, default=None, help="the temporal CLI")
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        raise KeyboardInterrupt

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGTERM, on_term)
    try:
        code = run_demo(args, sys.stdout)
    except CommandError as exc:
        print(f"signgate demo: {exc.message}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        print("signgate demo: interrupted; the stack was stopped", file=sys.stderr)
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code


if __name__ == "__main__":
    exit_code = main()
    # The Temporal client's runtime threads can crash interpreter finalisation
    # (temporalio/sdk-python#300): leave without it once the output is flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
