"""``signgate approve APPROVAL_ID --as USER [--deny] [--reason TEXT]``.

A decision is a user action: it is signed with the approver's own credential (from the
sandbox credentials file with ``--as``, or the ``SIGNGATE_DFNS_*`` settings against real
Dfns). ``APPROVAL_ID`` may also be the id of a workflow waiting for approval: its approval
id is looked up with the workflow's ``state`` query.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from signgate import ids
from signgate.commands.common import (
    ApprovalTally,
    CommandError,
    DfnsAccess,
    add_common_options,
    approval_tally,
    connect_temporal,
    describe_dfns_error,
    load_settings,
    uses_temporal,
)
from signgate.dfns.errors import (
    DfnsConflictError,
    DfnsError,
    DfnsForbiddenError,
    DfnsNotFoundError,
    DfnsTransportError,
)
from signgate.dfns.models import Approval
from signgate.dfns.requests import ApprovalDecisionRequest

__all__ = ["Decision", "add_approve_command", "decide"]


def add_approve_command(subparsers: Any) -> None:
    """``signgate approve``."""
    parser = subparsers.add_parser(
        "approve",
        help="approve (or --deny) a pending policy approval as one of its approvers",
        description=(
            "Record an approver's decision on a policy approval: a user-action-signed "
            "POST /v2/policy-approvals/{id}/decisions with the approver's own credential. "
            "APPROVAL_ID is an approval id (ap-...) or the id of a workflow waiting for "
            "approval. --as NAME picks a user of the sandbox org (alice, bob, ...); without "
            "it the SIGNGATE_DFNS_* settings (token and credential) are the approver."
        ),
    )
    parser.add_argument(
        "approval_id", metavar="APPROVAL_ID", help="approval id, or a waiting workflow's id"
    )
    parser.add_argument("--as", dest="as_user", metavar="USER", help="the approver (sandbox)")
    parser.add_argument("--deny", action="store_true", help="deny instead of approve")
    parser.add_argument("--reason", metavar="TEXT", help="why (recorded with the decision)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser)
    parser.set_defaults(handler=_run_approve)


@dataclass(frozen=True)
class Decision:
    """A decision made, and the approval as Dfns shows it afterwards."""

    approver: str
    value: Literal["Approved", "Denied"]
    approval: Approval
    tally: ApprovalTally


async def decide(
    access: DfnsAccess,
    approval_id: str,
    *,
    deny: bool = False,
    reason: str | None = None,
) -> Decision:
    """Record ``access.identity``'s decision on ``approval_id``; errors as :class:`CommandError`."""
    value: Literal["Approved", "Denied"] = "Denied" if deny else "Approved"
    try:
        body = ApprovalDecisionRequest(value=value, reason=reason)
    except ValueError as exc:
        raise CommandError(f"--reason: {exc}") from None
    who = access.identity.name
    try:
        async with access.client() as dfns:
            approval = await dfns.create_approval_decision(approval_id, body)
    except DfnsNotFoundError:
        raise CommandError(f"no approval {approval_id} at {access.base_url}", code=1) from None
    except DfnsForbiddenError as exc:
        raise CommandError(
            f"{who} may not decide on {approval_id}: {describe_dfns_error(exc)}", code=1
        ) from None
    except DfnsConflictError as exc:
        raise CommandError(
            f"{approval_id}: decision refused ({describe_dfns_error(exc)}): it is no longer "
            f"pending, or {who} has decided already",
            code=1,
        ) from None
    except DfnsTransportError as exc:
        raise CommandError(
            f"cannot reach Dfns at {access.base_url}: {describe_dfns_error(exc)}", code=1
        ) from None
    except DfnsError as exc:
        raise CommandError(f"{approval_id}: {describe_dfns_error(exc)}", code=1) from None
    tally = await approval_tally(access, approval)
    return Decision(who, value, approval, tally)


_SUBMIT_WAIT_SECONDS = 30.0
_SUBMIT_POLL_SECONDS = 0.5


async def _approval_id(args: argparse.Namespace, access: DfnsAccess) -> str:
    """``args.approval_id`` if Dfns knows it as an approval, else the named workflow's."""
    try:
        async with access.client() as dfns:
            await dfns.get_approval(args.approval_id)
        return str(args.approval_id)
    except DfnsNotFoundError:
        pass
    except DfnsError:
        # The approver may lack read access; the decision itself will say what is wrong.
        return str(args.approval_id)
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError, RPCStatusCode

    from signgate.contracts import SignatureProgress

    uses_temporal(args)
    try:
        client = await connect_temporal(args.state_dir)
    except CommandError:
        raise CommandError(f"no approval {args.approval_id} at {access.base_url}", code=1) from None
    workflow_id = args.approval_id
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
        if desc.workflow_type == ids.PAYOUT_WORKFLOW:
            workflow_id = ids.child_signature_workflow_id(workflow_id)
        handle = client.get_workflow_handle(workflow_id)
        waited = 0.0
        while True:
            progress: SignatureProgress = await handle.query(
                ids.QUERY_STATE, result_type=SignatureProgress, rpc_timeout=timedelta(seconds=5)
            )
            # Not submitted yet (the submit may wait its turn in the Dfns budget): the
            # approval is on its way, so wait for it a while rather than refuse.
            if progress.status is not None or waited >= _SUBMIT_WAIT_SECONDS:
                break
            await asyncio.sleep(_SUBMIT_POLL_SECONDS)
            waited += _SUBMIT_POLL_SECONDS
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            # The workflow exists but did not answer, e.g. while a new worker takes over.
            raise CommandError(
                f"workflow {workflow_id} did not say which approval it waits for "
                f"({exc.message}); is its worker running? Try again, or pass the approval id",
                code=1,
            ) from None
        raise CommandError(
            f"{args.approval_id} is neither an approval at {access.base_url} nor a workflow "
            "waiting for approval",
            code=1,
        ) from None
    except WorkflowFailureError:
        raise CommandError(
            f"{args.approval_id} is neither an approval at {access.base_url} nor a workflow "
            "waiting for approval",
            code=1,
        ) from None
    if progress.approval_id is None:
        raise CommandError(
            f"workflow {workflow_id} has no approval (status "
            f"{progress.status.value if progress.status else 'Submitting'}"
            f"{'' if progress.status else f' after {_SUBMIT_WAIT_SECONDS:g} s'})",
            code=1,
        )
    return progress.approval_id


def _run_approve(args: argparse.Namespace) -> int:
    return asyncio.run(_approve(args))


async def _approve(args: argparse.Namespace) -> int:
    access = DfnsAccess.approver(load_settings(), args.state_dir, args.credentials, args.as_user)
    approval_id = await _approval_id(args, access)
    decision = await decide(access, approval_id, deny=args.deny, reason=args.reason)
    if args.json:
        print(
            json.dumps(
                {
                    "approvalId": approval_id,
                    "approver": decision.approver,
                    "decision": decision.value,
                    "approvalStatus": decision.approval.status,
                    "approvedBy": decision.tally.approved,
                    "deniedBy": decision.tally.denied,
                    "groups": [
                        {"name": n, "approvals": h, "quorum": q}
                        for n, h, q in decision.tally.groups
                    ],
                }
            ),
            flush=True,
        )
    else:
        verb = "denied" if args.deny else "approved"
        print(
            f"{decision.approver} {verb} {approval_id}: approval {decision.approval.status}, "
            f"{decision.tally.summary()}",
            flush=True,
        )
    return 0
