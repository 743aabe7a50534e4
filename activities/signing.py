"""Activities that talk to Dfns about a signature request: submit, deny, describe.

:class:`SigningActivities` receives the Dfns client from the worker, so no token or
credential key ever passes through workflow history. Every method is safe to retry:

* ``submit`` sends a body carrying the ``externalId`` derived from the idempotency key, so
  a retry after a lost response gets the same request back (Dfns answers 200 with the
  existing entity); a 409 (same ``externalId``, different body or target) is resolved by
  fetching the duplicate and checking that it is the request this workflow asked for.
  Legacy public keys have no ``externalId``: a submit whose outcome is unknown is not
  retried there, because a retry could create a second request.
* ``deny_own_approval`` sends the decision and, only when Dfns refuses it, reads the
  approval: "already decided" is a result, not an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.exceptions import ApplicationError

from activities.errors import (
    conflict_without_duplicate,
    dfns_errors,
    is_decision_conflict,
    submit_error,
    to_application_error,
)
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import (
    ApprovalDecisionInfo,
    ApprovalInfo,
    DenialResult,
    DenyApprovalInput,
    DescribeApprovalInput,
    ReadAndVerifyResult,
    SubmitInput,
)
from signgate.dfns.client import DfnsClient, SigningTarget
from signgate.dfns.errors import DfnsAPIError, DfnsConflictError, DfnsError
from signgate.dfns.models import Approval, SignatureRequestView
from signgate.dfns.requests import ApprovalDecisionRequest, SignatureRequestBody, to_wire
from signgate.logs import get_logger

if TYPE_CHECKING:
    from activities.verification import VerificationActivities

__all__ = ["SigningActivities", "approval_info", "same_request", "slim"]

_log = get_logger("signgate.activities.signing")


def slim(view: SignatureRequestView) -> SignatureRequestView:
    """``view`` without the echoed request body: the workflow already has it, history need not."""
    return view.model_copy(update={"request_body": {}})


def approval_info(approval: Approval) -> ApprovalInfo:
    """The engine's record of a Dfns approval."""
    return ApprovalInfo(
        id=approval.id,
        status=approval.status,
        decisions=[
            ApprovalDecisionInfo(user_id=d.user_id, value=d.value, date=d.date, reason=d.reason)
            for d in approval.decisions
        ],
        initiator_id=approval.initiator_id,
        expiration_date=approval.expiration_date,
        date_resolved=approval.date_resolved,
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        text = value.lower()
        return text[2:] if text.startswith("0x") else text
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def same_request(ours: SignatureRequestBody, echoed: dict[str, Any]) -> bool:
    """Whether Dfns's echo of a request body is the body we would send.

    Compared field by field on what we send, ignoring hex case and ``0x`` prefixes, so a
    server that normalises hex or adds fields of its own still matches.
    """
    wire = to_wire(ours)
    return all(k not in echoed or _normalise(echoed[k]) == _normalise(v) for k, v in wire.items())


def _already_decided(approval: Approval) -> DenialResult:
    """The denial result for an approval found decided when the engine came to deny it.

    A Denied decision by the approval's initiator is the engine's own: an earlier attempt
    of this activity committed it and lost the answer (a dropped connection). Reporting it
    as someone else's would let a transport error change the outcome.
    """
    ours = approval.status == "Denied" and any(
        d.value == "Denied" and d.user_id == approval.initiator_id for d in approval.decisions
    )
    return DenialResult(
        approval_id=approval.id,
        denied=ours,
        approval_status=approval.status,
        detail="denied by the engine" if ours else f"the approval was already {approval.status}",
    )


class SigningActivities:
    """Submit and approval activities over one shared :class:`DfnsClient`."""

    def __init__(self, dfns: DfnsClient, verifier: VerificationActivities | None = None) -> None:
        self._dfns = dfns
        self._verifier = verifier

    @api.SUBMIT.implements
    async def submit(self, input: SubmitInput) -> ReadAndVerifyResult:
        """Create the signature request, or get back the one this idempotency key created.

        A request Dfns signed at once (no approval needed) comes back with its signature,
        verified here with ``verifier``: the workflow needs no second activity for it.
        """
        target, request = input.target, input.request
        try:
            view = await self._dfns.submit(target, request)
        except DfnsConflictError as exc:
            if exc.duplicate_id is None:
                raise conflict_without_duplicate(exc, external_id=request.external_id) from None
            view = await self._resolve_conflict(target, request, exc.duplicate_id)
        except DfnsError as exc:
            raise submit_error(
                exc,
                target=f"{target.kind} {target.id}",
                idempotent=target.kind != "public-key",
            ) from None
        _log.info(
            "signature.submitted",
            signature_id=view.id,
            status=str(view.status),
            external_id=view.external_id,
            target=f"{target.kind}:{target.id}",
        )
        if self._verifier is None:
            return ReadAndVerifyResult(view=slim(view))
        if view.signature is None and not view.signatures:
            # Read the key now, once per worker and target, while the request waits: the
            # signed event's own copy can then be checked with no Dfns call, even with the
            # budget on, instead of sending every request of a first burst to the reads lane.
            await self._verifier.hold_public_key(target)
        return await self._verifier.with_verification(target, request, slim(view))

    async def _resolve_conflict(
        self, target: SigningTarget, request: SignatureRequestBody, duplicate: str
    ) -> SignatureRequestView:
        with dfns_errors(f"fetch duplicate {duplicate}"):
            view = await self._dfns.fetch(target, duplicate)
        if view.external_id != request.external_id or not same_request(request, view.request_body):
            raise ApplicationError(
                f"idempotency key reused for a different request: externalId "
                f"{request.external_id!r} already belongs to {duplicate} with another body or "
                "target; use a new idempotency key",
                type=ids.ERR_REQUEST_MISMATCH,
                non_retryable=True,
            )
        _log.info("signature.conflict_resolved", signature_id=view.id)
        return view

    @api.DENY_APPROVAL.implements
    async def deny_own_approval(self, input: DenyApprovalInput) -> DenialResult:
        """Deny the engine's own pending approval; an approval already decided is reported.

        The decision goes first, with no read before it: three calls on the usual path, the
        writes lane's cost. A refusal (a 4xx, :func:`is_decision_conflict`) may mean the
        approval is no longer pending, so only then is it read (a fourth call) to tell
        "already decided" from a real error, which keeps Dfns's answer to the decision.
        """
        body = ApprovalDecisionRequest(value="Denied", reason=input.reason)
        try:
            approval = await self._dfns.create_approval_decision(input.approval_id, body)
        except DfnsAPIError as exc:
            if not is_decision_conflict(exc):
                raise to_application_error(exc, action=f"deny {input.approval_id}") from None
            # Decided already: by someone else, or by an earlier attempt whose answer was lost.
            with dfns_errors(f"read approval {input.approval_id}"):
                approval = await self._dfns.get_approval(input.approval_id)
            if approval.status == "Pending":
                raise to_application_error(exc, action=f"deny {input.approval_id}") from None
            return _already_decided(approval)
        except DfnsError as exc:
            raise to_application_error(exc, action=f"deny {input.approval_id}") from None
        _log.info("approval.denied", approval_id=approval.id, status=approval.status)
        return DenialResult(
            approval_id=approval.id,
            denied=approval.status == "Denied",
            approval_status=approval.status,
            detail="denied by the engine" if approval.status == "Denied" else approval.status,
        )

    @api.DESCRIBE_APPROVAL.implements
    async def describe_approval(self, input: DescribeApprovalInput) -> ApprovalInfo:
        """Read an approval: status, decisions, expiry."""
        with dfns_errors(f"read approval {input.approval_id}"):
            approval = await self._dfns.get_approval(input.approval_id)
        return approval_info(approval)
