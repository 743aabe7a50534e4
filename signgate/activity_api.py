"""Every activity the engine's workflows call, declared once with its types and retry rule.

A workflow calls ``SUBMIT.run(SubmitInput(...))``; an activity class implements it with
``@SUBMIT.implements`` on a method taking that input and returning that output. mypy checks
both ends against the same declaration, so a wrong input or result type is a type error,
and workflows never import the activity modules (which do I/O).

The retry rule lives here, in one place: **a retryable error never decides an outcome.**
Each activity either retries without limit (``UNTIL_DONE``: every call here is an
idempotent read or write, safe to repeat for as long as Dfns or a receiver is down) or
retries a few times and then fails to a caller that records the failure and carries on
(``BOUNDED``: a poll, whose loop polls again later; an approval read, whose outcome stands
without the decisions). Only a non-retryable error (Dfns refused the input, a request that
is not ours) reaches a workflow as a failure.

The Dfns budget lives here too: an activity that calls Dfns names its **lane** (``reads`` or
``writes``) and the calls one attempt makes. It runs on its lane's own task queue
(:func:`signgate.ids.dfns_task_queue`), which the worker rate-limits with Temporal's
``max_task_queue_activities_per_second``: the server dispatches at most that many tasks per
second to all workers together, so the budget holds however many workers or waiting
requests there are. A Dfns activity is never local: a local activity would bypass the queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Generic, Literal, TypeVar

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from signgate import ids
from signgate.contracts import (
    ApprovalInfo,
    BuildTransferInput,
    BuiltTransfer,
    CallbackInput,
    DeliveryReceipt,
    DenialResult,
    DenyApprovalInput,
    DescribeApprovalInput,
    LedgerInput,
    PendingApprovalsInput,
    PendingApprovalsPage,
    ReadAndVerifyInput,
    ReadAndVerifyResult,
    ReconcilerSwept,
    ReconcilerSweptInput,
    SubmitInput,
    VerificationResult,
    VerifyCarriedInput,
    VerifyInput,
    WaitingRequestsInput,
    WaitingRequestsPage,
)

__all__ = [
    "ALL",
    "BOUNDED",
    "BUILD_TRANSFER",
    "DELIVER_CALLBACK",
    "DENY_APPROVAL",
    "DESCRIBE_APPROVAL",
    "LANES",
    "PENDING_APPROVALS",
    "READ_AND_VERIFY",
    "RECONCILER_SWEPT",
    "RECORD_LEDGER",
    "SUBMIT",
    "UNTIL_DONE",
    "VERIFY",
    "VERIFY_CARRIED",
    "WAITING_REQUESTS",
    "ActivityRef",
    "Lane",
    "lane_calls",
    "lane_of",
]

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Self_ = TypeVar("Self_")

Lane = Literal["reads", "writes"]
"""The Dfns task queues: reads (one call each) and writes (a user-action signed call)."""

LANES: Final[tuple[Lane, ...]] = ("reads", "writes")

UNTIL_DONE = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
"""Retry until it succeeds or fails non-retryably; a minute apart at most."""

BOUNDED = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
"""A few attempts; the caller records the failure and carries on."""

# Deliveries may wait long for a receiver that is down; the cap keeps a dead one cheap.
_DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=10)
)


@dataclass(frozen=True)
class ActivityRef(Generic[In, Out]):
    """One activity: its name, input and result types, timeout and retry policy.

    ``on_failure`` says what a workflow does when the activity fails after its retries:
    ``"never"`` (it retries until done; only a non-retryable error ends it) or
    ``"recorded"`` (the caller records the failure and goes on). Tests check that no
    bounded activity is declared ``"never"``.

    ``lane`` is the Dfns task queue the activity runs on (``None``: it does not call Dfns
    and runs on the workflow's own queue); ``dfns_calls`` the Dfns calls one attempt makes
    on its usual path, which the worker charges against the budget.
    """

    name: str
    input_type: type[In]
    result_type: type[Out]
    start_to_close: timedelta
    retry: RetryPolicy
    on_failure: Literal["never", "recorded"] = "never"
    lane: Lane | None = None
    dfns_calls: int = 0

    def implements(
        self, method: Callable[[Self_, In], Awaitable[Out]]
    ) -> Callable[[Self_, In], Awaitable[Out]]:
        """Register ``method`` (of an activity class) as this activity."""
        setattr(method, _REF_ATTRIBUTE, self)
        return activity.defn(name=self.name)(method)

    def implements_function(
        self, function: Callable[[In], Awaitable[Out]]
    ) -> Callable[[In], Awaitable[Out]]:
        """Register a module-level ``function`` as this activity."""
        setattr(function, _REF_ATTRIBUTE, self)
        return activity.defn(name=self.name)(function)

    def start(self, arg: In, *, local: bool = False) -> workflow.ActivityHandle[Out]:
        """Schedule the activity from workflow code (a local activity when ``local``).

        A Dfns activity goes to its lane's task queue beside the workflow's own; as a local
        activity it runs in the workflow's worker, outside its lane's budget (only for an
        engine whose budget is off: ``PollingPolicy.local_reads``).
        """
        if self.lane is not None and not local:
            return workflow.start_activity(
                self.name,
                arg,
                result_type=self.result_type,
                task_queue=ids.dfns_task_queue(workflow.info().task_queue, self.lane),
                start_to_close_timeout=self.start_to_close,
                retry_policy=self.retry,
            )
        if local:
            return workflow.start_local_activity(
                self.name,
                arg,
                result_type=self.result_type,
                start_to_close_timeout=self.start_to_close,
                retry_policy=self.retry,
            )
        return workflow.start_activity(
            self.name,
            arg,
            result_type=self.result_type,
            start_to_close_timeout=self.start_to_close,
            retry_policy=self.retry,
        )

    async def run(self, arg: In, *, local: bool = False) -> Out:
        """Run the activity from workflow code and return its result."""
        return await self.start(arg, local=local)


_REF_ATTRIBUTE: Final = "__signgate_activity_ref"

_DFNS = timedelta(seconds=60)

SUBMIT: ActivityRef[SubmitInput, ReadAndVerifyResult] = ActivityRef(
    ids.ACTIVITY_SUBMIT,
    SubmitInput,
    ReadAndVerifyResult,
    _DFNS,
    UNTIL_DONE,
    lane="writes",
    dfns_calls=3,
)
"""Create the request; the same ``externalId`` makes every retry converge on one request.

Three calls: the user-action challenge, its signed answer, the request (a 409 adds a read).
A request signed at once comes back verified; either way the worker reads the key's public key
once per target, then keeps it (for a signed event's copy, checked with no call)."""

READ_AND_VERIFY: ActivityRef[ReadAndVerifyInput, ReadAndVerifyResult] = ActivityRef(
    ids.ACTIVITY_READ_AND_VERIFY,
    ReadAndVerifyInput,
    ReadAndVerifyResult,
    _DFNS,
    BOUNDED,
    "recorded",
    lane="reads",
    dfns_calls=1,
)
"""One poll: read the request and verify any signatures it carries.

One call; the key's public key is read once per worker and target, then cached."""

DENY_APPROVAL: ActivityRef[DenyApprovalInput, DenialResult] = ActivityRef(
    ids.ACTIVITY_DENY_APPROVAL,
    DenyApprovalInput,
    DenialResult,
    _DFNS,
    UNTIL_DONE,
    lane="writes",
    dfns_calls=3,
)
"""Deny the engine's own pending approval; "already decided" is a result.

Three calls: the challenge, its signed answer, the decision (a refused decision adds a read)."""

DESCRIBE_APPROVAL: ActivityRef[DescribeApprovalInput, ApprovalInfo] = ActivityRef(
    ids.ACTIVITY_DESCRIBE_APPROVAL,
    DescribeApprovalInput,
    ApprovalInfo,
    _DFNS,
    BOUNDED,
    "recorded",
    lane="reads",
    dfns_calls=1,
)
"""Read the approval's decisions for the outcome."""

VERIFY: ActivityRef[VerifyInput, VerificationResult] = ActivityRef(
    ids.ACTIVITY_VERIFY,
    VerifyInput,
    VerificationResult,
    timedelta(seconds=30),
    UNTIL_DONE,
    lane="reads",
    dfns_calls=1,
)
"""Verify a signature against the key's public key (read from Dfns until it can be; cached)."""

VERIFY_CARRIED: ActivityRef[VerifyCarriedInput, VerificationResult] = ActivityRef(
    ids.ACTIVITY_VERIFY_CARRIED,
    VerifyCarriedInput,
    VerificationResult,
    timedelta(seconds=10),
    BOUNDED,
    "recorded",
)
"""Verify a signed request a webhook carried (a local activity, on the workflow's worker).

No Dfns call on its usual path: the key's public key is the one the worker holds. A worker
that holds none reads it only when the input allows (reads not budgeted); otherwise the
result is ``unverifiable`` and the workflow reads the request as it would without the event."""

DELIVER_CALLBACK: ActivityRef[CallbackInput, DeliveryReceipt] = ActivityRef(
    ids.ACTIVITY_DELIVER_CALLBACK,
    CallbackInput,
    DeliveryReceipt,
    timedelta(seconds=60),
    _DELIVERY_RETRY,
)
"""POST the outcome to a callback URL, signed, with an idempotency key."""

RECORD_LEDGER: ActivityRef[LedgerInput, DeliveryReceipt] = ActivityRef(
    ids.ACTIVITY_RECORD_LEDGER, LedgerInput, DeliveryReceipt, timedelta(seconds=60), _DELIVERY_RETRY
)
"""Append the outcome to a ledger, once per idempotency key."""

BUILD_TRANSFER: ActivityRef[BuildTransferInput, BuiltTransfer] = ActivityRef(
    ids.ACTIVITY_BUILD_TRANSFER,
    BuildTransferInput,
    BuiltTransfer,
    timedelta(seconds=60),
    UNTIL_DONE,
)
"""Serialise a payout's EVM transfer (deterministic; bad input fails non-retryably)."""

PENDING_APPROVALS: ActivityRef[PendingApprovalsInput, PendingApprovalsPage] = ActivityRef(
    ids.ACTIVITY_PENDING_APPROVALS,
    PendingApprovalsInput,
    PendingApprovalsPage,
    _DFNS,
    BOUNDED,
    "recorded",
    lane="reads",
    dfns_calls=1,
)
"""One page of the org's pending approvals, for the reconciler (a failed page ends its sweep)."""

WAITING_REQUESTS: ActivityRef[WaitingRequestsInput, WaitingRequestsPage] = ActivityRef(
    ids.ACTIVITY_WAITING_REQUESTS,
    WaitingRequestsInput,
    WaitingRequestsPage,
    timedelta(seconds=60),
    BOUNDED,
    "recorded",
)
"""One page of the requests waiting at Dfns, from Temporal's visibility index (no Dfns call)."""

RECONCILER_SWEPT: ActivityRef[ReconcilerSweptInput, ReconcilerSwept] = ActivityRef(
    ids.ACTIVITY_RECONCILER_SWEPT,
    ReconcilerSweptInput,
    ReconcilerSwept,
    timedelta(seconds=30),
    BOUNDED,
    "recorded",
)
"""Ask the reconciler (a Temporal query, no Dfns call) whether it swept since a time; a
failure counts as "not known", and the caller polls Dfns as if there were no reconciler."""

ALL: tuple[ActivityRef[Any, Any], ...] = (
    SUBMIT,
    READ_AND_VERIFY,
    DENY_APPROVAL,
    DESCRIBE_APPROVAL,
    VERIFY,
    VERIFY_CARRIED,
    DELIVER_CALLBACK,
    RECORD_LEDGER,
    BUILD_TRANSFER,
    PENDING_APPROVALS,
    WAITING_REQUESTS,
    RECONCILER_SWEPT,
)
"""Every declaration, for the worker's registration check and the retry-rule test."""


def lane_of(implementation: Callable[..., Any]) -> Lane | None:
    """The lane of an activity implementation registered through :meth:`ActivityRef.implements`.

    ``None`` for an activity that does not call Dfns, or one not declared here.
    """
    function = getattr(implementation, "__func__", implementation)
    ref = getattr(function, _REF_ATTRIBUTE, None)
    return ref.lane if isinstance(ref, ActivityRef) else None


def lane_calls(lane: Lane) -> int:
    """The most Dfns calls one attempt of an activity in ``lane`` makes on its usual path."""
    return max(ref.dfns_calls for ref in ALL if ref.lane == lane)
