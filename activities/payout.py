"""Activities of the payout example: build the unsigned EVM transfer to be signed."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from signgate import activity_api as api
from signgate import crypto, ids
from signgate.contracts import BuildTransferInput, BuiltTransfer

__all__ = ["build_evm_transfer", "serialize_eip1559"]


def serialize_eip1559(spec: BuildTransferInput) -> bytes:
    """The unsigned EIP-1559 (type 2) transaction: ``0x02 || rlp([...fields, accessList])``."""
    data = bytes.fromhex(spec.data[2:])
    fields: list[crypto.RlpItem | int] = [
        spec.chain_id,
        spec.nonce,
        spec.max_priority_fee_per_gas,
        spec.max_fee_per_gas,
        spec.gas_limit,
        bytes.fromhex(spec.to[2:]),
        spec.value_wei,
        data,
        [],
    ]
    return b"\x02" + crypto.rlp_encode(fields)


@api.BUILD_TRANSFER.implements_function
async def build_evm_transfer(input: BuildTransferInput) -> BuiltTransfer:
    """Serialise the transfer; deterministic, so a retry builds the same bytes."""
    if input.max_priority_fee_per_gas > input.max_fee_per_gas:
        # Deterministic: retrying cannot help, so the payout fails with this message.
        raise ApplicationError(
            "max_priority_fee_per_gas must not exceed max_fee_per_gas",
            type=ids.ERR_INVALID_REQUEST,
            non_retryable=True,
        )
    unsigned = serialize_eip1559(input)
    return BuiltTransfer(
        unsigned_transaction="0x" + unsigned.hex(),
        signing_hash="0x" + crypto.evm_transaction_signing_hash(unsigned).hex(),
        to=crypto.evm_checksum_address(input.to),
        value_wei=input.value_wei,
        chain_id=input.chain_id,
        nonce=input.nonce,
    )
