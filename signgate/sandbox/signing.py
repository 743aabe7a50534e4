"""Signature requests of the three API generations, their state machine and the signing.

* G3 ``/keys/{keyId}/signatures`` and G2 ``/wallets/{walletId}/signatures`` share one
  request body (the spec's ``oneOf`` on ``kind``) and one stored wire object; a G2 request
  also carries ``walletId`` and its wallet's ``network``.
* Each new request is evaluated by the policy engine in the same transaction that stores
  it: Proceed signs at once (``Signed``); ApprovalRequired leaves it ``Pending`` with an
  ``approvalId``; Blocked rejects it (``Rejected`` with a ``reason``) or, with
  ``block_response = "error"``, answers 403 and stores nothing.
* When the approval resolves, :meth:`SigningService.on_approval_resolved` moves it to
  ``Executing`` (then ``Signed`` after the executing delay) or to ``Rejected``.
* EVM ``Transaction`` requests move ``Signed -> Confirmed`` after the confirm delay.
* Legacy G1 ``/public-keys/{id}/signatures`` (body ``{hash}``) is not policy-gated: it is
  ``Pending`` and becomes ``Executed`` after the executing delay, with ``r``/``s``/``recid``
  at the top level.

Every transition is persisted with the time it is due, so a restarted sandbox carries on
where it stopped (:meth:`SigningService.process_due` is called by a background task).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signgate import crypto
from signgate.logs import get_logger
from signgate.sandbox.clock import Clock, isoformat
from signgate.sandbox.config import Behaviour
from signgate.sandbox.db import Database
from signgate.sandbox.errors import SandboxError
from signgate.sandbox.faults import FaultService
from signgate.sandbox.identity import Caller
from signgate.sandbox.ids import new_id
from signgate.sandbox.keys import (
    KeyMaterial,
    KeyService,
    WalletInfo,
    decode_cursor,
    encode_cursor,
    is_evm_network,
)
from signgate.sandbox.policies import Actor, PolicyService, SignActivity
from signgate.sandbox.validation import validate

Publish = Callable[[str, dict[str, Any]], None]

_log = get_logger("signgate.sandbox.signing")

SUPPORTED_KINDS = ("Hash", "Message", "Eip712", "Transaction")
TERMINAL = frozenset({"Signed", "Confirmed", "Failed", "Rejected", "Executed"})
# EVM fee reported on confirmation: gas limit times this price (1 gwei), in wei.
SANDBOX_GAS_PRICE_WEI = 1_000_000_000

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandbox_signatures (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        generation TEXT NOT NULL,
        key_id TEXT NOT NULL,
        wallet_id TEXT,
        public_key_id TEXT,
        external_id TEXT,
        scope TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        approval_id TEXT,
        due_ts REAL,
        wire TEXT NOT NULL)""",
    """CREATE UNIQUE INDEX IF NOT EXISTS sandbox_signatures_external
        ON sandbox_signatures (external_id) WHERE external_id IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS sandbox_signatures_key ON sandbox_signatures (key_id, seq)",
    "CREATE INDEX IF NOT EXISTS sandbox_signatures_wallet ON sandbox_signatures (wallet_id, seq)",
    "CREATE INDEX IF NOT EXISTS sandbox_signatures_approval ON sandbox_signatures (approval_id)",
    "CREATE INDEX IF NOT EXISTS sandbox_signatures_due ON sandbox_signatures (status, due_ts)",
]


@dataclass(frozen=True)
class SigningPlan:
    """What to sign for one request, derived from its body, key and context."""

    kind: str
    payload: bytes  # the digest (ECDSA, Schnorr, EdDSA Hash) or the message (EdDSA Message)
    evm: bool  # add ``encoded`` (r || s || v)
    merkle_root: bytes | None = None  # Schnorr: None = BIP-86 key-path tweak
    transaction: bytes | None = None  # EVM Transaction: the unsigned serialization


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _from_hex(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)


def canonical(body: dict[str, Any]) -> str:
    """The form two bodies are compared in for ``externalId`` idempotency."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class SigningService:
    """Creates, stores, advances and signs signature requests."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keys: KeyService,
        policies: PolicyService,
        faults: FaultService,
        publish: Publish,
        behaviour: Behaviour,
        *,
        org_id: Callable[[], str],
    ) -> None:
        self._db = db
        self._clock = clock
        self._keys = keys
        self._policies = policies
        self._faults = faults
        self._publish = publish
        self._behaviour = behaviour
        self._org_id = org_id
        db.ensure_schema(_SCHEMA)
        policies.set_resolution_handler(self.on_approval_resolved)

    # --- create -------------------------------------------------------------------------

    def create_for_key(
        self, caller: Caller, actor: Actor, key_id: str, body: Any
    ) -> dict[str, Any]:
        """``POST /keys/{keyId}/signatures``."""
        material = self._keys.material(key_id)
        validate("generate-signature.request", body)
        wallets = self._keys.wallets_of_key(key_id)
        return self._create(caller, actor, material, None, wallets, body)

    def create_for_wallet(
        self, caller: Caller, actor: Actor, wallet_id: str, body: Any
    ) -> dict[str, Any]:
        """``POST /wallets/{walletId}/signatures`` (G2, deprecated by Dfns)."""
        wallet = self._keys.wallet_info(wallet_id)
        validate("generate-signature.request", body)
        network = body.get("network")
        if network is not None and network != wallet.network:
            raise SandboxError(
                400,
                f"body.network: {network!r} does not match the wallet's network {wallet.network!r}",
            )
        material = self._keys.material(wallet.key_id)
        return self._create(caller, actor, material, wallet, [wallet], body)

    def _create(
        self,
        caller: Caller,
        actor: Actor,
        material: KeyMaterial,
        wallet: WalletInfo | None,
        wallets: list[WalletInfo],
        body: dict[str, Any],
    ) -> dict[str, Any]:
        network = wallet.network if wallet is not None else body.get("network")
        plan_for(material, body, wallet_network=wallet.network if wallet else None)
        scope = f"wallet:{wallet.wallet_id}" if wallet is not None else f"key:{material.key_id}"
        external_id = body.get("externalId")
        blocked: SandboxError | None = None
        with self._db.transaction():
            if external_id is not None:
                existing = self._db.query_one(
                    "SELECT * FROM sandbox_signatures WHERE external_id = ?", (external_id,)
                )
                if existing is not None:
                    if existing["scope"] == scope and existing["body"] == canonical(body):
                        stored: dict[str, Any] = json.loads(existing["wire"])
                        return stored
                    raise SandboxError(
                        409,
                        "Conflicting signature request with same externalId",
                        details={"duplicate": {"id": existing["id"], "externalId": external_id}},
                    )
            now = self._clock.now()
            wire: dict[str, Any] = {"id": new_id("sig"), "keyId": material.key_id}
            if wallet is not None:
                wire["walletId"] = wallet.wallet_id
            wire["requester"] = {"userId": caller.user_id, "tokenId": caller.token_id}
            wire["requestBody"] = body
            wire["status"] = "Pending"
            if network is not None:
                wire["network"] = network
            wire["dateRequested"] = isoformat(now)
            if external_id is not None:
                wire["externalId"] = external_id
            outcome = self._policies.evaluate(
                SignActivity(
                    initiator=actor,
                    signature_request=dict(wire),
                    wallet_ids=tuple(w.wallet_id for w in wallets),
                    wallet_tags=tuple(sorted({t for w in wallets for t in w.tags})),
                )
            )
            if outcome.kind == "Blocked":
                reason = "Blocked by policy " + ", ".join(outcome.blocking_policy_ids)
                if self._behaviour.block_response == "error":
                    # Nothing is stored; the evaluation's own effects (policy.triggered) commit.
                    blocked = SandboxError(
                        403, reason, details={"policyIds": outcome.blocking_policy_ids}
                    )
                else:
                    wire["reason"] = reason
                    wire["datePolicyResolved"] = isoformat(now)
                    self._insert(wire, material, wallet, scope, body)
                    self._publish_event("wallet.signature.requested", wire)
                    self._save(wire, status="Rejected", due_ts=None)
                    self._publish_event("wallet.signature.rejected", wire)
            elif outcome.kind == "ApprovalRequired":
                assert outcome.approval is not None
                wire["approvalId"] = outcome.approval["id"]
                self._insert(wire, material, wallet, scope, body)
                self._publish_event("wallet.signature.requested", wire)
                self._policies.update_activity(wire["approvalId"], wire)
            else:
                wire["status"] = "Executing"
                self._insert(wire, material, wallet, scope, body)
                self._publish_event("wallet.signature.requested", wire)
                self._execute(wire)
        if blocked is not None:
            raise blocked
        return wire

    def _insert(
        self,
        wire: dict[str, Any],
        material: KeyMaterial,
        wallet: WalletInfo | None,
        scope: str,
        body: dict[str, Any],
    ) -> None:
        _log.info(
            "sandbox.signature.created",
            signature_id=wire["id"],
            key_id=material.key_id,
            kind=body.get("kind"),
            status=wire["status"],
        )
        self._db.execute(
            "INSERT INTO sandbox_signatures (id, generation, key_id, wallet_id, external_id, "
            "scope, body, status, approval_id, wire) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                wire["id"],
                "wallets" if wallet is not None else "keys",
                material.key_id,
                wallet.wallet_id if wallet is not None else None,
                wire.get("externalId"),
                scope,
                canonical(body),
                wire["status"],
                wire.get("approvalId"),
                json.dumps(wire),
            ),
        )

    def _save(self, wire: dict[str, Any], *, status: str, due_ts: float | None) -> None:
        if wire.get("status") != status:
            _log.info("sandbox.signature.status", signature_id=wire["id"], status=status)
        wire["status"] = status
        self._db.execute(
            "UPDATE sandbox_signatures SET status = ?, due_ts = ?, wire = ? WHERE id = ?",
            (status, due_ts, json.dumps(wire), wire["id"]),
        )

    def _publish_event(self, kind: str, wire: dict[str, Any]) -> None:
        self._publish(kind, {"signatureRequest": json.loads(json.dumps(wire))})

    def _sync_approval(self, wire: dict[str, Any]) -> None:
        if wire.get("approvalId"):
            self._policies.update_activity(wire["approvalId"], wire)

    # --- transitions -----------------------------------------------------------------------

    def _execute(self, wire: dict[str, Any]) -> None:
        """Sign now: ``Signed`` (or ``Failed`` under fault injection). In a transaction."""
        now = self._clock.now()
        if self._faults.take("failSignatures"):
            wire["reason"] = "Signing failed (sandbox fault injection: failSignatures)"
            self._save(wire, status="Failed", due_ts=None)
            self._publish_event("wallet.signature.failed", wire)
            self._sync_approval(wire)
            return
        material = self._keys.material(wire["keyId"])
        wallet_network = None
        if wire.get("walletId"):
            wallet_network = self._keys.wallet_info(wire["walletId"]).network
        plan = plan_for(material, wire["requestBody"], wallet_network=wallet_network)
        corrupt = self._faults.take("corruptSignatures")
        result = sign(material, plan, corrupt=corrupt)
        wire.update(result)
        wire["dateSigned"] = isoformat(now)
        due = None
        if plan.transaction is not None:
            due = now.timestamp() + self._behaviour.confirm_delay_seconds
        self._save(wire, status="Signed", due_ts=due)
        self._publish_event("wallet.signature.signed", wire)
        self._sync_approval(wire)

    def on_approval_resolved(self, approval: dict[str, Any]) -> None:
        """PolicyService's resolution handler: sign (after a delay) or reject."""
        row = self._db.query_one(
            "SELECT * FROM sandbox_signatures WHERE approval_id = ?", (approval["id"],)
        )
        if row is None or row["status"] != "Pending":
            return
        wire: dict[str, Any] = json.loads(row["wire"])
        now = self._clock.now()
        wire["datePolicyResolved"] = isoformat(now)
        status = approval.get("status")
        if status == "Approved":
            delay = self._behaviour.executing_delay_seconds
            if delay <= 0:
                self._save(wire, status="Executing", due_ts=None)
                self._execute(wire)
                return
            self._save(wire, status="Executing", due_ts=now.timestamp() + delay)
            self._sync_approval(wire)
            return
        if status == "Denied":
            denial: dict[str, Any] = next(
                (d for d in approval.get("decisions", []) if d.get("value") == "Denied"), {}
            )
            wire["reason"] = f"Denied by {denial.get('userId', 'an approver')}" + (
                f": {denial['reason']}" if denial.get("reason") else ""
            )
        else:
            wire["reason"] = f"Policy approval {approval['id']} {str(status).lower()}"
        self._save(wire, status="Rejected", due_ts=None)
        self._publish_event("wallet.signature.rejected", wire)
        self._sync_approval(wire)

    def process_due(self) -> int:
        """Make every transition whose time has come; returns how many were made."""
        rows = self._db.query(
            "SELECT id FROM sandbox_signatures WHERE due_ts IS NOT NULL AND due_ts <= ? "
            "AND status IN ('Executing', 'Signed', 'Pending') ORDER BY due_ts",
            (self._clock.now_ts(),),
        )
        made = 0
        for row in rows:
            with self._db.transaction():
                current = self._db.query_one(
                    "SELECT * FROM sandbox_signatures WHERE id = ?", (row["id"],)
                )
                if current is None or current["due_ts"] is None:
                    continue
                if current["due_ts"] > self._clock.now_ts():
                    continue
                wire: dict[str, Any] = json.loads(current["wire"])
                if current["generation"] == "legacy":
                    self._execute_legacy(wire)
                elif current["status"] == "Executing":
                    self._execute(wire)
                elif current["status"] == "Signed":
                    self._confirm(wire)
                made += 1
        return made

    def _confirm(self, wire: dict[str, Any]) -> None:
        signed = _from_hex(str(wire["signedData"]))
        unsigned = _from_hex(str(wire["requestBody"]["transaction"]))
        summary = crypto.evm_transaction_summary(unsigned)
        wire["txHash"] = _hex(crypto.keccak256(signed))
        wire["fee"] = str(summary["gas_limit"] * SANDBOX_GAS_PRICE_WEI)
        wire["dateConfirmed"] = isoformat(self._clock.now())
        self._save(wire, status="Confirmed", due_ts=None)
        self._sync_approval(wire)

    def force_fail(self, signature_id: str, reason: str | None) -> dict[str, Any]:
        """``/_local/signatures/{id}/fail``: move a non-terminal request to ``Failed``."""
        with self._db.transaction():
            row = self._db.query_one(
                "SELECT * FROM sandbox_signatures WHERE id = ?", (signature_id,)
            )
            if row is None:
                raise SandboxError(404, "Signature request not found", details={"id": signature_id})
            if row["status"] in TERMINAL:
                raise SandboxError(
                    409, f"signature request {signature_id} is already {row['status']}"
                )
            wire: dict[str, Any] = json.loads(row["wire"])
            wire["reason"] = reason or "Forced to Failed (sandbox fault injection)"
            self._save(wire, status="Failed", due_ts=None)
            if row["generation"] != "legacy":
                self._publish_event("wallet.signature.failed", wire)
                self._sync_approval(wire)
            return wire

    # --- reads ---------------------------------------------------------------------------

    def get_for_key(self, key_id: str, signature_id: str) -> dict[str, Any]:
        self._keys.material(key_id)
        return self._get("key_id", key_id, signature_id)

    def get_for_wallet(self, wallet_id: str, signature_id: str) -> dict[str, Any]:
        self._keys.wallet_info(wallet_id)
        return self._get("wallet_id", wallet_id, signature_id)

    def _get(self, column: str, owner: str, signature_id: str) -> dict[str, Any]:
        row = self._db.query_one(
            f"SELECT wire FROM sandbox_signatures WHERE id = ? AND {column} = ? "  # noqa: S608
            "AND generation != 'legacy'",
            (signature_id, owner),
        )
        if row is None:
            raise SandboxError(
                404, "Signature request not found", details={"signatureId": signature_id}
            )
        wire: dict[str, Any] = json.loads(row["wire"])
        return wire

    def list_for_key(
        self, key_id: str, *, limit: int, pagination_token: str | None
    ) -> dict[str, Any]:
        self._keys.material(key_id)
        page = self._list("key_id", key_id, limit, pagination_token)
        return {"keyId": key_id, **page}

    def list_for_wallet(
        self, wallet_id: str, *, limit: int, pagination_token: str | None
    ) -> dict[str, Any]:
        wallet = self._keys.wallet_info(wallet_id)
        page = self._list("wallet_id", wallet_id, limit, pagination_token)
        return {"walletId": wallet_id, "keyId": wallet.key_id, **page}

    def _list(
        self,
        column: str,
        owner: str,
        limit: int,
        pagination_token: str | None,
        *,
        legacy: bool = False,
    ) -> dict[str, Any]:
        before = decode_cursor(pagination_token) if pagination_token else None
        rows = self._db.query(
            f"SELECT seq, wire FROM sandbox_signatures WHERE {column} = ? "  # noqa: S608
            "AND (generation = 'legacy') = ? AND (? IS NULL OR seq < ?) "
            "ORDER BY seq DESC LIMIT ?",
            (owner, int(legacy), before, before, limit + 1),
        )
        out: dict[str, Any] = {"items": [json.loads(r["wire"]) for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextPageToken"] = encode_cursor(int(rows[limit - 1]["seq"]))
        return out

    # --- legacy G1 ---------------------------------------------------------------------------

    def create_legacy(self, caller: Caller, public_key_id: str, body: Any) -> dict[str, Any]:
        """``POST /public-keys/{publicKeyId}/signatures`` with ``{hash}``."""
        record = self._keys.public_key_record(public_key_id)
        validate("legacy-create-signature.request", body)
        if record["scheme"] == "Schnorr":
            raise SandboxError(400, "legacy public keys sign with ECDSA or EdDSA keys only")
        now = self._clock.now()
        wire: dict[str, Any] = {
            "id": new_id("sig"),
            "orgId": self._org_id(),
            "publicKeyId": public_key_id,
            "hash": body["hash"],
            "status": "Pending",
            "initiator": {"userId": caller.user_id, "tokenId": caller.token_id},
            "dateCreated": isoformat(now),
        }
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO sandbox_signatures (id, generation, key_id, public_key_id, scope, "
                "body, status, wire) VALUES (?, 'legacy', ?, ?, ?, ?, 'Pending', ?)",
                (
                    wire["id"],
                    record["key_id"],
                    public_key_id,
                    f"public-key:{public_key_id}",
                    canonical(body),
                    json.dumps(wire),
                ),
            )
            delay = self._behaviour.executing_delay_seconds
            if delay <= 0:
                self._execute_legacy(wire)
            else:
                self._save(wire, status="Pending", due_ts=now.timestamp() + delay)
        return wire

    def _execute_legacy(self, wire: dict[str, Any]) -> None:
        row = self._db.query_one(
            "SELECT key_id FROM sandbox_signatures WHERE id = ?", (wire["id"],)
        )
        assert row is not None
        if self._faults.take("failSignatures"):
            self._save(wire, status="Failed", due_ts=None)
            return
        material = self._keys.material(row["key_id"])
        plan = SigningPlan(kind="Hash", payload=_from_hex(wire["hash"]), evm=False)
        result = sign(material, plan, corrupt=self._faults.take("corruptSignatures"))
        signature = result["signature"]
        wire["r"], wire["s"] = signature["r"], signature["s"]
        wire["recid"] = signature.get("recid", 0)
        self._save(wire, status="Executed", due_ts=None)

    def get_legacy(self, public_key_id: str, signature_id: str) -> dict[str, Any]:
        self._keys.public_key_record(public_key_id)
        row = self._db.query_one(
            "SELECT wire FROM sandbox_signatures WHERE id = ? AND public_key_id = ? "
            "AND generation = 'legacy'",
            (signature_id, public_key_id),
        )
        if row is None:
            raise SandboxError(404, "Signature not found", details={"signatureId": signature_id})
        wire: dict[str, Any] = json.loads(row["wire"])
        return wire

    def list_legacy(
        self, public_key_id: str, *, limit: int, pagination_token: str | None
    ) -> dict[str, Any]:
        """``GET /public-keys/{id}/signatures``: a sandbox addition (no Dfns source for it)."""
        self._keys.public_key_record(public_key_id)
        return self._list("public_key_id", public_key_id, limit, pagination_token, legacy=True)

    def reset(self) -> None:
        """Delete every signature request (``/_local/reset``)."""
        self._db.execute("DELETE FROM sandbox_signatures")


def plan_for(
    material: KeyMaterial, body: dict[str, Any], *, wallet_network: str | None
) -> SigningPlan:
    """What to sign for ``body`` with ``material``; 400 naming the field when unsupported."""
    kind = str(body["kind"])
    if kind not in SUPPORTED_KINDS:
        raise SandboxError(
            400,
            f"body.kind: {kind!r} signature requests are not supported by the sandbox "
            f"(supported: {', '.join(SUPPORTED_KINDS)})",
        )
    network = wallet_network or body.get("network")
    evm = is_evm_network(network) or body.get("blockchainKind") == "Evm"
    scheme = material.scheme
    if kind == "Hash":
        digest = _from_hex(str(body["hash"]))
        root = body.get("taprootMerkleRoot")
        if scheme == "Schnorr":
            if root is None:
                raise SandboxError(
                    400,
                    "body.taprootMerkleRoot: is required when signing with a Schnorr key "
                    '(use "" to tweak with the default merkle root)',
                )
            merkle = _from_hex(root) if root not in ("", "0x", "0X") else None
            return SigningPlan(kind, digest, evm=False, merkle_root=merkle)
        if root is not None:
            raise SandboxError(
                400, f"body.taprootMerkleRoot: applies only to Schnorr keys, not {scheme} keys"
            )
        return SigningPlan(kind, digest, evm=evm and scheme == "ECDSA")
    if kind == "Message":
        message = _from_hex(str(body["message"]))
        if scheme == "EdDSA":
            return SigningPlan(kind, message, evm=False)
        if scheme == "ECDSA" and evm:
            return SigningPlan(kind, crypto.eip191_hash(message), evm=True)
        if scheme == "ECDSA":
            raise SandboxError(
                400,
                "body.network: Message with an ECDSA key is signed as EIP-191 and needs an "
                "EVM network or blockchainKind 'Evm'",
            )
        raise SandboxError(400, "body.kind: 'Message' is not supported for Schnorr keys")
    if scheme != "ECDSA":
        raise SandboxError(
            400, f"body.kind: {kind!r} needs an ECDSA key; key {material.key_id} is {scheme}"
        )
    if kind == "Eip712":
        typed = {"types": body["types"], "domain": body["domain"], "message": body["message"]}
        try:
            digest = crypto.eip712_hash(typed)
        except (ValueError, TypeError) as exc:
            raise SandboxError(400, f"body: not valid EIP-712 typed data ({exc})") from None
        return SigningPlan(kind, digest, evm=True)
    # Transaction
    if not evm:
        raise SandboxError(
            400,
            "body.blockchainKind: the sandbox signs EVM transactions only; give "
            "blockchainKind 'Evm' or an EVM network",
        )
    unsigned = _from_hex(str(body["transaction"]))
    try:
        digest = crypto.evm_transaction_signing_hash(unsigned)
    except (ValueError, TypeError) as exc:
        raise SandboxError(
            400, f"body.transaction: not a valid unsigned EVM transaction ({exc})"
        ) from None
    return SigningPlan(kind, digest, evm=True, transaction=unsigned)


def sign(material: KeyMaterial, plan: SigningPlan, *, corrupt: bool = False) -> dict[str, Any]:
    """Sign per ``plan``: the ``signature`` (and ``signedData``) fields of the wire object.

    ``corrupt`` alters ``s`` after signing, so the result no longer verifies.
    """
    if material.scheme == "EdDSA":
        sig = bytearray(crypto.ed25519_sign(material.secret, plan.payload))
        if corrupt:
            sig[32] ^= 0x01
        return {"signature": {"r": _hex(bytes(sig[:32])), "s": _hex(bytes(sig[32:]))}}
    if material.scheme == "Schnorr":
        tweaked = crypto.taproot_tweak_secret(material.secret, plan.merkle_root)
        sig64 = crypto.schnorr_sign(tweaked, plan.payload)
        r, s = sig64[:32], int.from_bytes(sig64[32:], "big")
        if corrupt:
            s = (s + 1) % crypto.SECP256K1_N
        s_bytes = s.to_bytes(32, "big")
        return {"signature": {"r": _hex(r), "s": _hex(s_bytes), "encoded": _hex(r + s_bytes)}}
    ecdsa = crypto.ecdsa_sign(material.secret, plan.payload)
    if corrupt:
        bumped = ecdsa.s + 1 if ecdsa.s + 1 < crypto.SECP256K1_N else ecdsa.s - 1
        ecdsa = crypto.EcdsaSignature(ecdsa.r, bumped, ecdsa.recid)
    signature: dict[str, Any] = {
        "r": _hex(ecdsa.r.to_bytes(32, "big")),
        "s": _hex(ecdsa.s.to_bytes(32, "big")),
        "recid": ecdsa.recid,
    }
    if plan.evm:
        signature["encoded"] = _hex(crypto.encoded_evm_signature(ecdsa))
    result: dict[str, Any] = {"signature": signature}
    if plan.transaction is not None:
        result["signedData"] = _hex(crypto.evm_signed_transaction(plan.transaction, ecdsa))
    return result
