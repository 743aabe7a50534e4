"""Watching a ``SignatureWorkflow``: progress snapshots, live display, the outcome in words.

A snapshot combines the workflow's ``state`` query (status, time in status, approval id)
with, when the command can read Dfns, the approval itself (decisions so far against the
quorums of the policies that triggered it). Without Dfns access the workflow's own
approval record is shown (filled in by ``policy.approval.*`` webhooks).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError, FailureError
from temporalio.service import RPCError

from signgate import ids
from signgate.commands.common import (
    ApprovalTally,
    DfnsAccess,
    approval_tally,
    format_duration,
    format_time,
)
from signgate.contracts import SignatureOutcome, SignatureProgress
from signgate.dfns.errors import DfnsError

__all__ = [
    "ApprovalReader",
    "FollowResult",
    "Snapshot",
    "follow",
    "outcome_exit_code",
    "outcome_lines",
    "snapshot",
]

_QUERY_TIMEOUT = timedelta(seconds=5)
_APPROVAL_REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Snapshot:
    """Where a running request stands."""

    status: str
    since: datetime | None
    approval_id: str | None
    tally: ApprovalTally | None
    signature_id: str | None
    polls: int
    answered: bool
    polls_skipped: int = 0

    def key(self) -> tuple[Any, ...]:
        """What counts as a change worth a new line."""
        tally = self.tally
        return (
            self.status,
            self.approval_id,
            self.answered,
            None if tally is None else (tally.status, tuple(tally.approved), tuple(tally.denied)),
        )

    def describe(self, now: datetime | None = None, *, compact: bool = False) -> str:
        """``Pending for 12s · approval ap-… · 1/2 approvals (alice)`` (``compact``: no id)."""
        if not self.answered:
            return "waiting for a worker to answer (is the worker running?)"
        text = self.status
        if self.since is not None:
            moment = now if now is not None else datetime.now(UTC)
            text += f" for {format_duration(moment - self.since)}"
        if self.approval_id and not compact:
            text += f" · approval {self.approval_id}"
        if self.tally is not None:
            text += f" · {self.tally.summary()}"
            if self.tally.status != "Pending":
                text += f" · approval {self.tally.status}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form (``--json``)."""
        tally = self.tally
        return {
            "event": "progress",
            "status": self.status if self.answered else None,
            "statusSince": self.since.isoformat() if self.since else None,
            "timeInStatusSeconds": (
                round((datetime.now(UTC) - self.since).total_seconds(), 1) if self.since else None
            ),
            "signatureId": self.signature_id,
            "approvalId": self.approval_id,
            "approval": None
            if tally is None
            else {
                "status": tally.status,
                "approvedBy": tally.approved,
                "deniedBy": tally.denied,
                "groups": [{"name": n, "approvals": h, "quorum": q} for n, h, q in tally.groups],
            },
            "polls": self.polls,
            "pollsSkipped": self.polls_skipped,
        }


class ApprovalReader:
    """Reads the approval from Dfns at most once a second, and no more once it is resolved."""

    def __init__(self, access: DfnsAccess | None) -> None:
        self._access = access
        self._policies: dict[str, dict[str, Any]] = {}
        self._last: ApprovalTally | None = None
        self._read_at = 0.0

    async def tally(self, approval_id: str, progress: SignatureProgress) -> ApprovalTally | None:
        loop = asyncio.get_running_loop()
        settled = self._last is not None and self._last.status != "Pending"
        due = loop.time() - self._read_at >= _APPROVAL_REFRESH_SECONDS
        if self._access is not None and not settled and due:
            self._read_at = loop.time()
            try:
                async with self._access.client() as dfns:
                    approval = await dfns.get_approval(approval_id)
                self._last = await approval_tally(self._access, approval, self._policies)
            except DfnsError:
                pass  # keep the last known tally; the workflow's own record is the fallback
        if self._last is not None:
            return self._last
        info = progress.approval
        if info is None:
            return None
        name = self._access.user_name if self._access is not None else str
        approved = [name(d.user_id) for d in info.decisions if d.value == "Approved"]
        denied = [name(d.user_id) for d in info.decisions if d.value == "Denied"]
        groups = [("quorum", len(approved), info.quorum)] if info.quorum else []
        return ApprovalTally(info.id, info.status, approved, denied, groups, info.expiration_date)


async def snapshot(
    handle: WorkflowHandle[Any, Any], reader: ApprovalReader | None = None
) -> Snapshot:
    """Query the workflow (and read its approval) once."""
    try:
        progress: SignatureProgress = await handle.query(
            ids.QUERY_STATE, result_type=SignatureProgress, rpc_timeout=_QUERY_TIMEOUT
        )
    except (RPCError, FailureError):
        return Snapshot("?", None, None, None, None, 0, answered=False)
    tally = None
    if progress.approval_id is not None:
        tally = await (reader or ApprovalReader(None)).tally(progress.approval_id, progress)
    status = progress.status.value if progress.status is not None else "Submitting"
    return Snapshot(
        status=status,
        since=progress.status_since,
        approval_id=progress.approval_id,
        tally=tally,
        signature_id=progress.signature_id,
        polls=progress.polls,
        answered=True,
        polls_skipped=progress.polls_skipped,
    )


@dataclass(frozen=True)
class FollowResult:
    """How a followed workflow ended: an outcome, or a failure message."""

    outcome: SignatureOutcome | None
    failure: str | None


class _Display:
    """Progress for people: one line per change; on a terminal, a live line in between."""

    def __init__(self, out: TextIO, started: datetime) -> None:
        self._out = out
        self._live = out.isatty()
        self._started = started
        self._last_key: tuple[Any, ...] | None = None
        self._live_shown = False

    def show(self, snap: Snapshot) -> None:
        now = datetime.now(UTC)
        if snap.key() != self._last_key:
            self._last_key = snap.key()
            self._clear()
            elapsed = (now - self._started).total_seconds()
            print(f"{elapsed:6.1f}s  {snap.describe(now)}", file=self._out, flush=True)
        elif self._live:
            self._clear()
            self._out.write(f"        {snap.describe(now)}")
            self._out.flush()
            self._live_shown = True

    def _clear(self) -> None:
        if self._live_shown:
            self._out.write("\r\x1b[K")
            self._live_shown = False

    def close(self) -> None:
        self._clear()
        self._out.flush()


async def follow(
    handle: WorkflowHandle[Any, Any],
    access: DfnsAccess | None,
    *,
    as_json: bool,
    out: TextIO | None = None,
    interval: float = 0.5,
) -> FollowResult:
    """Show progress until the workflow closes; return its outcome (or why it failed)."""
    stream = out if out is not None else sys.stdout
    reader = ApprovalReader(access)
    display = None if as_json else _Display(stream, datetime.now(UTC))
    result: asyncio.Task[Any] = asyncio.create_task(handle.result())
    last_key: tuple[Any, ...] | None = None
    try:
        while not result.done():
            snap = await snapshot(handle, reader)
            if display is not None:
                display.show(snap)
            elif snap.key() != last_key:
                last_key = snap.key()
                print(json.dumps(snap.to_json()), file=stream, flush=True)
            await asyncio.wait({result}, timeout=interval)
    finally:
        if display is not None:
            display.close()
        if not result.done():
            result.cancel()
    try:
        outcome = result.result()
    except WorkflowFailureError as exc:
        return FollowResult(None, failure_text(exc))
    if not isinstance(outcome, SignatureOutcome):
        outcome = SignatureOutcome.model_validate(outcome)
    return FollowResult(outcome, None)


def failure_text(exc: WorkflowFailureError) -> str:
    """Why a workflow failed, from its failure chain."""
    cause = exc.cause
    if isinstance(cause, CancelledError):
        return "the workflow was cancelled before it decided an outcome"
    parts: list[str] = []
    current: BaseException | None = cause
    while current is not None and len(parts) < 3:
        parts.append(str(current))
        current = current.__cause__
    return ": ".join(p for p in parts if p) or "the workflow failed"


def outcome_exit_code(outcome: SignatureOutcome | None) -> int:
    """0 for a signature (signed or confirmed), 1 for any other outcome or a failure."""
    return 0 if outcome is not None and outcome.kind in ("signed", "confirmed") else 1


def _short(value: str, keep: int = 66) -> str:
    return (
        value if len(value) <= keep else f"{value[: keep - 10]}…{value[-8:]} ({len(value)} chars)"
    )


def outcome_lines(outcome: SignatureOutcome, access: DfnsAccess | None = None) -> list[str]:
    """The outcome in words, one ``label  value`` line each."""
    name = access.user_name if access is not None else (lambda user_id: user_id)
    rows: list[tuple[str, str]] = []
    status = outcome.dfns_status.value if outcome.dfns_status is not None else "-"
    rows.append(("outcome", f"{outcome.kind} (Dfns status {status})"))
    rows.append(("workflow", outcome.workflow_id))
    rows.append(("target", f"{outcome.target.kind} {outcome.target.id}"))
    rows.append(("request", f"{outcome.request_kind}, externalId {outcome.external_id}"))
    if outcome.signature_id:
        rows.append(("signature id", outcome.signature_id))
    sig = outcome.signature
    if sig is not None:
        if sig.encoded:
            rows.append(("signature", _short(sig.encoded)))
        rows.append(("r", sig.r))
        rows.append(("s", sig.s))
        if sig.recid is not None:
            rows.append(("recid", str(sig.recid)))
    if outcome.signed_data:
        rows.append(("signed data", _short(outcome.signed_data)))
    if outcome.tx_hash:
        rows.append(("tx hash", outcome.tx_hash))
    ver = outcome.verification
    if ver is not None:
        rows.append(("verified", f"{ver.status}: {ver.detail} [{ver.method}]"))
    approval = outcome.approval
    if approval is not None:
        decided = ", ".join(
            f"{name(d.user_id)} {d.value}" + (f" ({d.reason})" if d.reason else "")
            for d in approval.decisions
        )
        rows.append(
            ("approval", f"{approval.id} {approval.status}" + (f": {decided}" if decided else ""))
        )
    elif outcome.approval_id:
        rows.append(("approval", outcome.approval_id))
    if outcome.reason:
        rows.append(("reason", outcome.reason))
    if outcome.expiry:
        rows.append(("expired by", outcome.expiry.replace("_", " ")))
    if outcome.denial is not None:
        rows.append(("own denial", outcome.denial.detail))
    if outcome.date_requested is not None:
        rows.append(("requested", format_time(outcome.date_requested)))
    rows.append(("finished", format_time(outcome.finished_at)))
    for receipt in outcome.deliveries:
        rows.append(("delivered", f"{receipt.kind} {receipt.target}: {receipt.detail}"))
    for note in outcome.notes:
        rows.append(("note", note))
    width = max(len(label) for label, _ in rows)
    return [f"  {label.ljust(width)}  {value}" for label, value in rows]
