"""Names shared by workflows, activities, the worker and callers.

Everything here is pure and deterministic, so workflow code may import it:

* the default task queue and the workflow/activity/handler names;
* workflow-id rules (the workflow id *is* the caller's business key);
* the search-attribute keys the engine upserts, and the types a server must register;
* the ``ApplicationError.type`` strings the engine raises, so callers can match on them;
* :func:`external_id_for`, the ``externalId`` sent to Dfns, derived from the idempotency key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

from temporalio.common import SearchAttributeKey

# --- task queue and names -------------------------------------------------------------------

DEFAULT_TASK_QUEUE: Final = "signgate"


def dfns_task_queue(task_queue: str, lane: str) -> str:
    """The task queue of the activities in Dfns ``lane`` for workflows on ``task_queue``.

    Derived, not configured, so a workflow needs no setting to find it and every worker of
    ``task_queue`` polls the same one: ``signgate`` has ``signgate-dfns-reads`` and
    ``signgate-dfns-writes``.
    """
    return f"{task_queue}-dfns-{lane}"


BUDGET_QUEUES_READS_PATCH: Final = "signgate-budget-queues-reads"
"""The patch id with which a budgeted engine's workers refuse a starter's local reads.

``PollingPolicy.local_reads`` is set by the starter from *its* settings. ``SignatureWorkflow``
asks ``workflow.patched(BUDGET_QUEUES_READS_PATCH)`` before its first poll when the input
wants local reads (its other Dfns reads always use the queue); the workers'
``patch_activation_callback`` (``worker.py``) activates it only when they keep a Dfns budget,
and the answer is recorded in history (a marker when active, none when not), so a replay on
any worker makes the same choice. The choice holds for the run: a run whose first poll was on
an unbudgeted worker keeps its local reads until it continues as new. A worker built without
``engine_workers`` has no callback, so the patch is on and its reads are queued (which needs
a reads-lane worker). It is a recorded decision, not a code version: never deprecate or
remove it."""


SIGNATURE_WORKFLOW: Final = "SignatureWorkflow"
PAYOUT_WORKFLOW: Final = "PayoutWorkflow"
PAYOUT_BATCH_WORKFLOW: Final = "PayoutBatchWorkflow"
RECONCILER_WORKFLOW: Final = "ReconcilerWorkflow"

ACTIVITY_SUBMIT: Final = "signgate.submit_signature_request"
ACTIVITY_DENY_APPROVAL: Final = "signgate.deny_own_approval"
ACTIVITY_DESCRIBE_APPROVAL: Final = "signgate.describe_approval"
ACTIVITY_VERIFY: Final = "signgate.verify_signature"
ACTIVITY_VERIFY_CARRIED: Final = "signgate.verify_carried_signature"
ACTIVITY_READ_AND_VERIFY: Final = "signgate.read_and_verify_signature_request"
ACTIVITY_DELIVER_CALLBACK: Final = "signgate.deliver_callback"
ACTIVITY_RECORD_LEDGER: Final = "signgate.record_ledger"
ACTIVITY_BUILD_TRANSFER: Final = "signgate.build_evm_transfer"
ACTIVITY_PENDING_APPROVALS: Final = "signgate.list_pending_approvals"
ACTIVITY_WAITING_REQUESTS: Final = "signgate.list_waiting_requests"
ACTIVITY_RECONCILER_SWEPT: Final = "signgate.reconciler_swept"

SIGNAL_STATUS_EVENT: Final = "status_event"
UPDATE_STATUS_EVENT: Final = "report_status_event"
SIGNAL_APPROVAL_EVENT: Final = "approval_event"
QUERY_STATE: Final = "state"
SIGNAL_BATCH_ITEM: Final = "batch_item_settled"
"""A child ``SignatureWorkflow`` of a batch tells the batch (any run of it) how it ended."""
QUERY_BATCH: Final = "batch_progress"
QUERY_RECONCILER: Final = "reconciler_progress"
UPDATE_RESOLVE_SUBMIT: Final = "resolve_submit"

# --- workflow ids ---------------------------------------------------------------------------


def reconciler_workflow_id(task_queue: str) -> str:
    """The one :data:`RECONCILER_WORKFLOW` of the workers of ``task_queue`` (one Dfns org)."""
    return f"signgate-reconciler-{task_queue}"


MAX_BUSINESS_KEY_LENGTH: Final = 200
_BUSINESS_KEY = re.compile(r"^[\x21-\x7e]+$")


def validate_business_key(key: str) -> str:
    """Return ``key`` if it can be a workflow id, else raise ``ValueError`` saying why.

    A business key is 1..200 printable ASCII characters without spaces: it is the workflow
    id, shows up in the Temporal UI and CLI, and is what an operator types to find a request.
    """
    if not key:
        raise ValueError("a business key must not be empty")
    if len(key) > MAX_BUSINESS_KEY_LENGTH:
        raise ValueError(
            f"a business key is at most {MAX_BUSINESS_KEY_LENGTH} characters, got {len(key)}"
        )
    if not _BUSINESS_KEY.match(key):
        raise ValueError("a business key uses printable ASCII without spaces")
    return key


def signature_workflow_id(business_key: str) -> str:
    """The id of the :data:`SIGNATURE_WORKFLOW` execution for ``business_key`` (the key itself)."""
    return validate_business_key(business_key)


def child_signature_workflow_id(parent_workflow_id: str, step: str = "signature") -> str:
    """Id of a ``SignatureWorkflow`` a parent starts as a child: stable across parent retries."""
    return validate_business_key(f"{parent_workflow_id}/{step}")


# --- externalId -----------------------------------------------------------------------------

EXTERNAL_ID_MAX_LENGTH: Final = 50
EXTERNAL_ID_PREFIX: Final = "sg-"
_SLUG_LENGTH: Final = 16
_HASH_CHARS: Final = 26  # 130 bits of SHA-256: collisions are not a practical concern
_DOMAIN: Final = b"signgate/external-id/v1\x00"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def external_id_for(idempotency_key: str) -> str:
    """The Dfns ``externalId`` for ``idempotency_key``: deterministic, at most 50 characters.

    ``sg-<slug>-<hash>``: the slug is the start of the key, lower-cased, for people reading
    the Dfns dashboard; the hash (base32 of SHA-256 over the whole key) is what makes it
    unique. The same key always gives the same id, so every retried submit converges on one
    Dfns request. Map an ``externalId`` back to its workflow with the
    :data:`SA_EXTERNAL_ID` search attribute.
    """
    if not idempotency_key:
        raise ValueError("an idempotency key must not be empty")
    digest = hashlib.sha256(_DOMAIN + idempotency_key.encode("utf-8")).digest()
    hashed = base64.b32encode(digest).decode("ascii").lower()[:_HASH_CHARS]
    slug = _NOT_SLUG.sub("-", idempotency_key.lower()).strip("-")[:_SLUG_LENGTH].strip("-")
    external_id = f"{EXTERNAL_ID_PREFIX}{slug}-{hashed}" if slug else EXTERNAL_ID_PREFIX + hashed
    assert len(external_id) <= EXTERNAL_ID_MAX_LENGTH
    return external_id


# --- search attributes ----------------------------------------------------------------------

SA_STATUS: Final = SearchAttributeKey.for_keyword("SignGateStatus")
"""Dfns status of the request (``Submitting`` before the first answer)."""
SA_OUTCOME: Final = SearchAttributeKey.for_keyword("SignGateOutcome")
"""Outcome kind once the workflow has decided it (``signed``, ``rejected``, ``expired``, ...)."""
SA_TARGET_ID: Final = SearchAttributeKey.for_keyword("SignGateTargetId")
"""Key, wallet or legacy public-key id the request signs with."""
SA_IDEMPOTENCY_KEY: Final = SearchAttributeKey.for_keyword("SignGateIdempotencyKey")
SA_EXTERNAL_ID: Final = SearchAttributeKey.for_keyword("SignGateExternalId")
"""Routes a webhook (which carries ``externalId``) to its workflow without a lookup table."""
SA_SIGNATURE_ID: Final = SearchAttributeKey.for_keyword("SignGateSignatureId")

SEARCH_ATTRIBUTES: Final[tuple[SearchAttributeKey[str], ...]] = (
    SA_STATUS,
    SA_OUTCOME,
    SA_TARGET_ID,
    SA_IDEMPOTENCY_KEY,
    SA_EXTERNAL_ID,
    SA_SIGNATURE_ID,
)
"""Every search attribute the engine writes; a server must register them (all Keyword)."""

# --- ApplicationError types -----------------------------------------------------------------

ERR_INVALID_REQUEST: Final = "InvalidSignatureRequest"
"""The input or the request body cannot be sent (validation, HTTP 400/422, unsupported kind)."""
ERR_UNAUTHORIZED: Final = "DfnsUnauthorized"
ERR_FORBIDDEN: Final = "DfnsForbidden"
ERR_NOT_FOUND: Final = "DfnsNotFound"
ERR_CLIENT_ERROR: Final = "DfnsClientError"
"""Any other non-retryable 4xx."""
ERR_CONFLICT: Final = "DfnsConflict"
ERR_RATE_LIMITED: Final = "DfnsRateLimited"
ERR_SERVER_ERROR: Final = "DfnsServerError"
ERR_UNAVAILABLE: Final = "DfnsUnavailable"
"""Connection failure or timeout: the request may or may not have reached Dfns."""
ERR_UNEXPECTED_RESPONSE: Final = "DfnsUnexpectedResponse"
ERR_USER_ACTION: Final = "DfnsUserActionFailed"
ERR_MISCONFIGURED: Final = "SigngateMisconfigured"
"""The worker lacks something the input names (a callback secret, a ledger); retried, so a
worker redeployed with it completes the work."""
ERR_REQUEST_MISMATCH: Final = "SignatureRequestMismatch"
"""Dfns returned a request that is not ours (another externalId or key)."""
ERR_VERIFICATION_FAILED: Final = "SignatureVerificationFailed"
"""The returned signature does not verify against the key: never delivered."""
ERR_DELIVERY_FAILED: Final = "DeliveryFailed"
ERR_SUBMIT_UNKNOWN: Final = "SubmitOutcomeUnknown"
"""A legacy public-key submit may or may not have reached Dfns, and retrying could make a
second request (G1 has no idempotency key): the workflow waits for its caller to say which
request it is, or to submit again (``resolve_submit``)."""

NON_RETRYABLE_ERRORS: Final[tuple[str, ...]] = (
    ERR_INVALID_REQUEST,
    ERR_UNAUTHORIZED,
    ERR_FORBIDDEN,
    ERR_NOT_FOUND,
    ERR_CLIENT_ERROR,
    ERR_REQUEST_MISMATCH,
    ERR_VERIFICATION_FAILED,
)
"""Error types that never succeed on retry (activities raise them with ``non_retryable``)."""
