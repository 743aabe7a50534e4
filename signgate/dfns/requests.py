"""Request bodies signgate builds and sends to Dfns (strict).

Every model here forbids unknown fields, is frozen, and serialises with Dfns's camelCase
names through :func:`to_wire`. Field names, patterns and lengths follow Dfns's OpenAPI
spec 1.578.2 (``POST /keys/{keyId}/signatures``, ``POST /v2/policy-approvals/{id}/decisions``,
``POST /webhooks``, ``PUT /webhooks/{id}``); ``tests/unit/dfns/test_spec_agreement.py``
checks them against schemas vendored from that spec.

Deliberate differences from the spec (``DIFFERENCES`` in
``tests/unit/dfns/test_spec_agreement.py`` is the authoritative list, pinned by tests):

* ``network`` and ``blockchainKind`` are open strings shaped like Dfns's enum members
  (``^[A-Z][A-Za-z0-9]*$``), not the spec's closed enums. Dfns adds networks in most
  releases; a closed enum would stop users from signing on a new chain until signgate is
  upgraded, while Dfns itself still rejects a name it does not know (HTTP 400). Every value
  of spec 1.578.2 is accepted; :data:`KNOWN_NETWORKS` and :data:`KNOWN_BLOCKCHAIN_KINDS`
  list them for callers that want to warn about a typo.
* ``Eip7702`` ``nonce`` and ``chainId`` are integers (the spec says ``number``): a
  fractional nonce or chain id cannot be meant.
* An explicit ``None`` for an optional field means "absent": it is accepted and never
  sent, whereas the spec's JSON Schema refuses ``null``.
* ``kind`` has a default, so ``HashRequest(hash=...)`` needs no ``kind=``; a wire body
  without ``kind`` is still refused by :func:`parse_signature_request_body`.
* :class:`ApprovalDecisionRequest` refuses unknown fields, as every model here does; the
  spec's decision schema happens not to forbid them.

Patterns run on pydantic's Rust regex engine, where ``$`` matches only at the very end of
the string (as in JSON Schema's ECMA-262 regexes), so a trailing newline never slips through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter
from pydantic.alias_generators import to_camel

__all__ = [
    "KNOWN_BLOCKCHAIN_KINDS",
    "KNOWN_NETWORKS",
    "SIGNATURE_REQUEST_KINDS",
    "WEBHOOK_EVENT_KINDS",
    "ApprovalDecisionRequest",
    "Bip322Request",
    "BlockchainKindName",
    "Cip8Request",
    "CreateWebhookRequest",
    "Eip712Domain",
    "Eip712Request",
    "Eip712TypeField",
    "Eip7702Request",
    "EvenHex",
    "ExternalId",
    "Hash32Hex",
    "HashRequest",
    "LegacyHashRequest",
    "MessageRequest",
    "NetworkName",
    "PactCommandRequest",
    "PsbtRequest",
    "SignDocDirectRequest",
    "SignatureRequestBase",
    "SignatureRequestBody",
    "SignerPayloadRequest",
    "StrictWireModel",
    "TransactionRequest",
    "UpdateWebhookRequest",
    "WebhookEventKind",
    "WebhookEventSelector",
    "parse_signature_request_body",
    "to_wire",
]


class StrictWireModel(BaseModel):
    """Base of every body we send: unknown fields refused, camelCase on the wire, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def to_wire(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict Dfns expects: camelCase names, ``None`` fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- field types (patterns verbatim from spec 1.578.2) --------------------------------------

Hash32Hex = Annotated[str, StringConstraints(strict=True, pattern=r"^(0x)?[0-9a-fA-F]{64}$")]
"""A 32-byte hash, hex, optional ``0x``."""

TaprootMerkleRootHex = Annotated[
    str, StringConstraints(strict=True, pattern=r"^(0x)?([0-9A-Fa-f]{64})?$")
]
"""A 32-byte merkle root, or ``""`` to tweak with the default root."""

EvenHex = Annotated[
    str, StringConstraints(strict=True, pattern=r"^(0x)?([0-9a-fA-F][0-9a-fA-F])*$")
]
"""Hex-encoded bytes (even number of digits, optional ``0x``; empty allowed, as in the spec)."""

NonEmptyEvenHex = Annotated[
    str, StringConstraints(strict=True, pattern=r"^(0x)?([0-9a-fA-F]{2})+$")
]
"""Hex-encoded bytes, at least one byte."""

ExternalId = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=50)]
"""Caller-chosen idempotency key (1..50 characters)."""

NetworkName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z][A-Za-z0-9]*$")]
"""A Dfns network name, e.g. ``EthereumSepolia`` (open: see the module docstring)."""

BlockchainKindName = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z][A-Za-z0-9]*$")]
"""A Dfns blockchain kind, e.g. ``Evm`` (open: see the module docstring)."""

EvmAddress = Annotated[str, StringConstraints(strict=True, pattern=r"^0x[0-9a-fA-F]{40}$")]
Bytes32Hex0x = Annotated[str, StringConstraints(strict=True, pattern=r"^0x[0-9a-fA-F]{64}$")]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
_StrictStr = Annotated[str, StringConstraints(strict=True)]

KNOWN_NETWORKS: Final[tuple[str, ...]] = (
    "Algorand", "AlgorandTestnet", "Aptos", "AptosTestnet", "ArbitrumOne", "ArbitrumSepolia",
    "AvalancheC", "AvalancheCFuji", "BabylonGenesis", "BabylonTestnet5", "Base", "BaseSepolia",
    "Berachain", "BerachainBepolia", "Bitcoin", "BitcoinSignet", "BitcoinTestnet3",
    "BitcoinCash", "Bob", "BobSepolia", "Bsc", "BscTestnet", "Canton", "CantonTestnet",
    "Cardano", "CardanoPreprod", "Celo", "CeloAlfajores", "Codex", "CodexSepolia",
    "CosmosHub4", "CosmosIcsTestnet", "Dogecoin", "Ethereum", "EthereumGoerli",
    "EthereumSepolia", "EthereumHolesky", "EthereumHoodi", "FantomOpera", "FantomTestnet",
    "FlareC", "FlareCCoston2", "Hedera", "HederaTestnet", "Ink", "InkSepolia",
    "InternetComputer", "Ion", "IonTestnet", "Iota", "IotaTestnet", "KadenaTestnet4", "Kadena",
    "Kaspa", "Kusama", "Litecoin", "Near", "NearTestnet", "Optimism", "OptimismSepolia",
    "Origyn", "Plume", "PlumeSepolia", "Polkadot", "Polygon", "PolygonAmoy", "Polymesh",
    "PolymeshTestnet", "Race", "RaceSepolia", "SeiAtlantic2", "SeiPacific1", "Solana",
    "SolanaDevnet", "Stellar", "StellarTestnet", "Sui", "SuiTestnet", "Tsc", "TscTestnet1",
    "Tezos", "TezosGhostnet", "Ton", "TonTestnet", "Tron", "TronNile", "Westend", "XrpLedger",
    "XrpLedgerTestnet",
)  # fmt: skip
"""``components.schemas.Network`` of spec 1.578.2, in spec order."""

KNOWN_BLOCKCHAIN_KINDS: Final[tuple[str, ...]] = (
    "Algorand", "Aptos", "Bitcoin", "BitcoinCash", "Canton", "Cardano", "Cosmos", "Evm",
    "Hedera", "Icp", "Iota", "Kadena", "Kaspa", "Near", "Polymesh", "Solana", "Stellar",
    "Substrate", "Sui", "Tezos", "Ton", "Tron", "Xrpl",
)  # fmt: skip
"""``components.schemas.BlockchainKind`` of spec 1.578.2, in spec order."""


# --- POST /keys/{keyId}/signatures ----------------------------------------------------------


class SignatureRequestBase(StrictWireModel):
    """Fields every signature request kind accepts.

    ``kind`` is declared here only to keep it first on the wire; each subclass narrows it to
    its own literal.
    """

    kind: str
    network: NetworkName | None = None
    blockchain_kind: BlockchainKindName | None = None
    external_id: ExternalId | None = None


class HashRequest(SignatureRequestBase):
    """Sign a 32-byte hash (every scheme). Schnorr keys need ``taproot_merkle_root``."""

    kind: Literal["Hash"] = "Hash"
    hash: Hash32Hex
    taproot_merkle_root: TaprootMerkleRootHex | None = None


class MessageRequest(SignatureRequestBase):
    """Sign an arbitrary hex-encoded message (EIP-191 for EVM; any length for EdDSA)."""

    kind: Literal["Message"] = "Message"
    message: EvenHex


class Eip7702Request(SignatureRequestBase):
    """Sign an EIP-7702 authorization tuple."""

    kind: Literal["Eip7702"] = "Eip7702"
    address: EvenHex
    nonce: StrictInt
    chain_id: StrictInt


class TransactionRequest(SignatureRequestBase):
    """Sign an unsigned, hex-encoded transaction."""

    kind: Literal["Transaction"] = "Transaction"
    transaction: EvenHex


class Eip712TypeField(StrictWireModel):
    """One member of an EIP-712 struct type."""

    name: _StrictStr
    type: _StrictStr


class Eip712Domain(StrictWireModel):
    """The EIP-712 domain separator."""

    name: _StrictStr | None = None
    version: _StrictStr | None = None
    chain_id: PositiveInt | _StrictStr | None = None
    verifying_contract: EvmAddress | None = None
    salt: Bytes32Hex0x | None = None


class Eip712Request(SignatureRequestBase):
    """Sign EIP-712 typed structured data."""

    kind: Literal["Eip712"] = "Eip712"
    types: dict[str, list[Eip712TypeField]]
    domain: Eip712Domain
    message: dict[str, Any]


class PsbtRequest(SignatureRequestBase):
    """Sign a hex-encoded PSBT (Bitcoin, Litecoin)."""

    kind: Literal["Psbt"] = "Psbt"
    psbt: EvenHex


class Bip322Request(SignatureRequestBase):
    """Sign a BIP-322 message; the formatted signature comes back in ``signedData``."""

    kind: Literal["Bip322"] = "Bip322"
    message: EvenHex
    format: Literal["Simple", "Full"] | None = None


class PactCommandRequest(SignatureRequestBase):
    """Sign a Kadena Pact command (the command JSON, serialised into a string)."""

    kind: Literal["PactCommand"] = "PactCommand"
    command: _StrictStr


class SignDocDirectRequest(SignatureRequestBase):
    """Sign a Cosmos ``SignDoc`` (sign-mode direct), hex-encoded protobuf."""

    kind: Literal["SignDocDirect"] = "SignDocDirect"
    sign_doc: EvenHex


class SignerPayloadRequest(SignatureRequestBase):
    """Sign a Polkadot/Substrate signer payload, as hex or as its JSON object."""

    kind: Literal["SignerPayload"] = "SignerPayload"
    payload: EvenHex | dict[str, Any]


class Cip8Request(SignatureRequestBase):
    """Sign a Cardano CIP-8 message."""

    kind: Literal["Cip8"] = "Cip8"
    context: Literal["Signature1"]
    payload: EvenHex | None = None
    external_aad: EvenHex | None = None


SignatureRequestBody = Annotated[
    HashRequest
    | MessageRequest
    | Eip7702Request
    | TransactionRequest
    | Eip712Request
    | PsbtRequest
    | Bip322Request
    | PactCommandRequest
    | SignDocDirectRequest
    | SignerPayloadRequest
    | Cip8Request,
    Field(discriminator="kind"),
]
"""Any body of ``POST /keys/{keyId}/signatures`` (also ``/wallets/{walletId}/signatures``)."""

_SIGNATURE_REQUEST_MODELS: Final[tuple[type[SignatureRequestBase], ...]] = get_args(
    get_args(SignatureRequestBody)[0]
)

SIGNATURE_REQUEST_KINDS: Final[tuple[str, ...]] = tuple(
    get_args(model.model_fields["kind"].annotation)[0] for model in _SIGNATURE_REQUEST_MODELS
)
"""Every ``kind`` of spec 1.578.2, in spec order."""

_SIGNATURE_REQUEST_ADAPTER: Final[TypeAdapter[SignatureRequestBody]] = TypeAdapter(
    SignatureRequestBody
)


def parse_signature_request_body(data: Mapping[str, Any]) -> SignatureRequestBody:
    """Validate a wire-shaped dict into the request model its ``kind`` names.

    Raises :class:`pydantic.ValidationError`; an unknown ``kind`` is reported with the list
    of expected kinds.
    """
    return _SIGNATURE_REQUEST_ADAPTER.validate_python(dict(data))


# --- POST /public-keys/{publicKeyId}/signatures (legacy G1) --------------------------------


class LegacyHashRequest(StrictWireModel):
    """Body of the legacy ``POST /public-keys/{id}/signatures``.

    The old docs accept any length (ECDSA needs exactly 32 bytes, EdDSA signs the message
    as given), so only hex-encoded bytes are checked here.
    """

    hash: NonEmptyEvenHex


# --- POST /v2/policy-approvals/{approvalId}/decisions ---------------------------------------


class ApprovalDecisionRequest(StrictWireModel):
    """Approve or deny a pending policy approval."""

    value: Literal["Approved", "Denied"]
    reason: Annotated[str, StringConstraints(strict=True, max_length=1000)] | None = None


# --- POST /webhooks, PUT /webhooks/{webhookId} ----------------------------------------------

WebhookEventKind = Literal[
    "policy.triggered",
    "policy.approval.pending",
    "policy.approval.resolved",
    "key.created",
    "key.deleted",
    "key.delegated",
    "key.exported",
    "wallet.blockchainevent.detected",
    "wallet.created",
    "wallet.delegated",
    "wallet.exported",
    "wallet.signature.failed",
    "wallet.signature.rejected",
    "wallet.signature.requested",
    "wallet.signature.signed",
    "wallet.transaction.broadcasted",
    "wallet.transaction.confirmed",
    "wallet.transaction.failed",
    "wallet.transaction.rejected",
    "wallet.transaction.requested",
    "wallet.transfer.broadcasted",
    "wallet.transfer.confirmed",
    "wallet.transfer.failed",
    "wallet.transfer.rejected",
    "wallet.transfer.requested",
    "wallet.offer.received",
    "wallet.offer.accepted",
    "wallet.offer.rejected",
    "wallet.tags.modified",
]
"""Webhook event kinds of spec 1.578.2 (Keys-API signature requests use ``wallet.signature.*``)."""

WEBHOOK_EVENT_KINDS: Final[tuple[str, ...]] = get_args(WebhookEventKind)
"""Every :data:`WebhookEventKind`, in spec order."""

WebhookEventSelector = WebhookEventKind | Literal["*"]
"""What a webhook subscribes to: one event kind, or ``"*"`` for all."""

_WebhookDescription = Annotated[str, StringConstraints(strict=True, max_length=256)]


class CreateWebhookRequest(StrictWireModel):
    """Register a webhook; the response carries the signing secret, once."""

    url: _StrictStr
    events: Annotated[list[WebhookEventSelector], Field(min_length=1)]
    description: _WebhookDescription | None = None
    status: Literal["Enabled", "Disabled"] | None = None


class UpdateWebhookRequest(StrictWireModel):
    """Change a webhook; fields left ``None`` are not sent and stay as they are."""

    url: _StrictStr | None = None
    events: Annotated[list[WebhookEventSelector], Field(min_length=1)] | None = None
    description: _WebhookDescription | None = None
    status: Literal["Enabled", "Disabled"] | None = None
