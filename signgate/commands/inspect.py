"""``signgate status ID``, ``signgate list [--status S | --pending]`` and ``signgate cancel ID``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from signgate import argtypes, ids
from signgate.commands.common import (
    CommandError,
    DfnsAccess,
    add_common_options,
    connect_temporal,
    format_duration,
    format_time,
    load_settings,
    print_table,
    uses_temporal,
)
from signgate.commands.progress import (
    ApprovalReader,
    follow,
    outcome_exit_code,
    outcome_lines,
    snapshot,
)
from signgate.contracts import (
    PayoutBatchOutcome,
    PayoutOutcome,
    SignatureOutcome,
    SignatureProgress,
    SubmitResolution,
)

__all__ = ["STATUSES", "add_cancel_command", "add_list_command", "add_status_command"]

STATUSES = (
    "Submitting",
    "Pending",
    "Executing",
    "Signed",
    "Confirmed",
    "Rejected",
    "Failed",
    "Refused",
)
"""Values of the ``SignGateStatus`` search attribute (Dfns statuses plus the engine's own)."""
OUTCOMES = ("signed", "confirmed", "rejected", "failed", "expired", "cancelled")


def _choice(allowed: tuple[str, ...], what: str) -> Any:
    by_lower = {a.lower(): a for a in allowed}

    def parse(text: str) -> str:
        found = by_lower.get(text.lower())
        if found is None:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {what}; use one of {', '.join(allowed)}"
            )
        return found

    return parse


def add_status_command(subparsers: Any) -> None:
    """``signgate status ID``."""
    parser = subparsers.add_parser(
        "status",
        help="show where a signature (or payout) workflow stands, or its outcome",
        description=(
            "Show a SignatureWorkflow's status, time in status and approvals so far against "
            "quorum while it runs, or its outcome (signature, verification, decisions) once "
            "it has finished. For a PayoutWorkflow, shows the payout and its signature."
        ),
    )
    parser.add_argument("workflow_id", metavar="ID", help="the workflow id (business key)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser)
    parser.set_defaults(handler=_sync(_status))


def add_list_command(subparsers: Any) -> None:
    """``signgate list``."""
    parser = subparsers.add_parser(
        "list",
        help="list signature workflows (a visibility query over signgate's search attributes)",
        description=(
            "List SignatureWorkflows, newest first, from Temporal's visibility index: the "
            "SignGateStatus / SignGateOutcome / SignGateTargetId search attributes."
        ),
    )
    parser.add_argument(
        "--status",
        type=_choice(STATUSES, "status"),
        help="only this status: " + ", ".join(STATUSES),
    )
    parser.add_argument(
        "--outcome",
        type=_choice(OUTCOMES, "outcome"),
        help="only this outcome: " + ", ".join(OUTCOMES),
    )
    parser.add_argument("--target", metavar="ID", help="only this key/wallet/public key id")
    parser.add_argument("--running", action="store_true", help="only running workflows")
    parser.add_argument(
        "--pending",
        action="store_true",
        help=(
            "only requests waiting now (running, Pending or Executing), oldest first, with "
            "their age in status and the decisions still missing"
        ),
    )
    parser.add_argument("--limit", type=_limit, default=50, help="at most N rows (default 50)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser, credentials=False)
    parser.set_defaults(handler=_sync(_list))


def add_cancel_command(subparsers: Any) -> None:
    """``signgate cancel ID``."""
    parser = subparsers.add_parser(
        "cancel",
        help="cancel a signature workflow (its pending approval is denied at Dfns)",
        description=(
            "Request cancellation of a SignatureWorkflow (or PayoutWorkflow). A request still "
            "waiting for approval is stopped at Dfns too: the engine denies its own pending "
            "approval, and the outcome is 'cancelled'. A request already approved is reported "
            "as what it becomes. For a PayoutBatchWorkflow: payouts not yet started are "
            "skipped and every one in flight is cancelled the same way."
        ),
    )
    parser.add_argument("workflow_id", metavar="ID", help="the workflow id (business key)")
    parser.add_argument("--follow", action="store_true", help="wait for and show the outcome")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser)
    parser.set_defaults(handler=_sync(_cancel))


def add_resolve_command(subparsers: Any) -> None:
    """``signgate resolve ID (--signature-id SIG | --resubmit)``."""
    parser = subparsers.add_parser(
        "resolve",
        help="settle a legacy submit whose outcome is unknown (status SubmitUnknown)",
        description=(
            "A submit to a legacy public key that may or may not have reached Dfns is not "
            "retried (legacy public keys have no idempotency key): the workflow waits with "
            "status SubmitUnknown. Look for a request for the same hash at Dfns, then either "
            "name it (--signature-id) so the workflow adopts it, or --resubmit when there is "
            "none."
        ),
    )
    parser.add_argument("workflow_id", metavar="ID", help="the workflow id (business key)")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument(
        "--signature-id", metavar="SIG", help="the request at Dfns that this submit made"
    )
    choice.add_argument(
        "--resubmit", action="store_true", help="no request exists at Dfns: submit again"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser, credentials=False)
    parser.set_defaults(handler=_sync(_resolve))


def _limit(text: str) -> int:
    return argtypes.whole(text, low=1, high=10_000)


def _sync(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        uses_temporal(args)
        code: int = asyncio.run(handler(args))
        return code

    return run


async def _describe(client: Any, workflow_id: str) -> Any:
    from temporalio.service import RPCError, RPCStatusCode

    handle = client.get_workflow_handle(workflow_id)
    try:
        return handle, await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(f"no workflow {workflow_id!r} in this namespace", code=1) from None
        raise CommandError(f"cannot describe {workflow_id!r}: {exc.message}", code=1) from None


def _optional_access(args: argparse.Namespace) -> DfnsAccess | None:
    """Dfns access for reading approvals; ``None`` (the workflow's own record is shown) if none."""
    try:
        return DfnsAccess.initiator(load_settings(), args.state_dir, args.credentials)
    except CommandError:
        return None


# --- status -----------------------------------------------------------------------------------


async def _status(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    client = await connect_temporal(args.state_dir)
    handle, desc = await _describe(client, args.workflow_id)
    access = _optional_access(args)
    wf_type = desc.workflow_type
    execution = desc.status.name if desc.status is not None else "UNKNOWN"
    data: dict[str, Any] = {
        "workflowId": desc.id,
        "runId": desc.run_id,
        "type": wf_type,
        "execution": execution,
        "startedAt": desc.start_time.isoformat() if desc.start_time else None,
        "closedAt": desc.close_time.isoformat() if desc.close_time else None,
        "taskQueue": desc.task_queue,
    }
    lines = [
        f"{desc.id}  {wf_type}  {execution.lower()}",
        f"  started   {format_time(desc.start_time)}"
        + (f", closed {format_time(desc.close_time)}" if desc.close_time else ""),
    ]
    signature_id = desc.id
    if wf_type == ids.PAYOUT_WORKFLOW:
        signature_id = ids.child_signature_workflow_id(desc.id)
        data["signatureWorkflowId"] = signature_id
        lines.append(f"  signature workflow  {signature_id}")
    code = 0
    if desc.status == WorkflowExecutionStatus.RUNNING:
        sig_handle = client.get_workflow_handle(signature_id)
        snap = await snapshot(sig_handle, ApprovalReader(access))
        data["progress"] = snap.to_json()
        lines.append(f"  now       {snap.describe(datetime.now(UTC))}")
        if snap.tally is not None and snap.tally.expires is not None:
            left = snap.tally.expires - datetime.now(UTC)
            lines.append(
                f"  approval expires {format_time(snap.tally.expires)} (in {format_duration(left)})"
            )
        if snap.answered and snap.polls:
            lines.append(f"  polls     {snap.polls}")
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        outcome: SignatureOutcome
        if wf_type == ids.PAYOUT_WORKFLOW:
            payout = await client.get_workflow_handle(
                desc.id, run_id=desc.run_id, result_type=PayoutOutcome
            ).result()
            data["payout"] = payout.model_dump(mode="json")
            lines.append(
                f"  payout    {payout.kind}: {payout.transfer.value_wei} wei to "
                f"{payout.transfer.to} (chain {payout.transfer.chain_id}, nonce "
                f"{payout.transfer.nonce})"
            )
            outcome = payout.signature
        else:
            outcome = await client.get_workflow_handle(
                desc.id, run_id=desc.run_id, result_type=SignatureOutcome
            ).result()
        data["outcome"] = outcome.model_dump(mode="json")
        lines.extend(outcome_lines(outcome, access))
        code = 0
    else:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            from signgate.commands.progress import failure_text

            data["failure"] = failure_text(exc)
            lines.append(f"  failure   {data['failure']}")
    if args.json:
        print(json.dumps(data), flush=True)
    else:
        print("\n".join(lines), flush=True)
    return code


# --- list -------------------------------------------------------------------------------------


def list_query(args: argparse.Namespace) -> str:
    """The visibility query for ``signgate list``'s filters."""
    parts = [f"WorkflowType = '{ids.SIGNATURE_WORKFLOW}'"]
    if args.status:
        parts.append(f"{ids.SA_STATUS.name} = '{args.status}'")
    if args.outcome:
        parts.append(f"{ids.SA_OUTCOME.name} = '{args.outcome}'")
    if args.target:
        if "'" in args.target or "\\" in args.target:
            raise CommandError(f"--target: {args.target!r} is not an id")
        parts.append(f"{ids.SA_TARGET_ID.name} = '{args.target}'")
    if args.running:
        parts.append("ExecutionStatus = 'Running'")
    return " AND ".join(parts)


PENDING_STATUSES = ("Pending", "Executing")
"""Statuses of a request waiting at Dfns (for approval, or for the signer)."""


def pending_query(args: argparse.Namespace) -> str:
    """The visibility query of the requests waiting now (``--target`` still applies)."""
    waiting = ", ".join(f"'{s}'" for s in PENDING_STATUSES)
    parts = [
        f"WorkflowType = '{ids.SIGNATURE_WORKFLOW}'",
        "ExecutionStatus = 'Running'",
        f"{ids.SA_STATUS.name} IN ({waiting})",
    ]
    if args.target:
        if "'" in args.target or "\\" in args.target:
            raise CommandError(f"--target: {args.target!r} is not an id")
        parts.append(f"{ids.SA_TARGET_ID.name} = '{args.target}'")
    return " AND ".join(parts)


def pending_row(workflow_id: str, progress: SignatureProgress, now: datetime) -> dict[str, Any]:
    """One waiting request: its age in status and who decided, or how many must still decide.

    The progress query carries the approval's decisions and quorum, not the policy's list of
    approvers: ``awaiting`` is the number of approvals still missing for the quorum.
    """
    approval = progress.approval
    decisions = [
        {"userId": d.user_id, "value": d.value} for d in (approval.decisions if approval else [])
    ]
    approved = sum(1 for d in decisions if d["value"] == "Approved")
    quorum = approval.quorum if approval is not None else None
    age = max(now - progress.status_since, progress.time_in_status)
    return {
        "workflowId": workflow_id,
        "status": str(progress.status) if progress.status is not None else None,
        "statusSince": progress.status_since.isoformat(),
        "ageSeconds": round(age.total_seconds(), 3),
        "approvalId": progress.approval_id,
        "approvalStatus": approval.status if approval is not None else None,
        "quorum": quorum,
        "decisions": decisions,
        "awaiting": max(quorum - approved, 0) if quorum is not None else None,
        "deadlinePassed": progress.deadline_passed,
        "cancelRequested": progress.cancel_requested,
    }


def _waiting_for(row: dict[str, Any]) -> str:
    decided = ", ".join(f"{d['userId']} {d['value'].lower()}" for d in row["decisions"])
    if row["approvalId"] is None:
        return "no approval (waiting for the signer)"
    if row["awaiting"] is None:
        return decided or "approval not read yet"
    missing = f"{row['awaiting']} more approval(s) of {row['quorum']}"
    return f"{missing}; {decided}" if decided else missing


_PENDING_QUERY_TIMEOUT = timedelta(seconds=5)
"""How long one waiting workflow has to answer its progress query (its worker may be away)."""
_PENDING_QUERIES_AT_ONCE = 16


def unanswered_row(workflow_id: str, status: str | None) -> dict[str, Any]:
    """A waiting request whose worker did not answer: only what visibility knows."""
    return {
        "workflowId": workflow_id,
        "status": status,
        "statusSince": None,
        "ageSeconds": None,
        "approvalId": None,
        "approvalStatus": None,
        "quorum": None,
        "decisions": [],
        "awaiting": None,
        "deadlinePassed": None,
        "cancelRequested": None,
        "answered": False,
    }


async def _list_pending(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowExecution, WorkflowQueryFailedError
    from temporalio.service import RPCError

    query = pending_query(args)
    client = await connect_temporal(args.state_dir)
    now = datetime.now(UTC)
    gate = asyncio.Semaphore(_PENDING_QUERIES_AT_ONCE)

    async def row_of(wf: WorkflowExecution) -> dict[str, Any]:
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        async with gate:
            try:
                progress = await handle.query(
                    ids.QUERY_STATE,
                    result_type=SignatureProgress,
                    rpc_timeout=_PENDING_QUERY_TIMEOUT,
                )
            except (RPCError, WorkflowQueryFailedError):
                # No worker answered in time (stopped, or stuck on a failing task): the
                # request still waits, so it is listed with what visibility knows.
                return unanswered_row(wf.id, wf.typed_search_attributes.get(ids.SA_STATUS))
        return {**pending_row(wf.id, progress, now), "answered": True}

    found = [wf async for wf in client.list_workflows(query, limit=args.limit)]
    rows = list(await asyncio.gather(*(row_of(wf) for wf in found)))
    # Answered rows oldest first, then the ones whose worker is away.
    rows.sort(key=lambda r: (r["statusSince"] is None, r["statusSince"] or ""))
    ages = [r["ageSeconds"] for r in rows if r["ageSeconds"] is not None]
    oldest = max(ages) if ages else None
    if args.json:
        print(
            json.dumps(
                {"query": query, "waiting": len(rows), "oldestAgeSeconds": oldest, "requests": rows}
            ),
            flush=True,
        )
        return 0
    if not rows:
        print(f"no requests are waiting ({query})", file=sys.stderr)
        return 0
    print_table(
        ["WORKFLOW ID", "STATUS", "AGE IN STATUS", "APPROVAL", "WAITING FOR"],
        [
            [
                r["workflowId"],
                r["status"] or "-",
                format_duration(timedelta(seconds=r["ageSeconds"]))
                if r["ageSeconds"] is not None
                else "?",
                r["approvalStatus"] or "-",
                _waiting_for(r) if r["answered"] else "? (its worker does not answer)",
            ]
            for r in rows
        ],
    )
    return 0


async def _list(args: argparse.Namespace) -> int:
    if args.pending:
        return await _list_pending(args)
    query = list_query(args)
    client = await connect_temporal(args.state_dir)
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=args.limit):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflowId": wf.id,
                "status": attrs.get(ids.SA_STATUS),
                "outcome": attrs.get(ids.SA_OUTCOME),
                "target": attrs.get(ids.SA_TARGET_ID),
                "signatureId": attrs.get(ids.SA_SIGNATURE_ID),
                "execution": wf.status.name if wf.status is not None else None,
                "startedAt": wf.start_time.isoformat() if wf.start_time else None,
            }
        )
    if args.json:
        print(json.dumps({"query": query, "workflows": rows}), flush=True)
        return 0
    if not rows:
        print(f"no signature workflows match ({query})", file=sys.stderr)
        return 0
    print_table(
        ["WORKFLOW ID", "STATUS", "OUTCOME", "TARGET", "STARTED", "EXECUTION"],
        [
            [
                r["workflowId"],
                r["status"] or "-",
                r["outcome"] or "-",
                r["target"] or "-",
                format_time(datetime.fromisoformat(r["startedAt"])) if r["startedAt"] else "-",
                (r["execution"] or "-").lower(),
            ]
            for r in rows
        ],
    )
    return 0


# --- resolve ----------------------------------------------------------------------------------


async def _resolve(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowUpdateFailedError

    resolution = SubmitResolution(signature_id=args.signature_id, resubmit=args.resubmit)
    client = await connect_temporal(args.state_dir)
    handle, desc = await _describe(client, args.workflow_id)
    try:
        answer = await handle.execute_update(ids.UPDATE_RESOLVE_SUBMIT, resolution, result_type=str)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        why = getattr(cause, "message", None) or str(cause or exc)
        raise CommandError(f"{desc.id}: {why}", code=1) from None
    if args.json:
        print(json.dumps({"event": "resolved", "workflowId": desc.id, "answer": answer}))
    else:
        print(f"{desc.id}: {answer}", flush=True)
    return 0


# --- cancel -----------------------------------------------------------------------------------


async def _cancel_batch(client: Any, batch_id: str, args: argparse.Namespace) -> int:
    from signgate.commands.batch import follow_batch

    if args.json:
        print(json.dumps({"event": "cancel_requested", "workflowId": batch_id}), flush=True)
    else:
        print(
            f"cancellation requested for batch {batch_id}: payouts not started are skipped, "
            "each one in flight is cancelled (its pending approval denied at Dfns)",
            flush=True,
        )
    if not args.follow:
        return 0
    await follow_batch(
        client.get_workflow_handle(batch_id, result_type=PayoutBatchOutcome), as_json=args.json
    )
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowExecutionStatus

    client = await connect_temporal(args.state_dir)
    handle, desc = await _describe(client, args.workflow_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        state = desc.status.name.lower() if desc.status is not None else "closed"
        raise CommandError(
            f"{args.workflow_id} is not running ({state}); see `signgate status "
            f"{args.workflow_id}`",
            code=1,
        )
    await handle.cancel()
    if desc.workflow_type == ids.PAYOUT_BATCH_WORKFLOW:
        return await _cancel_batch(client, desc.id, args)
    if args.json:
        print(json.dumps({"event": "cancel_requested", "workflowId": desc.id}), flush=True)
    else:
        print(
            f"cancellation requested for {desc.id}: a pending approval is denied at Dfns, "
            "the outcome will be 'cancelled'",
            flush=True,
        )
    if not args.follow:
        return 0
    if desc.workflow_type == ids.PAYOUT_WORKFLOW:
        payout = await client.get_workflow_handle(desc.id, result_type=PayoutOutcome).result()
        outcome: SignatureOutcome | None = payout.signature
        failure = None
    else:
        access = _optional_access(args)
        sig_handle = client.get_workflow_handle(desc.id, result_type=SignatureOutcome)
        result = await follow(sig_handle, access, as_json=args.json)
        outcome, failure = result.outcome, result.failure
    if args.json:
        payload: dict[str, Any] = (
            {"event": "outcome", "outcome": outcome.model_dump(mode="json")}
            if outcome is not None
            else {"event": "failed", "error": failure}
        )
        print(json.dumps(payload), flush=True)
    elif outcome is not None:
        print("\n".join(outcome_lines(outcome, _optional_access(args))), flush=True)
    else:
        print(f"  failed: {failure}", flush=True)
    return outcome_exit_code(outcome) if outcome is None or outcome.kind != "cancelled" else 0
