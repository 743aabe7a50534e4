"""``signgate sign``: start a ``SignatureWorkflow`` from the command line.

Everything is checked before anything starts: hex and lengths, files, the deadline, the
callback URL, and (with a look-up at Dfns or the sandbox) that the key exists and that a
Schnorr key gets ``--taproot-merkle-root``. A problem ends the command with a message naming
the flag and exit code 2, and no workflow is started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import string
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from signgate import ids
from signgate.commands.common import (
    CommandError,
    DfnsAccess,
    add_common_options,
    connect_temporal,
    describe_dfns_error,
    load_settings,
    read_stack,
    task_queue_for,
    uses_temporal,
)
from signgate.commands.progress import follow, outcome_exit_code, outcome_lines
from signgate.contracts import (
    CallbackDelivery,
    DeliverySpec,
    SignatureOutcome,
    SignatureWorkflowInput,
    SigningTarget,
)
from signgate.crypto import eip712_hash
from signgate.dfns.errors import (
    DfnsError,
    DfnsForbiddenError,
    DfnsNotFoundError,
    DfnsTransportError,
    DfnsUnauthorizedError,
)
from signgate.dfns.requests import (
    Eip712Request,
    HashRequest,
    MessageRequest,
    SignatureRequestBody,
    TransactionRequest,
)

__all__ = [
    "SignPlan",
    "add_sign_command",
    "parse_deadline",
    "plan_signature",
    "target_scheme",
]

_TARGET_FLAGS = {"key": "--key", "wallet": "--wallet", "public-key": "--public-key"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_sign_command(subparsers: Any) -> None:
    """``signgate sign``."""
    parser = subparsers.add_parser(
        "sign",
        help="start a SignatureWorkflow (and optionally follow it to its outcome)",
        description=(
            "Start a SignatureWorkflow: one Dfns signature request, submitted once, followed "
            "through policy approval to a verified signature. Inputs are checked before "
            "anything starts (exit code 2 names the problem). Prints the workflow id; "
            "--follow shows progress and ends with the outcome (exit 0 when signed or "
            "confirmed, 1 for any other outcome). With the dev stack, keys, wallets and "
            "public keys may be given by their name in the sandbox org (e.g. --key evm-ops)."
        ),
    )
    target = parser.add_argument_group("what signs (one of)").add_mutually_exclusive_group(
        required=True
    )
    target.add_argument("--key", metavar="KEY", help="a key id (or sandbox key name)")
    target.add_argument(
        "--wallet", metavar="WALLET", help="a wallet id (or sandbox key or wallet name)"
    )
    target.add_argument(
        "--public-key", metavar="PUBLIC_KEY", help="a legacy public key id (or sandbox name)"
    )
    body = parser.add_argument_group("what is signed (one of)").add_mutually_exclusive_group(
        required=True
    )
    body.add_argument("--hash", metavar="HEX", help="a 32-byte hash, hex (0x optional)")
    body.add_argument("--message", metavar="HEX", help="message bytes, hex (0x optional)")
    body.add_argument(
        "--eip712",
        metavar="FILE",
        type=Path,
        help="EIP-712 typed data, JSON {types, domain, message}",
    )
    body.add_argument(
        "--transaction", metavar="FILE", type=Path, help="a serialized transaction, hex, in a file"
    )
    parser.add_argument(
        "--taproot-merkle-root",
        metavar="HEX",
        default=None,
        help="for Schnorr keys (required there): the 32-byte script tree root, or '' for a "
        "key-path spend (BIP-86)",
    )
    parser.add_argument("--network", help="Dfns network name, e.g. EthereumSepolia (key targets)")
    parser.add_argument("--blockchain-kind", help="Dfns blockchain kind, e.g. Evm (key targets)")
    parser.add_argument(
        "--request-id",
        help="the business key: the workflow id and the idempotency key "
        "(default: sign-<random>); starting the same id again attaches to that workflow",
    )
    parser.add_argument(
        "--deadline",
        help="give up after this long (90s, 15m, 2h, 7d) or at this time (ISO 8601 with a "
        "timezone): the engine then denies its own pending approval and reports expired",
    )
    parser.add_argument("--callback", metavar="URL", help="POST the outcome here (HMAC-signed)")
    parser.add_argument(
        "--callback-secret-name",
        default="default",
        help="name of the worker's callback secret that signs it (default 'default')",
    )
    parser.add_argument(
        "--wait-for-confirmed",
        action="store_true",
        help="for --transaction: wait past Signed until Dfns reports Confirmed",
    )
    parser.add_argument("--follow", action="store_true", help="show progress until the outcome")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(parser)
    parser.set_defaults(handler=_run_sign)


# --- validation -------------------------------------------------------------------------------


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 24 else text[:20] + "...")


def _hex(flag: str, text: str, *, size: int | None = None, allow_empty: bool = False) -> str:
    """``text`` as ``0x``-prefixed lowercase hex, or a :class:`CommandError` naming ``flag``."""
    digits = text.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    if not digits and not allow_empty:
        raise CommandError(f"{flag}: no bytes given; write them as hex, e.g. 0x68656c6c6f")
    if any(c not in string.hexdigits for c in digits):
        raise CommandError(
            f"{flag}: {_shown(text)} is not hexadecimal (digits 0-9 and a-f, optional 0x)"
        )
    if len(digits) % 2:
        raise CommandError(
            f"{flag}: {len(digits)} hex digits is not a whole number of bytes (two digits each)"
        )
    if size is not None and digits and len(digits) != 2 * size:
        raise CommandError(
            f"{flag}: must be {size} bytes ({2 * size} hex digits), got {len(digits) // 2} bytes"
        )
    return "0x" + digits.lower()


def parse_deadline(text: str, now: datetime | None = None) -> datetime:
    """``90s``/``15m``/``2h``/``7d`` from now, or an ISO 8601 time with a timezone (future)."""
    moment = now if now is not None else datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds <= 0:
            raise CommandError(f"--deadline: {text!r} must be longer than zero")
        return moment + timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"--deadline: {text!r} is neither a duration (90s, 15m, 2h, 7d) nor an ISO 8601 "
            "time (2030-01-31T17:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise CommandError(f"--deadline: {text!r} has no timezone; add Z or +01:00")
    if when <= moment:
        raise CommandError(f"--deadline: {text!r} is in the past")
    return when


def _read_file(flag: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{flag} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"{flag} {path}: cannot read it ({reason})") from None


def _pydantic_problem(flag: str, exc: ValidationError) -> CommandError:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return CommandError(f"{flag}: {where + ': ' if where else ''}{message}")


def _eip712(path: Path, network: str | None, blockchain_kind: str | None) -> Eip712Request:
    flag = "--eip712"
    try:
        data = json.loads(_read_file(flag, path))
    except ValueError as exc:
        raise CommandError(f"{flag} {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CommandError(f"{flag} {path}: expected a JSON object with types, domain, message")
    missing = [k for k in ("types", "domain", "message") if k not in data]
    if missing:
        raise CommandError(f"{flag} {path}: missing {', '.join(missing)}")
    extra = sorted(set(data) - {"types", "domain", "message", "primaryType"})
    if extra:
        raise CommandError(f"{flag} {path}: unexpected field(s) {', '.join(extra)}")
    try:
        digest = eip712_hash({k: data[k] for k in ("types", "domain", "message")})
    except (ValueError, TypeError, KeyError) as exc:
        raise CommandError(f"{flag} {path}: not valid EIP-712 typed data: {exc}") from None
    primary = data.get("primaryType")
    if primary is not None:
        # Dfns's body has no primaryType: Dfns infers it, so a different one would be a
        # different message from the one the file describes.
        try:
            named = eip712_hash(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise CommandError(f"{flag} {path}: not valid EIP-712 typed data: {exc}") from None
        if named != digest:
            raise CommandError(
                f"{flag} {path}: primaryType {primary!r} is not the type Dfns infers (the "
                "struct no other struct references); Dfns would sign a different message"
            )
    try:
        return Eip712Request(
            types=data["types"],
            domain=data["domain"],
            message=data["message"],
            network=network,
            blockchain_kind=blockchain_kind,
        )
    except ValidationError as exc:
        raise _pydantic_problem(f"{flag} {path}", exc) from None


def _body(args: argparse.Namespace) -> SignatureRequestBody:
    common: dict[str, Any] = {"network": args.network, "blockchain_kind": args.blockchain_kind}
    try:
        if args.hash is not None:
            root = None
            if args.taproot_merkle_root is not None:
                root = _hex(
                    "--taproot-merkle-root", args.taproot_merkle_root, size=32, allow_empty=True
                )
                root = "" if root == "0x" else root
            return HashRequest(
                hash=_hex("--hash", args.hash, size=32), taproot_merkle_root=root, **common
            )
        if args.taproot_merkle_root is not None:
            raise CommandError("--taproot-merkle-root goes with --hash only (a Schnorr hash)")
        if args.message is not None:
            return MessageRequest(message=_hex("--message", args.message), **common)
        if args.eip712 is not None:
            return _eip712(args.eip712, args.network, args.blockchain_kind)
        text = _read_file("--transaction", args.transaction)
        return TransactionRequest(
            transaction=_hex(f"--transaction {args.transaction}", text), **common
        )
    except ValidationError as exc:
        flag = "--network/--blockchain-kind" if any(common.values()) else "request"
        raise _pydantic_problem(flag, exc) from None


@dataclass(frozen=True)
class SignPlan:
    """A validated request: the workflow to start and what was looked up for it."""

    workflow_id: str
    input: SignatureWorkflowInput
    target_name: str | None
    scheme: str | None
    curve: str | None


async def target_scheme(
    access: DfnsAccess, target: SigningTarget, flag: str, shown: str
) -> tuple[str | None, str | None]:
    """The signing key's scheme and curve, read from Dfns (which also proves it exists)."""
    try:
        async with access.client() as dfns:
            if target.kind == "key":
                key = await dfns.get_key(target.id)
                return key.scheme, key.curve
            if target.kind == "wallet":
                wallet = await dfns.get_wallet(target.id)
                return wallet.signing_key.scheme, wallet.signing_key.curve
            public_key = await dfns.get_public_key(target.id)
            return public_key.scheme, public_key.curve
    except DfnsNotFoundError:
        hint = ""
        if access.credentials is not None and target.kind in ("key", "wallet"):
            hint = "; the sandbox org's keys are " + ", ".join(access.credentials.key_names())
        raise CommandError(
            f"{flag} {shown}: no such {target.kind} at {access.base_url}{hint}"
        ) from None
    except (DfnsUnauthorizedError, DfnsForbiddenError) as exc:
        raise CommandError(
            f"{flag} {shown}: Dfns refused to show it ({describe_dfns_error(exc)}); check the "
            "token (SIGNGATE_DFNS_AUTH_TOKEN or the sandbox credentials file)"
        ) from None
    except DfnsTransportError as exc:
        raise CommandError(
            f"cannot reach Dfns at {access.base_url} to check {flag} {shown}: "
            f"{describe_dfns_error(exc)}",
            code=1,
        ) from None
    except DfnsError as exc:
        raise CommandError(
            f"{flag} {shown}: reading it failed: {describe_dfns_error(exc)}", code=1
        ) from None


async def plan_signature(
    args: argparse.Namespace, access: DfnsAccess, *, webhooks: bool | None = None
) -> SignPlan:
    """Validate everything ``signgate sign`` was given; nothing is started here."""
    kind = next(k for k in _TARGET_FLAGS if getattr(args, k.replace("-", "_")) is not None)
    flag = _TARGET_FLAGS[kind]
    value = str(getattr(args, kind.replace("-", "_")))
    if access.credentials is not None:
        target, name = access.credentials.resolve_target(kind, value)
    else:
        target, name = SigningTarget(kind=kind, id=value), None  # type: ignore[arg-type]

    workflow_id = args.request_id or f"sign-{uuid.uuid4().hex[:12]}"
    try:
        ids.validate_business_key(workflow_id)
    except ValueError as exc:
        raise CommandError(f"--request-id: {exc}") from None
    deadline = parse_deadline(args.deadline) if args.deadline is not None else None
    deliveries: list[DeliverySpec] = []
    if args.callback is not None:
        try:
            deliveries.append(
                CallbackDelivery(url=args.callback, secret_name=args.callback_secret_name)
            )
        except ValidationError as exc:
            raise CommandError(
                f"--callback: {args.callback!r} is not an http(s) URL"
                if any(e["loc"] == ("url",) for e in exc.errors())
                else str(_pydantic_problem("--callback-secret-name", exc))
            ) from None
    body = _body(args)

    scheme, curve = await target_scheme(access, target, flag, value)
    is_schnorr = (scheme or "").lower() == "schnorr"
    if isinstance(body, HashRequest) and is_schnorr and body.taproot_merkle_root is None:
        raise CommandError(
            f"--taproot-merkle-root is required: {flag} {value} is a Schnorr key (BIP-340/341); "
            "pass --taproot-merkle-root '' for a key-path spend (BIP-86) or the 32-byte root "
            "of the script tree"
        )
    if isinstance(body, HashRequest) and body.taproot_merkle_root is not None and not is_schnorr:
        raise CommandError(
            f"--taproot-merkle-root: {flag} {value} signs with {scheme or 'a non-Schnorr scheme'}"
            "; only Schnorr keys take a taproot merkle root"
        )
    if isinstance(body, Eip712Request) and (scheme or "").upper() != "ECDSA":
        raise CommandError(
            f"--eip712: {flag} {value} signs with {scheme} {curve}; EIP-712 needs an ECDSA "
            "secp256k1 key"
        )
    try:
        workflow_input = SignatureWorkflowInput(
            target=target,
            request=body,
            idempotency_key=workflow_id,
            deadline=deadline,
            wait_for_confirmed=args.wait_for_confirmed,
            polling=access.settings.polling_policy(webhooks=webhooks),
            deliveries=deliveries,
        )
    except ValidationError as exc:
        raise _pydantic_problem("request", exc) from None
    return SignPlan(workflow_id, workflow_input, name, scheme, curve)


# --- running ----------------------------------------------------------------------------------


def _run_sign(args: argparse.Namespace) -> int:
    uses_temporal(args)
    return asyncio.run(_sign(args))


async def _sign(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowHandle
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    settings = load_settings()
    access = DfnsAccess.initiator(settings, args.state_dir, args.credentials)
    stack = read_stack(args.state_dir)
    plan = await plan_signature(args, access, webhooks=True if stack is not None else None)
    client = await connect_temporal(args.state_dir)
    # The stack's worker polls the task queue it was started with, unless one is set here.
    task_queue = task_queue_for(settings, stack)
    # The request id is the business key: one execution per id, ever. FAIL (not USE_EXISTING)
    # makes the server say, by refusing, that it started nothing, whether the holder of the id
    # is running or closed (REJECT_DUPLICATE); we then attach to it.
    existing: str | None = None
    handle: WorkflowHandle[Any, SignatureOutcome]
    try:
        handle = await client.start_workflow(
            ids.SIGNATURE_WORKFLOW,
            plan.input,
            id=plan.workflow_id,
            task_queue=task_queue,
            result_type=SignatureOutcome,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        run_id = handle.result_run_id
    except WorkflowAlreadyStartedError as exc:
        handle = client.get_workflow_handle(plan.workflow_id, result_type=SignatureOutcome)
        description = await handle.describe()
        run_id = description.run_id or exc.run_id
        status = description.status
        existing = status.name.lower() if status is not None else "unknown"
    out = sys.stdout
    if args.json:
        print(
            json.dumps(
                {
                    "event": "started",
                    "workflowId": plan.workflow_id,
                    "runId": run_id,
                    "existing": existing is not None,
                    "target": plan.input.target.model_dump(mode="json"),
                    "requestKind": plan.input.request.kind,
                    "externalId": ids.external_id_for(plan.workflow_id),
                    "taskQueue": task_queue,
                }
                | ({} if existing is None else {"existingStatus": existing})
            ),
            flush=True,
        )
    else:
        named = f" ({plan.target_name})" if plan.target_name else ""
        if existing is None:
            print(f"started {plan.workflow_id}", file=out)
        else:
            print(
                f"existing: {plan.workflow_id} was submitted before ({existing}); attached to it"
                ", nothing new started",
                file=out,
            )
        print(
            f"  {plan.input.request.kind} request, {plan.input.target.kind} "
            f"{plan.input.target.id}{named}"
            + (f", {plan.scheme} {plan.curve}" if plan.scheme else ""),
            file=out,
        )
        if plan.input.deadline is not None:
            print(f"  deadline {plan.input.deadline.isoformat()}", file=out)
        if not args.follow:
            print(f"  follow it with: signgate status {plan.workflow_id}", file=out)
        out.flush()
    if not args.follow:
        return 0
    result = await follow(handle, access, as_json=args.json)
    if args.json:
        payload: dict[str, Any]
        if result.outcome is not None:
            payload = {"event": "outcome", "outcome": result.outcome.model_dump(mode="json")}
        else:
            payload = {"event": "failed", "error": result.failure}
        print(json.dumps(payload), flush=True)
    elif result.outcome is not None:
        print("\n".join(outcome_lines(result.outcome, access)), flush=True)
    else:
        print(f"  failed: {result.failure}", flush=True)
    return outcome_exit_code(result.outcome)
