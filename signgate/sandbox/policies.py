"""The sandbox's policy engine (Policy Engine v2) and its approvals.

Policies are stored for every activity kind the spec allows, but only ``Wallets:Sign``
policies are evaluated: the sandbox has no transfers, permissions or aliases to gate, and
``Policies:Modify`` change requests (HTTP 202) are not implemented, so policy updates and
archives apply at once.

Choices where Dfns's public material is silent (API-NOTES §3.3, §9.4, §9.9-§9.11):

* Evaluation: every Active ``Wallets:Sign`` policy whose filters match is evaluated, in
  creation order, and each is recorded in ``policyEvaluations`` as ``{policyId, triggered,
  reason}``. Policies whose filters do not match are not evaluated and not recorded.
* Filters: a policy without filters (or with empty ones) applies to every signature
  request. ``walletId.in`` matches when any wallet backed by the key is listed;
  ``walletTags.hasAny`` / ``hasAll`` test the union of those wallets' tags; the two
  filters combine with AND. A filtered policy never matches a key that backs no wallet.
* Rules (see ``policy_rules``): ``AlwaysTrigger`` triggers. ``TransactionAmountLimit``,
  ``TransactionAmountVelocity`` and ``TransactionRecipientWhitelist`` fail closed (trigger)
  for every request except a plain EVM value transfer given as a JSON ``Transaction``;
  amounts are valued only with ``usd_prices`` (USD per native unit, by EVM chain id), so
  without a price the amount rules fail closed too. Whitelist matching is
  case-insensitive (EVM). ``TransactionCountVelocity`` triggers when the number of live
  signature activities of the same key or any of its wallets in the last ``timeframe``
  minutes, *counting the current one*, is strictly greater than ``limit`` (limit 2: the
  third request in the window triggers). An activity exactly ``timeframe`` minutes old no
  longer counts. ``TransactionAmountVelocity`` sums the same window plus the current
  amount, triggers when the sum is strictly greater than ``limit``, and fails closed if
  any activity in the window had no known amount. "Live" activities are those that were
  not blocked and whose approval was not denied or expired (a pending one counts).
  ``ChainalysisTransactionPrescreening`` cannot screen offline: it triggers unless
  ``fallbackBehaviours.skipUnscreenableTransaction`` is true.
  ``TravelRuleTransactionPrescreening`` applies only to transfer requests and is skipped.
* Actions: any triggered ``Block`` blocks the request (Block wins) and no approval is
  made; ``NoAction`` is only recorded (and announced by ``policy.triggered``). The groups
  of every triggered ``RequestApproval`` policy are merged into ONE approval, each group
  keeping its own quorum, approvers and flags; the smallest ``autoRejectTimeout`` among
  those policies wins (a policy without one does not lift another's timeout).
  The approval's groups are a snapshot: editing or archiving a policy later does not
  change approvals already made.
* Decisions: a user may decide once per approval (a second decision is 409). Deciding
  on an approval that is no longer Pending is 409. A decision by someone who is not an
  approver is 403. A user may approve when some group lists them in
  ``approvers.userId.in`` or has ``approvers: {}``; a service account only when a group
  has ``serviceAccountsCanApprove: true`` and lists it explicitly. The initiator may not
  approve unless the group sets ``initiatorCanApprove``, but may always deny (cancel) its
  own activity, even when it is no approver. Any denial denies the approval; it is
  approved once every group has ``quorum`` approvals from users eligible in that group
  (one approval counts for every group the user is eligible in).
* Expiry: ``expire_due`` (and, lazily, every read or decision) moves Pending approvals
  whose ``expirationDate`` has passed on the sandbox clock to ``Expired``.
* Events: ``policy.triggered`` per triggered policy with ``{"policyEvaluation": {...}}``;
  ``policy.approval.pending`` and ``policy.approval.resolved`` carry the full approval as
  ``{"approval": Approval}`` (the old docs' shape; the newer ``{activityId}`` page looks
  incomplete).
* Lists: newest first, opaque ``paginationToken``, ``limit`` default 20, values above 100
  are capped at 100. ``approverId`` selects approvals where the user is listed in a
  group, any group is open to everyone (``approvers: {}``), or the user has decided.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.db import Database, TableCache
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.ids import new_id
from signgate.sandbox.policy_rules import (
    PriorActivity,
    RuleResult,
    evaluate_rule,
    transfer_facts,
    value_in_usd,
)
from signgate.sandbox.validation import validate

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
POLICY_STATUSES = ("Active", "Archived")
APPROVAL_STATUSES = ("Pending", "Approved", "Denied", "Expired")
SIGN_ACTIVITY = "Wallets:Sign"
# The longest velocity timeframe the spec allows (minutes); older log rows are useless.
_MAX_TIMEFRAME_MINUTES = 43200

_DDL = [
    """CREATE TABLE IF NOT EXISTS pol_policies (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        activity_kind TEXT NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pol_policies_status ON pol_policies (status, activity_kind)",
    """CREATE TABLE IF NOT EXISTS pol_approvals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        initiator_id TEXT NOT NULL,
        expiration_ts REAL,
        open_to_all INTEGER NOT NULL,
        approver_index TEXT NOT NULL,
        groups TEXT NOT NULL,
        deciders TEXT NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pol_approvals_due ON pol_approvals (status, expiration_ts)",
    """CREATE TABLE IF NOT EXISTS pol_activity_log (
        signature_request_id TEXT PRIMARY KEY,
        date_ts REAL NOT NULL,
        scopes TEXT NOT NULL,
        amount_usd TEXT,
        live INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS pol_activity_log_date ON pol_activity_log (date_ts)",
]

Publish = Callable[[str, dict[str, Any]], None]
ResolutionHandler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Actor:
    """Who calls: built by the auth layer from the bearer token."""

    user_id: str
    is_service_account: bool
    token_id: str | None = None
    permissions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SignActivity:
    """One signature request being evaluated (activity kind ``Wallets:Sign``)."""

    initiator: Actor
    signature_request: dict[str, Any]
    wallet_ids: tuple[str, ...]
    wallet_tags: tuple[str, ...]


@dataclass(frozen=True)
class PolicyOutcome:
    """What the policy engine decided for one signature request."""

    kind: Literal["Proceed", "Blocked", "ApprovalRequired"]
    evaluations: list[dict[str, Any]]
    approval: dict[str, Any] | None
    blocking_policy_ids: list[str]


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(_dump({"seq": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int | None:
    if token is None:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        seq = json.loads(base64.urlsafe_b64decode(padded.encode()))["seq"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise SandboxError(400, "paginationToken is not a valid token") from None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise SandboxError(400, "paginationToken is not a valid token")
    return seq


def _page_size(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SandboxError(400, "limit must be a positive integer", details={"field": "limit"})
    return min(limit, MAX_LIMIT)


def _check_enum(name: str, value: str | None, allowed: Iterable[str]) -> None:
    options = list(allowed)
    if value is not None and value not in options:
        raise SandboxError(400, f"{name} must be one of {options}", details={"field": name})


def _listed(group: Mapping[str, Any]) -> list[str] | None:
    """The explicitly listed approvers, or None when the group is open to the org."""
    approvers = group.get("approvers") or {}
    user_ids = approvers.get("userId")
    if not user_ids:
        return None
    return list(user_ids.get("in", []))


def _is_member(group: Mapping[str, Any], user_id: str, is_service_account: bool) -> bool:
    listed = _listed(group)
    if is_service_account:
        return (
            bool(group.get("serviceAccountsCanApprove"))
            and listed is not None
            and (user_id in listed)
        )
    return listed is None or user_id in listed


def _can_approve(
    group: Mapping[str, Any], user_id: str, is_service_account: bool, initiator_id: str
) -> bool:
    if not _is_member(group, user_id, is_service_account):
        return False
    return user_id != initiator_id or bool(group.get("initiatorCanApprove"))


def _filters_match(filters: Mapping[str, Any] | None, activity: SignActivity) -> bool:
    filters = filters or {}
    wallet_ids = (filters.get("walletId") or {}).get("in")
    tags = filters.get("walletTags") or {}
    has_any, has_all = tags.get("hasAny"), tags.get("hasAll")
    if not (wallet_ids or has_any or has_all):
        return True
    if not activity.wallet_ids:
        return False
    if wallet_ids and not set(wallet_ids) & set(activity.wallet_ids):
        return False
    wallet_tags = set(activity.wallet_tags)
    if has_any and not set(has_any) & wallet_tags:
        return False
    return not (has_all and not set(has_all) <= wallet_tags)


def _scopes(activity: SignActivity) -> list[str]:
    """What velocity rules aggregate over: the key and every wallet it backs."""
    request = activity.signature_request
    scopes = {f"wallet:{wallet_id}" for wallet_id in activity.wallet_ids}
    if request.get("keyId"):
        scopes.add(f"key:{request['keyId']}")
    if request.get("walletId"):
        scopes.add(f"wallet:{request['walletId']}")
    if not scopes:
        scopes.add(f"request:{request.get('id')}")
    return sorted(scopes)


class PolicyService:
    """Policies, their evaluation for signature requests, and approvals (all in SQLite)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        publish: Publish,
        *,
        usd_prices: Mapping[int, Decimal | int | float | str] | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._publish = publish
        self._prices = {int(k): Decimal(str(v)) for k, v in (usd_prices or {}).items()}
        self._handler: ResolutionHandler | None = None
        # Every signature request reads the active Wallets:Sign policies.
        self._active: TableCache[tuple[str, ...]] = TableCache(db)
        db.ensure_schema(_DDL)

    def set_resolution_handler(self, handler: ResolutionHandler) -> None:
        """Called inside the DB transaction when an approval leaves Pending."""
        self._handler = handler

    # -- policies ---------------------------------------------------------------------

    def create_policy(self, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/policies``: validate against the spec and store as Active."""
        validate("policies#createPolicyBody", body, field_details=True)
        now = isoformat(self._clock.now())
        policy = {"id": new_id("plc"), **self._policy_fields(body), "status": "Active"}
        policy["dateCreated"] = policy["dateUpdated"] = now
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO pol_policies (id, status, activity_kind, data) VALUES (?, ?, ?, ?)",
                (policy["id"], "Active", policy["activityKind"], _dump(policy)),
            )
            self._active.invalidate()
        return policy

    def get_policy(self, policy_id: str) -> dict[str, Any]:
        """``GET /v2/policies/{policyId}``."""
        row = self._db.query_one("SELECT data FROM pol_policies WHERE id = ?", (policy_id,))
        if row is None:
            raise SandboxError(404, f"policy {policy_id} not found")
        policy: dict[str, Any] = json.loads(row["data"])
        return policy

    def list_policies(
        self,
        *,
        status: str | None = None,
        limit: int | None = None,
        pagination_token: str | None = None,
    ) -> dict[str, Any]:
        """``GET /v2/policies``: newest first, optional ``status`` filter."""
        _check_enum("status", status, POLICY_STATUSES)
        size = _page_size(limit)
        after = _decode_token(pagination_token)
        rows = self._db.query(
            "SELECT seq, data FROM pol_policies"
            " WHERE (:status IS NULL OR status = :status) AND (:after IS NULL OR seq < :after)"
            " ORDER BY seq DESC LIMIT :n",
            {"status": status, "after": after, "n": size + 1},
        )
        return self._page(rows, size)

    def update_policy(self, actor: Actor, policy_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /v2/policies/{policyId}``: replace name, rule, action and filters."""
        validate("policies#createPolicyBody", body, field_details=True)
        with self._db.transaction():
            policy = self.get_policy(policy_id)
            if policy["status"] != "Active":
                raise SandboxError(409, f"policy {policy_id} is archived and cannot be updated")
            updated = {"id": policy_id, **self._policy_fields(body), "status": "Active"}
            updated["dateCreated"] = policy.get("dateCreated")
            updated["dateUpdated"] = isoformat(self._clock.now())
            self._db.execute(
                "UPDATE pol_policies SET activity_kind = ?, data = ? WHERE id = ?",
                (updated["activityKind"], _dump(updated), policy_id),
            )
            self._active.invalidate()
        return updated

    def archive_policy(self, actor: Actor, policy_id: str) -> dict[str, Any]:
        """``DELETE /v2/policies/{policyId}``: archive (idempotent)."""
        with self._db.transaction():
            policy = self.get_policy(policy_id)
            if policy["status"] == "Archived":
                return policy
            policy["status"] = "Archived"
            policy["dateUpdated"] = isoformat(self._clock.now())
            self._db.execute(
                "UPDATE pol_policies SET status = 'Archived', data = ? WHERE id = ?",
                (_dump(policy), policy_id),
            )
            self._active.invalidate()
        return policy

    @staticmethod
    def _policy_fields(body: Mapping[str, Any]) -> dict[str, Any]:
        fields = {name: body[name] for name in ("name", "activityKind", "rule", "action")}
        if "filters" in body:
            fields["filters"] = body["filters"]
        return _copy(fields)

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self, activity: SignActivity) -> PolicyOutcome:
        """Evaluate every matching Active ``Wallets:Sign`` policy for a signature request.

        Persists the approval when one is needed and publishes ``policy.triggered`` for each
        triggered policy, then ``policy.approval.pending`` for the new approval.
        """
        with self._db.transaction():
            now = self._clock.now()
            now_ts = now.timestamp()
            request = _copy(activity.signature_request)
            request_id = str(request.get("id") or new_id("sig"))
            facts = transfer_facts(request.get("requestBody") or {})
            amount = value_in_usd(facts.transfer, self._prices)
            scopes = _scopes(activity)

            def history(timeframe: int) -> list[PriorActivity]:
                return self._prior_activities(scopes, now_ts - timeframe * 60, request_id)

            evaluations: list[dict[str, Any]] = []
            triggered: list[tuple[dict[str, Any], RuleResult]] = []
            for policy in self._active_sign_policies():
                if not _filters_match(policy.get("filters"), activity):
                    continue
                result = evaluate_rule(policy["rule"], facts, amount, history)
                evaluations.append(
                    {
                        "policyId": policy["id"],
                        "triggered": result.triggered,
                        "reason": result.reason,
                    }
                )
                if result.triggered:
                    triggered.append((policy, result))

            blocking = [p["id"] for p, _ in triggered if p["action"]["kind"] == "Block"]
            requesting = [p for p, _ in triggered if p["action"]["kind"] == "RequestApproval"]
            approval_id = new_id("ap") if requesting and not blocking else None
            if approval_id is not None:
                request["approvalId"] = approval_id
                request["status"] = "Pending"
            sign_activity = {"kind": SIGN_ACTIVITY, "signatureRequest": request}

            self._log_activity(request_id, now_ts, scopes, amount, live=not blocking)
            for policy, result in triggered:
                self._publish_triggered(policy, result, sign_activity, isoformat(now))

            if blocking:
                return PolicyOutcome("Blocked", evaluations, None, blocking)
            if approval_id is None:
                return PolicyOutcome("Proceed", evaluations, None, [])
            approval = self._create_approval(
                approval_id, activity.initiator, sign_activity, evaluations, requesting
            )
            return PolicyOutcome("ApprovalRequired", evaluations, approval, [])

    def _active_sign_policies(self) -> list[dict[str, Any]]:
        # Kept as JSON text so each evaluation works on its own copies.
        return [json.loads(text) for text in self._active.get(self._load_active_sign_policies)]

    def _load_active_sign_policies(self) -> tuple[str, ...]:
        rows = self._db.query(
            "SELECT data FROM pol_policies WHERE status = 'Active' AND activity_kind = ?"
            " ORDER BY seq",
            (SIGN_ACTIVITY,),
        )
        return tuple(str(row["data"]) for row in rows)

    def _prior_activities(
        self, scopes: list[str], since_ts: float, exclude_id: str
    ) -> list[PriorActivity]:
        rows = self._db.query(
            "SELECT scopes, amount_usd FROM pol_activity_log"
            " WHERE live = 1 AND date_ts > ? AND signature_request_id != ?",
            (since_ts, exclude_id),
        )
        wanted = set(scopes)
        return [
            PriorActivity(Decimal(row["amount_usd"]) if row["amount_usd"] is not None else None)
            for row in rows
            if wanted & set(json.loads(row["scopes"]))
        ]

    def _log_activity(
        self,
        request_id: str,
        now_ts: float,
        scopes: list[str],
        amount: Decimal | None,
        *,
        live: bool,
    ) -> None:
        self._db.execute(
            "DELETE FROM pol_activity_log WHERE date_ts <= ?",
            (now_ts - _MAX_TIMEFRAME_MINUTES * 60,),
        )
        self._db.execute(
            "INSERT OR REPLACE INTO pol_activity_log"
            " (signature_request_id, date_ts, scopes, amount_usd, live) VALUES (?, ?, ?, ?, ?)",
            (request_id, now_ts, _dump(scopes), None if amount is None else str(amount), int(live)),
        )

    def _publish_triggered(
        self,
        policy: dict[str, Any],
        result: RuleResult,
        sign_activity: dict[str, Any],
        date: str,
    ) -> None:
        evaluation = {
            "id": new_id("plce"),
            "triggered": True,
            "reason": result.reason,
            "date": date,
            "policy": policy,
            "activity": sign_activity,
            "context": result.context,
        }
        self._publish("policy.triggered", _copy({"policyEvaluation": evaluation}))

    def _create_approval(
        self,
        approval_id: str,
        initiator: Actor,
        sign_activity: dict[str, Any],
        evaluations: list[dict[str, Any]],
        requesting: list[dict[str, Any]],
    ) -> dict[str, Any]:
        now = self._clock.now()
        groups: list[dict[str, Any]] = []
        timeouts: list[int] = []
        for policy in requesting:
            action = policy["action"]
            if action.get("autoRejectTimeout") is not None:
                timeouts.append(int(action["autoRejectTimeout"]))
            for group in action["approvalGroups"]:
                groups.append(
                    {
                        "policyId": policy["id"],
                        "name": group.get("name"),
                        "quorum": int(group["quorum"]),
                        "approvers": group.get("approvers") or {},
                        "initiatorCanApprove": bool(group.get("initiatorCanApprove")),
                        "serviceAccountsCanApprove": bool(group.get("serviceAccountsCanApprove")),
                    }
                )
        approval: dict[str, Any] = {
            "id": approval_id,
            "initiatorId": initiator.user_id,
            "status": "Pending",
        }
        expiration_ts: float | None = None
        if timeouts:
            expiration = now + timedelta(minutes=min(timeouts))
            expiration_ts = expiration.timestamp()
            approval["expirationDate"] = isoformat(expiration)
        approval["dateCreated"] = approval["dateUpdated"] = isoformat(now)
        approval["activity"] = sign_activity
        approval["policyEvaluations"] = evaluations
        approval["decisions"] = []
        listed = sorted({user for group in groups for user in (_listed(group) or [])})
        self._db.execute(
            "INSERT INTO pol_approvals (id, status, initiator_id, expiration_ts, open_to_all,"
            " approver_index, groups, deciders, data) VALUES (?, 'Pending', ?, ?, ?, ?, ?, ?, ?)",
            (
                approval_id,
                initiator.user_id,
                expiration_ts,
                int(any(_listed(group) is None for group in groups)),
                _dump(listed),
                _dump(groups),
                _dump({}),
                _dump(approval),
            ),
        )
        self._publish("policy.approval.pending", _copy({"approval": approval}))
        return _copy(approval)

    # -- approvals --------------------------------------------------------------------

    def update_activity(self, approval_id: str, signature_request: dict[str, Any]) -> None:
        """Keep the approval's ``activity.signatureRequest`` current."""
        with self._db.transaction():
            approval = self._load_approval(approval_id)
            approval["activity"]["signatureRequest"] = _copy(signature_request)
            self._db.execute(
                "UPDATE pol_approvals SET data = ? WHERE id = ?", (_dump(approval), approval_id)
            )

    def get_approval(self, approval_id: str) -> dict[str, Any]:
        """``GET /v2/policy-approvals/{approvalId}``."""
        self.expire_due()
        return self._load_approval(approval_id)

    def approval_groups(self, approval_id: str) -> list[dict[str, Any]]:
        """The approval's groups as snapshotted when it was created (not in Dfns's wire object)."""
        row = self._db.query_one("SELECT groups FROM pol_approvals WHERE id = ?", (approval_id,))
        groups: list[dict[str, Any]] = json.loads(row["groups"]) if row is not None else []
        return groups

    @staticmethod
    def counts_toward(
        group: Mapping[str, Any], user_id: str, *, is_service_account: bool, initiator_id: str
    ) -> bool:
        """Whether an approval by ``user_id`` counts toward ``group``'s quorum."""
        return _can_approve(group, user_id, is_service_account, initiator_id)

    def list_approvals(
        self,
        *,
        status: str | None = None,
        initiator_id: str | None = None,
        approver_id: str | None = None,
        limit: int | None = None,
        pagination_token: str | None = None,
    ) -> dict[str, Any]:
        """``GET /v2/policy-approvals``: newest first, filtered."""
        _check_enum("status", status, APPROVAL_STATUSES)
        size = _page_size(limit)
        after = _decode_token(pagination_token)
        self.expire_due()
        rows = self._db.query(
            "SELECT seq, data FROM pol_approvals a"
            " WHERE (:status IS NULL OR status = :status)"
            " AND (:initiator IS NULL OR initiator_id = :initiator)"
            " AND (:approver IS NULL OR open_to_all = 1 OR EXISTS"
            "      (SELECT 1 FROM json_each(a.approver_index) WHERE json_each.value = :approver))"
            " AND (:after IS NULL OR seq < :after)"
            " ORDER BY seq DESC LIMIT :n",
            {
                "status": status,
                "initiator": initiator_id,
                "approver": approver_id,
                "after": after,
                "n": size + 1,
            },
        )
        return self._page(rows, size)

    def decide(self, actor: Actor, approval_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/policy-approvals/{approvalId}/decisions``: record one user's decision."""
        validate("policies#createApprovalDecisionBody", body, field_details=True)
        self.expire_due()
        with self._db.transaction():
            row = self._approval_row(approval_id)
            approval: dict[str, Any] = json.loads(row["data"])
            if approval["status"] != "Pending":
                raise SandboxError(
                    409, f"approval {approval_id} is {approval['status']}; it takes no decisions"
                )
            deciders: dict[str, bool] = json.loads(row["deciders"])
            if actor.user_id in deciders:
                raise SandboxError(
                    409, f"user {actor.user_id} has already decided on this approval"
                )
            groups: list[dict[str, Any]] = json.loads(row["groups"])
            self._check_eligible(actor, approval["initiatorId"], groups, body["value"])

            now = isoformat(self._clock.now())
            approval["decisions"].append(
                {
                    "userId": actor.user_id,
                    "date": now,
                    "value": body["value"],
                    "reason": body.get("reason"),
                }
            )
            approval["dateUpdated"] = now
            deciders[actor.user_id] = actor.is_service_account
            index = sorted({*json.loads(row["approver_index"]), actor.user_id})
            if body["value"] == "Denied":
                self._set_resolved(approval, "Denied", now)
            elif all(self._quorum_met(group, approval, deciders) for group in groups):
                self._set_resolved(approval, "Approved", now)
            self._db.execute(
                "UPDATE pol_approvals SET status = ?, deciders = ?, approver_index = ?, data = ?"
                " WHERE id = ?",
                (approval["status"], _dump(deciders), _dump(index), _dump(approval), approval_id),
            )
            if approval["status"] != "Pending":
                self._after_resolution(approval)
            return _copy(approval)

    def expire_due(self) -> int:
        """Expire Pending approvals whose ``expirationDate`` has passed; returns how many."""
        rows = self._db.query(
            "SELECT id FROM pol_approvals WHERE status = 'Pending'"
            " AND expiration_ts IS NOT NULL AND expiration_ts <= ? ORDER BY expiration_ts",
            (self._clock.now_ts(),),
        )
        expired = 0
        first_error: Exception | None = None
        for row in rows:
            try:
                expired += self._expire_one(row["id"])
            except Exception as exc:  # one bad handler must not stop the others expiring
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return expired

    def _expire_one(self, approval_id: str) -> int:
        with self._db.transaction():
            row = self._approval_row(approval_id)
            approval: dict[str, Any] = json.loads(row["data"])
            now = self._clock.now()
            due = row["expiration_ts"] is not None and row["expiration_ts"] <= now.timestamp()
            if approval["status"] != "Pending" or not due:
                return 0
            self._set_resolved(approval, "Expired", isoformat(now))
            self._db.execute(
                "UPDATE pol_approvals SET status = 'Expired', data = ? WHERE id = ?",
                (_dump(approval), approval_id),
            )
            self._after_resolution(approval)
            return 1

    def reset(self) -> None:
        """Delete every policy, approval and logged activity (``/_local/reset``)."""
        with self._db.transaction():
            self._db.execute("DELETE FROM pol_policies")
            self._db.execute("DELETE FROM pol_approvals")
            self._db.execute("DELETE FROM pol_activity_log")
            self._active.invalidate()

    # -- helpers ----------------------------------------------------------------------

    def _approval_row(self, approval_id: str) -> Any:
        row = self._db.query_one("SELECT * FROM pol_approvals WHERE id = ?", (approval_id,))
        if row is None:
            raise SandboxError(404, f"approval {approval_id} not found")
        return row

    def _load_approval(self, approval_id: str) -> dict[str, Any]:
        approval: dict[str, Any] = json.loads(self._approval_row(approval_id)["data"])
        return approval

    @staticmethod
    def _page(rows: list[Any], size: int) -> dict[str, Any]:
        page: dict[str, Any] = {"items": [json.loads(row["data"]) for row in rows[:size]]}
        if len(rows) > size:
            page["nextPageToken"] = _encode_token(int(rows[size - 1]["seq"]))
        return page

    @staticmethod
    def _check_eligible(
        actor: Actor, initiator_id: str, groups: list[dict[str, Any]], value: str
    ) -> None:
        user, is_sa = actor.user_id, actor.is_service_account
        is_initiator = user == initiator_id
        if value == "Denied":
            if is_initiator or any(_is_member(group, user, is_sa) for group in groups):
                return
        elif any(_can_approve(group, user, is_sa, initiator_id) for group in groups):
            return
        if value == "Approved" and is_initiator and any(_is_member(g, user, is_sa) for g in groups):
            message = "the initiator of an activity cannot approve it (initiatorCanApprove is off)"
        elif is_sa and any(user in (_listed(group) or []) for group in groups):
            message = "service accounts may decide only in groups with serviceAccountsCanApprove"
        elif is_sa and any(_listed(group) is None for group in groups):
            message = "service accounts must be listed explicitly in an approval group"
        else:
            message = f"user {user} is not an approver of this approval"
        raise SandboxError(403, message)

    @staticmethod
    def _quorum_met(
        group: Mapping[str, Any], approval: Mapping[str, Any], deciders: Mapping[str, bool]
    ) -> bool:
        approvals = sum(
            1
            for decision in approval["decisions"]
            if decision["value"] == "Approved"
            and _can_approve(
                group,
                decision["userId"],
                deciders.get(decision["userId"], False),
                approval["initiatorId"],
            )
        )
        return approvals >= int(group["quorum"])

    @staticmethod
    def _set_resolved(approval: dict[str, Any], status: str, now: str) -> None:
        approval["status"] = status
        approval["dateResolved"] = now
        approval["dateUpdated"] = now

    def _after_resolution(self, approval: dict[str, Any]) -> None:
        if approval["status"] in ("Denied", "Expired"):
            request_id = approval["activity"]["signatureRequest"].get("id")
            self._db.execute(
                "UPDATE pol_activity_log SET live = 0 WHERE signature_request_id = ?",
                (request_id,),
            )
        self._publish("policy.approval.resolved", _copy({"approval": approval}))
        if self._handler is not None:
            self._handler(_copy(approval))
