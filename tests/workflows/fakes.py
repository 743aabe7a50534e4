"""An in-memory Dfns behind the engine's activity names, for workflow-logic tests.

Time is the Temporal server's (``current_attempt_scheduled_time``), so on the
time-skipping server a status scripted "3 days after submit" appears after three days of
workflow time. The fake records every call so tests can assert on what the workflow did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import read_errors
from signgate import activity_api as api
from signgate import ids
from signgate.contracts import (
    ApprovalDecisionInfo,
    ApprovalInfo,
    CallbackInput,
    DeliveryReceipt,
    DenialResult,
    DenyApprovalInput,
    DescribeApprovalInput,
    LedgerInput,
    ReadAndVerifyInput,
    ReadAndVerifyResult,
    SubmitInput,
    VerificationResult,
    VerifyInput,
)
from signgate.dfns.errors import DfnsRateLimitError
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus

S = SignatureStatus


def unknown_submit() -> ApplicationError:
    """The error a legacy submit whose outcome is unknown raises."""
    return ApplicationError(
        "submit to public-key pk-fake: Dfns answered 504; not retried",
        type=ids.ERR_SUBMIT_UNKNOWN,
        non_retryable=True,
    )


@dataclass
class _Request:
    id: str
    external_id: str | None
    created_at: datetime
    denied_at: datetime | None = None


@dataclass
class FakeDfns:
    """Scripted Dfns: ``steps`` are (time after submit, status) pairs, in order."""

    steps: Sequence[tuple[timedelta, SignatureStatus]] = ()
    approval: bool = True
    approval_expired: bool = False
    verdict: Literal["verified", "unverifiable", "invalid"] = "verified"
    submit_error: ApplicationError | None = None
    """Raised by the next submit (once)."""
    lose_submit_answer: bool = False
    """The next submit creates the request, then fails as if its answer was lost (once)."""
    failing_fetches: int = 0
    rate_limited_fetches: int = 0
    """The next reads Dfns refuses with 429 and ``Retry-After: retry_after`` (seconds)."""
    retry_after: float = 600.0
    deny_succeeds: bool = True
    fetch_status_override: SignatureStatus | None = None
    submits: int = 0
    created: int = 0
    fetches: int = 0
    fetch_times: list[datetime] = field(default_factory=list)
    denials: list[DenyApprovalInput] = field(default_factory=list)
    verifications: int = 0
    describes: int = 0
    callbacks: list[CallbackInput] = field(default_factory=list)
    ledger: dict[str, LedgerInput] = field(default_factory=dict)
    _requests: dict[str, _Request] = field(default_factory=dict)

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker."""
        return [
            self.submit,
            self.deny,
            self.describe,
            self.verify,
            self.read_and_verify,
            self.deliver_callback,
            self.record_ledger,
        ]

    @staticmethod
    def _now() -> datetime:
        return activity.info().current_attempt_scheduled_time

    def _status(self, req: _Request, now: datetime) -> SignatureStatus:
        status = S.PENDING if self.approval else S.SIGNED
        for after, step in self.steps:
            if now - req.created_at >= after:
                status = step
        if req.denied_at is not None and now >= req.denied_at and status is S.PENDING:
            status = S.REJECTED
        return status

    def _view(self, req: _Request, status: SignatureStatus) -> SignatureRequestView:
        signed = status in (S.SIGNED, S.CONFIRMED)
        return SignatureRequestView(
            generation="keys",
            id=req.id,
            key_id="key-fake",
            status=status,
            raw_status=str(status),
            signature=Signature(r="0x01", s="0x02", recid=0) if signed else None,
            approval_id="ap-fake" if self.approval else None,
            external_id=req.external_id,
            date_requested=req.created_at,
            reason="denied" if status is S.REJECTED else None,
        )

    @api.SUBMIT.implements
    async def submit(self, input: SubmitInput) -> ReadAndVerifyResult:
        self.submits += 1
        if self.submit_error is not None:
            error, self.submit_error = self.submit_error, None
            raise error
        key = input.request.external_id or f"anon-{self.submits}"
        req = self._requests.get(key)
        if req is None:
            self.created += 1
            req = _Request(f"sig-fake-{self.created}", input.request.external_id, self._now())
            self._requests[key] = req
        if self.lose_submit_answer:
            self.lose_submit_answer = False
            raise unknown_submit()
        view = self._view(req, self._status(req, self._now()))
        if view.signature is None:
            return ReadAndVerifyResult(view=view)
        verdict = await self.verify(
            VerifyInput(target=input.target, request=input.request, snapshot=view)
        )
        return ReadAndVerifyResult(view=view, verification=verdict)

    def request_ids(self) -> list[str]:
        """Ids of every request the fake holds, oldest first."""
        return [req.id for req in self._requests.values()]

    def _by_id(self, signature_id: str) -> _Request:
        for req in self._requests.values():
            if req.id == signature_id:
                return req
        raise ApplicationError(f"no request {signature_id}", type=ids.ERR_NOT_FOUND)

    def _read(self, signature_id: str) -> SignatureRequestView:
        self.fetches += 1
        self.fetch_times.append(self._now())
        if self.failing_fetches > 0:
            self.failing_fetches -= 1
            raise ApplicationError("Dfns answered 403", type=ids.ERR_FORBIDDEN, non_retryable=True)
        if self.rate_limited_fetches > 0:
            self.rate_limited_fetches -= 1
            with read_errors(f"fetch {signature_id}"):
                raise DfnsRateLimitError(429, "Too many requests", retry_after=self.retry_after)
        req = self._by_id(signature_id)
        status = self.fetch_status_override or self._status(req, self._now())
        return self._view(req, status)

    @api.DENY_APPROVAL.implements
    async def deny(self, input: DenyApprovalInput) -> DenialResult:
        self.denials.append(input)
        if not self.deny_succeeds:
            raise ApplicationError("forbidden", type=ids.ERR_FORBIDDEN, non_retryable=True)
        for req in self._requests.values():
            if self._status(req, self._now()) is S.PENDING:
                req.denied_at = self._now()
                return DenialResult(
                    approval_id=input.approval_id,
                    denied=True,
                    approval_status="Denied",
                    detail="denied",
                )
        return DenialResult(
            approval_id=input.approval_id,
            denied=False,
            approval_status="Approved",
            detail="the approval was already Approved",
        )

    @api.DESCRIBE_APPROVAL.implements
    async def describe(self, input: DescribeApprovalInput) -> ApprovalInfo:
        self.describes += 1
        denied = any(r.denied_at is not None for r in self._requests.values())
        status = "Expired" if self.approval_expired else ("Denied" if denied else "Approved")
        return ApprovalInfo(
            id=input.approval_id,
            status=status,
            decisions=[ApprovalDecisionInfo(user_id="us-alice", value="Approved")],
        )

    @api.VERIFY.implements
    async def verify(self, input: VerifyInput) -> VerificationResult:
        self.verifications += 1
        return VerificationResult(status=self.verdict, method="fake", detail=self.verdict)

    @api.READ_AND_VERIFY.implements
    async def read_and_verify(self, input: ReadAndVerifyInput) -> ReadAndVerifyResult:
        """A read (counted in ``fetches``) and, for a signed view, a verification (counted
        in ``verifications``), as the real activity does both."""
        view = self._read(input.signature_id)
        if not input.verify or (view.signature is None and not view.signatures):
            return ReadAndVerifyResult(view=view)
        verdict = await self.verify(
            VerifyInput(target=input.target, request=input.request, snapshot=view)
        )
        return ReadAndVerifyResult(view=view, verification=verdict)

    @api.DELIVER_CALLBACK.implements
    async def deliver_callback(self, input: CallbackInput) -> DeliveryReceipt:
        self.callbacks.append(input)
        return DeliveryReceipt(
            kind="callback",
            target=input.spec.url,
            idempotency_key=input.idempotency_key,
            first_time=True,
            detail="ok",
        )

    @api.RECORD_LEDGER.implements
    async def record_ledger(self, input: LedgerInput) -> DeliveryReceipt:
        first = input.idempotency_key not in self.ledger
        self.ledger.setdefault(input.idempotency_key, input)
        return DeliveryReceipt(
            kind="ledger",
            target="memory",
            idempotency_key=input.idempotency_key,
            first_time=first,
            detail="ok",
        )
