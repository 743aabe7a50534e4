"""``signgate payout batch FILE``: many EIP-1559 payouts, each signed by its own workflow.

The file is a CSV with a header row or a JSON list of objects, with the same fields:
``id`` (the payout's business key: a payout id is paid at most once, by any batch), ``to``,
``value_wei``, ``nonce``, and optionally ``key`` or ``wallet`` (the source, if not the
batch's ``--key``/``--wallet``), ``chain_id``, ``max_fee_per_gas``,
``max_priority_fee_per_gas`` and ``deadline`` (ISO 8601 with a timezone). Every row is
checked, and every source is looked up at Dfns, before the batch starts; a problem ends the
command with exit code 2 and a list naming each bad row's line and field.

The batch id is the ``PayoutBatchWorkflow``'s id: running the command again with the same
``--batch-id`` starts nothing and attaches (``--follow`` then shows where it stands).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from signgate import ids
from signgate.commands.common import (
    CommandError,
    DfnsAccess,
    add_common_options,
    connect_temporal,
    format_duration,
    load_settings,
    read_stack,
    task_queue_for,
    uses_temporal,
)
from signgate.commands.sign import parse_deadline, target_scheme
from signgate.contracts import (
    BatchPayout,
    BatchProgress,
    PayoutBatchInput,
    PayoutBatchOutcome,
    SigningTarget,
)

__all__ = ["add_payout_command", "follow_batch", "read_payouts"]

_FIELDS = (
    "id",
    "to",
    "value_wei",
    "nonce",
    "key",
    "wallet",
    "chain_id",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "deadline",
)
_REQUIRED = ("id", "to", "value_wei", "nonce")
_MAX_ROWS = 10_000
_MAX_PROBLEMS = 10
_MAX_BYTES = 20 * 1024 * 1024
_SETTLED = ("signed", "confirmed")
POLL_SECONDS = 2.0
"""How often ``--follow`` reads the batch's progress."""


def add_payout_command(subparsers: Any) -> None:
    """``signgate payout batch``."""
    parser = subparsers.add_parser(
        "payout",
        help="payouts: `signgate payout batch FILE` signs many at once",
        description="Payout workflows started from the command line.",
    )
    actions = parser.add_subparsers(dest="payout_action", metavar="ACTION", required=True)
    batch = actions.add_parser(
        "batch",
        help="start a PayoutBatchWorkflow from a CSV or JSON file (and optionally follow it)",
        description=(
            "Start a PayoutBatchWorkflow: every row of FILE becomes an EIP-1559 transfer "
            "signed by its own SignatureWorkflow (id = the row's id), at most --concurrency "
            "waiting at once. FILE is CSV with a header or a JSON list of objects; fields: id, "
            "to, value_wei, nonce, and optionally key or wallet, chain_id, max_fee_per_gas, "
            "max_priority_fee_per_gas, deadline. Everything is checked before anything starts "
            "(exit 2 lists each bad row). The same --batch-id again attaches to that batch. "
            "--follow shows progress and ends with the summary (exit 0 when every payout was "
            "signed, 1 otherwise). Cancel the rest with `signgate cancel BATCH_ID`."
        ),
    )
    batch.add_argument("file", metavar="FILE", type=Path, help="the payouts, .csv or .json")
    source = batch.add_mutually_exclusive_group()
    source.add_argument("--key", help="the key paying rows that name none (id or sandbox name)")
    source.add_argument("--wallet", help="the wallet paying rows that name none")
    batch.add_argument(
        "--batch-id", help="the batch's business key (default: batch-<random>); reuse attaches"
    )
    batch.add_argument("--chain-id", type=int, default=11155111, help="default 11155111")
    batch.add_argument(
        "--network",
        default="EthereumSepolia",
        help="Dfns network for key sources (default EthereumSepolia)",
    )
    batch.add_argument("--max-fee-per-gas", type=int, default=2 * 10**9, metavar="WEI")
    batch.add_argument("--max-priority-fee-per-gas", type=int, default=10**9, metavar="WEI")
    batch.add_argument(
        "--deadline",
        help="rows without their own deadline give up after this long (90s, 15m, 2h, 7d) or "
        "at this time (ISO 8601 with a timezone)",
    )
    batch.add_argument(
        "--concurrency", type=int, default=50, help="payouts waiting at once (default 50)"
    )
    batch.add_argument("--follow", action="store_true", help="show progress until the summary")
    batch.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(batch)
    batch.set_defaults(handler=_run_batch)


# --- reading the file -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One payout as read, before its source is resolved."""

    line: int
    fields: dict[str, Any]


def _rows_from_csv(text: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise CommandError("the CSV file is empty; its first line names the columns")
    reader.fieldnames = header
    _check_columns(header)
    rows = []
    for record in reader:
        if None in record:
            raise CommandError(f"line {reader.line_num}: more cells than the header has columns")
        cells = {name: (value or "").strip() for name, value in record.items()}
        rows.append(Row(reader.line_num, {k: v for k, v in cells.items() if v != ""}))
    return rows


def _rows_from_json(text: str) -> list[Row]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"not JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("payouts"), list):
        data = data["payouts"]
    if not isinstance(data, list):
        raise CommandError('expected a JSON list of payout objects (or {"payouts": [...]})')
    rows = []
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise CommandError(f"payout {index}: expected an object, got {type(item).__name__}")
        _check_columns(list(item), where=f"payout {index}: ")
        rows.append(Row(index, {k: v for k, v in item.items() if v is not None}))
    return rows


def _check_columns(names: Iterable[str], where: str = "") -> None:
    names = list(names)
    unknown = [name for name in names if name not in _FIELDS]
    if unknown:
        raise CommandError(
            f"{where}unknown field(s) {', '.join(map(repr, unknown))}; the fields are "
            + ", ".join(_FIELDS)
        )
    if not where:  # a CSV header must name every required column
        missing = [name for name in _REQUIRED if name not in names]
        if missing:
            raise CommandError(f"the header has no {', '.join(missing)} column")


def read_payouts(path: Path) -> list[Row]:
    """The rows of ``path`` (CSV or JSON by extension), or a :class:`CommandError`."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise CommandError(f"{path}: name it .csv or .json so its format is clear")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise CommandError(f"{path}: {size} bytes is more than a batch file may hold (20 MB)")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"{path}: cannot read it ({reason})") from None
    try:
        rows = _rows_from_csv(text) if suffix == ".csv" else _rows_from_json(text)
    except CommandError as exc:
        raise CommandError(f"{path}: {exc.message}") from None
    if not rows:
        raise CommandError(f"{path}: no payouts in it")
    if len(rows) > _MAX_ROWS:
        raise CommandError(
            f"{path}: {len(rows)} payouts; a batch holds at most {_MAX_ROWS}, split the file"
        )
    return rows


def _row_problems(row: Row, exc: ValidationError) -> list[str]:
    shown = f" (id {row.fields['id']})" if isinstance(row.fields.get("id"), str) else ""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "row"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"line {row.line}{shown}: {where}: {message}")
    return problems


# --- planning ---------------------------------------------------------------------------------


async def plan_batch(args: argparse.Namespace, access: DfnsAccess) -> tuple[str, PayoutBatchInput]:
    """Validate the file and flags and look every source up; nothing is started here."""
    batch_id = args.batch_id or f"batch-{uuid.uuid4().hex[:12]}"
    try:
        ids.validate_business_key(batch_id)
    except ValueError as exc:
        raise CommandError(f"--batch-id: {exc}") from None
    if not 1 <= args.concurrency <= 1000:
        raise CommandError("--concurrency: give a number from 1 to 1000")
    deadline = parse_deadline(args.deadline) if args.deadline is not None else None
    rows = read_payouts(args.file)

    def resolve(kind: str, value: str) -> SigningTarget:
        if access.credentials is not None:
            return access.credentials.resolve_target(kind, value)[0]
        return SigningTarget(kind=kind, id=value)  # type: ignore[arg-type]

    default = None
    if args.key is not None:
        default = resolve("key", args.key)
    elif args.wallet is not None:
        default = resolve("wallet", args.wallet)
    payouts: list[BatchPayout] = []
    problems: list[str] = []
    for row in rows:
        fields = dict(row.fields)
        key, wallet = fields.pop("key", None), fields.pop("wallet", None)
        if key is not None and wallet is not None:
            problems.append(f"line {row.line}: give key or wallet, not both")
            continue
        if key is not None or wallet is not None:
            fields["source"] = resolve("key" if key is not None else "wallet", str(key or wallet))
        elif default is None:
            problems.append(
                f"line {row.line}: no key or wallet; add the column or pass --key/--wallet"
            )
            continue
        try:
            payouts.append(BatchPayout.model_validate(fields))
        except ValidationError as exc:
            problems.extend(_row_problems(row, exc))
    if problems:
        raise CommandError(_problem_list(args.file, problems))
    sources = {p.source for p in payouts if p.source is not None}
    if default is not None:
        sources.add(default)
    for source in sorted(sources, key=lambda s: (s.kind, s.id)):
        flag = "--key" if source.kind == "key" else "--wallet"
        scheme, curve = await target_scheme(access, source, flag, source.id)
        if (scheme or "").upper() != "ECDSA" or (curve or "").lower() != "secp256k1":
            raise CommandError(
                f"{flag} {source.id}: signs with {scheme} {curve}; an EVM payout needs an ECDSA "
                "secp256k1 key"
            )
    stack = read_stack(args.state_dir)
    try:
        batch = PayoutBatchInput(
            source=default,
            payouts=payouts,
            chain_id=args.chain_id,
            network=args.network,
            max_fee_per_gas=args.max_fee_per_gas,
            max_priority_fee_per_gas=args.max_priority_fee_per_gas,
            deadline=deadline,
            polling=access.settings.polling_policy(webhooks=True if stack is not None else None),
            concurrency=args.concurrency,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CommandError(f"{args.file}: {where + ': ' if where else ''}{message}") from None
    return batch_id, batch


def _problem_list(path: Path, problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n  ... and {more} more" if more else ""
    return f"{path}: {len(problems)} problem(s), nothing started:\n  " + "\n  ".join(shown) + tail


# --- running ----------------------------------------------------------------------------------


def _run_batch(args: argparse.Namespace) -> int:
    uses_temporal(args)
    return asyncio.run(_batch(args))


async def _batch(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowHandle
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    settings = load_settings()
    access = DfnsAccess.initiator(settings, args.state_dir, args.credentials)
    batch_id, batch = await plan_batch(args, access)
    client = await connect_temporal(args.state_dir)
    stack = read_stack(args.state_dir)
    task_queue = task_queue_for(settings, stack)
    existing: str | None = None
    handle: WorkflowHandle[Any, PayoutBatchOutcome]
    try:
        handle = await client.start_workflow(
            ids.PAYOUT_BATCH_WORKFLOW,
            batch,
            id=batch_id,
            task_queue=task_queue,
            result_type=PayoutBatchOutcome,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(batch_id, result_type=PayoutBatchOutcome)
        status = (await handle.describe()).status
        existing = status.name.lower() if status is not None else "unknown"
    if args.json:
        print(
            json.dumps(
                {
                    "event": "started",
                    "batchId": batch_id,
                    "existing": existing is not None,
                    "payouts": len(batch.payouts),
                    "taskQueue": task_queue,
                }
                | ({} if existing is None else {"existingStatus": existing})
            ),
            flush=True,
        )
    elif existing is None:
        print(f"started {batch_id}: {len(batch.payouts)} payouts", flush=True)
    else:
        print(
            f"existing: {batch_id} was started before ({existing}); attached to it, nothing "
            "new started (the file is not read again)",
            flush=True,
        )
    if not args.follow:
        if not args.json:
            print(f"  follow it with: signgate payout batch {args.file} --batch-id {batch_id} "
                  "--follow", flush=True)  # fmt: skip
        return 0
    outcome = await follow_batch(handle, as_json=args.json)
    return 0 if outcome is not None and _all_signed(outcome) else 1


def _all_signed(outcome: PayoutBatchOutcome) -> bool:
    return set(outcome.by_outcome) <= set(_SETTLED)


def _counts(by_outcome: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(by_outcome.items())) or "none yet"


def progress_line(progress: BatchProgress, now: datetime) -> str:
    """One line of ``--follow``: ended, in flight, not started, the longest waiting."""
    line = (
        f"  {progress.ended}/{progress.total} ended ({_counts(progress.by_outcome)}), "
        f"{progress.in_flight} in flight, {progress.not_started} not started"
    )
    if progress.waiting_longest:
        payout, since = progress.waiting_longest[0]
        line += f"; waiting longest: {payout} ({format_duration(now - since)})"
    if progress.cancel_requested:
        line += "; cancelling"
    return line


async def follow_batch(handle: Any, *, as_json: bool) -> PayoutBatchOutcome | None:
    """Print the batch's progress as it changes, then its summary; ``None`` if it failed."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    last: tuple[object, ...] | None = None
    while True:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            break
        try:
            progress: BatchProgress = await handle.query(ids.QUERY_BATCH, result_type=BatchProgress)
        except Exception:
            await asyncio.sleep(POLL_SECONDS)
            continue
        seen = (progress.ended, progress.in_flight, tuple(sorted(progress.by_outcome.items())))
        if seen != last:
            last = seen
            if as_json:
                print(json.dumps({"event": "progress"} | progress.model_dump(mode="json")))
            else:
                print(progress_line(progress, datetime.now(UTC)))
            sys.stdout.flush()
        await asyncio.sleep(POLL_SECONDS)
    try:
        outcome: PayoutBatchOutcome = await handle.result()
    except WorkflowFailureError as exc:
        message = str(exc.cause or exc)
        if as_json:
            print(json.dumps({"event": "failed", "error": message}), flush=True)
        else:
            print(f"  failed: {message}", flush=True)
        return None
    if as_json:
        print(json.dumps({"event": "outcome", "outcome": outcome.model_dump(mode="json")}))
    else:
        print("\n".join(summary_lines(outcome)))
    sys.stdout.flush()
    return outcome


def summary_lines(outcome: PayoutBatchOutcome, *, show: int = 20) -> list[str]:
    """The summary, then every payout that was not signed (up to ``show`` of them)."""
    state = "cancelled" if outcome.cancelled else "completed"
    lines = [f"{outcome.batch_id} {state}: {outcome.total} payouts: {_counts(outcome.by_outcome)}"]
    unsigned = [r for r in outcome.results if r.kind not in _SETTLED]
    for result in unsigned[:show]:
        why = result.kind or f"{result.error_type}: {result.error}"
        lines.append(f"  {result.payout_id}: {why}")
    if len(unsigned) > show:
        lines.append(f"  ... and {len(unsigned) - show} more not signed (see --json)")
    return lines
