"""How each ``Wallets:Sign`` policy rule judges one signature request (no storage here).

The amount and recipient rules only understand a plain value transfer, and the only
signature request the sandbox reads one from is an EVM ``Transaction`` given as a JSON
object (``to``, ``value``, ``data``, ``chainId``). Every other request — ``Hash``,
``Message``, ``Eip712``, a serialized ``Transaction``, a contract call, a 0-value
transfer — fails closed: the rule triggers, as Dfns documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_WEI_PER_NATIVE = Decimal(10) ** 18
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class Transfer:
    """A plain EVM value transfer read from a JSON ``Transaction`` request body."""

    to: str
    value_wei: int
    chain_id: int | None


@dataclass(frozen=True)
class TransferFacts:
    """What the request moves, or why that cannot be known (then ``transfer`` is None)."""

    transfer: Transfer | None
    unknown_reason: str = ""


@dataclass(frozen=True)
class PriorActivity:
    """One earlier live signature activity of the same key or wallets, inside a window."""

    amount_usd: Decimal | None


@dataclass(frozen=True)
class RuleResult:
    triggered: bool
    reason: str
    context: dict[str, Any] = field(default_factory=dict)


# Given a timeframe in minutes, the earlier live activities of the same scope inside it.
History = Callable[[int], Sequence[PriorActivity]]


def _parse_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.lower().startswith("0x"):
                return int(text, 16)
            return int(text, 10)
        except ValueError:
            return None
    return None


def transfer_facts(request_body: Mapping[str, Any]) -> TransferFacts:
    """Read a plain value transfer from the request body, if there is one."""
    kind = request_body.get("kind")
    if kind != "Transaction":
        return TransferFacts(None, f"a {kind} signature request carries no readable transfer")
    transaction = request_body.get("transaction")
    if not isinstance(transaction, Mapping):
        return TransferFacts(None, "a serialized Transaction carries no readable transfer")
    to = transaction.get("to")
    if not isinstance(to, str) or not _EVM_ADDRESS.match(to):
        return TransferFacts(None, "the transaction has no recipient address")
    data = transaction.get("data")
    if data not in (None, "", "0x"):
        return TransferFacts(None, "the transaction is a contract call, not a value transfer")
    value = _parse_int(transaction.get("value", 0))
    if value is None or value < 0:
        return TransferFacts(None, "the transaction value is not a readable amount")
    if value == 0:
        return TransferFacts(None, "the transaction transfers no value")
    chain_id = _parse_int(transaction.get("chainId"))
    return TransferFacts(Transfer(to=to, value_wei=value, chain_id=chain_id))


def value_in_usd(transfer: Transfer | None, prices: Mapping[int, Decimal]) -> Decimal | None:
    """The transfer's USD value from the configured native-unit prices, if known."""
    if transfer is None or transfer.chain_id is None:
        return None
    price = prices.get(transfer.chain_id)
    if price is None:
        return None
    return Decimal(transfer.value_wei) / _WEI_PER_NATIVE * price


def _fmt(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def _number(value: Any) -> Decimal:
    return Decimal(str(value))


def evaluate_rule(
    rule: Mapping[str, Any],
    facts: TransferFacts,
    amount_usd: Decimal | None,
    history: History,
) -> RuleResult:
    """Decide whether ``rule`` triggers for the current request."""
    kind = rule.get("kind")
    config: Mapping[str, Any] = rule.get("configuration") or {}
    if kind == "AlwaysTrigger":
        return RuleResult(True, "AlwaysTrigger rule always triggers")
    if kind == "TransactionRecipientWhitelist":
        return _whitelist(config, facts)
    if kind == "TransactionAmountLimit":
        return _amount_limit(config, facts, amount_usd)
    if kind == "TransactionAmountVelocity":
        return _amount_velocity(config, facts, amount_usd, history)
    if kind == "TransactionCountVelocity":
        return _count_velocity(config, history)
    if kind == "ChainalysisTransactionPrescreening":
        # The sandbox has no Chainalysis: every request is unscreenable.
        fallbacks: Mapping[str, Any] = config.get("fallbackBehaviours") or {}
        if fallbacks.get("skipUnscreenableTransaction") is True:
            return RuleResult(False, "transaction cannot be screened; skipUnscreenableTransaction")
        return RuleResult(True, "transaction cannot be screened (fails closed)")
    if kind == "TravelRuleTransactionPrescreening":
        return RuleResult(False, "Travel Rule prescreening applies only to transfer requests")
    return RuleResult(True, f"rule {kind} is not supported by the sandbox (fails closed)")


def _whitelist(config: Mapping[str, Any], facts: TransferFacts) -> RuleResult:
    if facts.transfer is None:
        return RuleResult(True, f"recipient cannot be inferred: {facts.unknown_reason}")
    recipient = facts.transfer.to
    allowed = {str(address).lower() for address in config.get("addresses", [])}
    context = {"recipient": recipient}
    if recipient.lower() in allowed:
        return RuleResult(False, f"recipient {recipient} is whitelisted", context)
    return RuleResult(True, f"recipient {recipient} is not whitelisted", context)


def _amount_limit(
    config: Mapping[str, Any], facts: TransferFacts, amount_usd: Decimal | None
) -> RuleResult:
    currency = str(config.get("currency", "USD"))
    limit = _number(config.get("limit", 0))
    if facts.transfer is None:
        return RuleResult(True, f"amount cannot be inferred: {facts.unknown_reason}")
    if amount_usd is None:
        return RuleResult(True, f"amount cannot be valued in {currency} (no price configured)")
    context = {"transactionAmount": {"value": _fmt(amount_usd), "currency": currency}}
    if amount_usd > limit:
        reason = f"amount {_fmt(amount_usd)} {currency} exceeds the limit of {_fmt(limit)}"
        return RuleResult(True, reason, context)
    reason = f"amount {_fmt(amount_usd)} {currency} is within the limit of {_fmt(limit)}"
    return RuleResult(False, reason, context)


def _amount_velocity(
    config: Mapping[str, Any],
    facts: TransferFacts,
    amount_usd: Decimal | None,
    history: History,
) -> RuleResult:
    currency = str(config.get("currency", "USD"))
    limit = _number(config.get("limit", 0))
    timeframe = int(config.get("timeframe", 1))
    if facts.transfer is None:
        return RuleResult(True, f"amount cannot be inferred: {facts.unknown_reason}")
    if amount_usd is None:
        return RuleResult(True, f"amount cannot be valued in {currency} (no price configured)")
    prior = history(timeframe)
    if any(activity.amount_usd is None for activity in prior):
        reason = f"an earlier activity in the last {timeframe} minutes has no known amount"
        return RuleResult(True, reason)
    total = amount_usd + sum((a.amount_usd for a in prior if a.amount_usd is not None), Decimal(0))
    context = {
        "transactionAmount": {"value": _fmt(amount_usd), "currency": currency},
        "cumulativeAmount": {"value": _fmt(total), "currency": currency},
        "timeframe": timeframe,
    }
    window = f"in the last {timeframe} minutes"
    if total > limit:
        reason = f"{_fmt(total)} {currency} {window} exceeds the limit of {_fmt(limit)}"
        return RuleResult(True, reason, context)
    reason = f"{_fmt(total)} {currency} {window} is within the limit of {_fmt(limit)}"
    return RuleResult(False, reason, context)


def _count_velocity(config: Mapping[str, Any], history: History) -> RuleResult:
    limit = _number(config.get("limit", 0))
    timeframe = int(config.get("timeframe", 1))
    count = len(history(timeframe)) + 1
    context = {"transactionCount": count, "timeframe": timeframe}
    window = f"{count} signature activities in the last {timeframe} minutes"
    if count > limit:
        return RuleResult(True, f"{window} exceed the limit of {_fmt(limit)}", context)
    return RuleResult(False, f"{window} are within the limit of {_fmt(limit)}", context)
