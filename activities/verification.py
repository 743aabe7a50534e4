"""Check a returned signature with real cryptography before anything downstream sees it.

The public key comes from Dfns's key, wallet or legacy public-key object (never from the
signature response), and the digest is recomputed from the request the workflow sent
(never from what Dfns echoes):

========================  ================================================================
request                   what is checked
========================  ================================================================
Hash, ECDSA secp256k1     ``ecdsa_recover(hash, r, s, recid)`` is the key; ``s`` is low
Hash, EdDSA ed25519       Ed25519 over the 32 hash bytes
Hash, Schnorr secp256k1   BIP-340 against the BIP-341 taproot-tweaked key
                          (``taprootMerkleRoot`` ``""`` = key-path-only tweak)
Message, EVM ECDSA        as Hash, over the EIP-191 digest of the message
Message, EdDSA            Ed25519 over the raw message bytes
Eip712, ECDSA             as Hash, over the EIP-712 digest of types/domain/message
Transaction, EVM ECDSA    as Hash, over the EIP-155/typed signing hash of the unsigned tx;
                          ``signedData``, when present, must be exactly that tx signed
========================  ================================================================

EVM ``encoded`` signatures must equal ``r || s || 27+recid``. Every other combination
(PSBT, BIP-322, non-EVM transactions, ...) is ``unverifiable``, with the reason; the
workflow reports it and, unless told otherwise, does not deliver it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from temporalio.exceptions import ApplicationError

from activities.errors import dfns_errors, read_errors
from activities.signing import slim
from signgate import activity_api as api
from signgate import crypto
from signgate.contracts import (
    ReadAndVerifyInput,
    ReadAndVerifyResult,
    VerificationResult,
    VerifyCarriedInput,
    VerifyInput,
)
from signgate.dfns.client import DfnsClient, SigningTarget
from signgate.dfns.models import Signature, SignatureRequestView
from signgate.dfns.requests import (
    Eip712Request,
    HashRequest,
    MessageRequest,
    SignatureRequestBody,
    TransactionRequest,
    to_wire,
)
from signgate.logs import get_logger

__all__ = ["EVM_NETWORKS", "PublicKeyInfo", "VerificationActivities", "verify_signature"]

_log = get_logger("signgate.activities.verification")

EVM_NETWORKS: Final[frozenset[str]] = frozenset(
    {
        "ArbitrumOne", "ArbitrumSepolia", "AvalancheC", "AvalancheCFuji", "Base", "BaseSepolia",
        "Berachain", "BerachainBepolia", "Bob", "BobSepolia", "Bsc", "BscTestnet", "Celo",
        "CeloAlfajores", "Codex", "CodexSepolia", "Ethereum", "EthereumGoerli",
        "EthereumHolesky", "EthereumHoodi", "EthereumSepolia", "FantomOpera", "FantomTestnet",
        "FlareC", "FlareCCoston2", "Ink", "InkSepolia", "Optimism", "OptimismSepolia", "Plume",
        "PlumeSepolia", "Polygon", "PolygonAmoy", "Race", "RaceSepolia",
    }
)  # fmt: skip
"""Networks of Dfns spec 1.578.2 that are EVM chains (EIP-191/155 apply)."""


@dataclass(frozen=True)
class PublicKeyInfo:
    """The signing key as Dfns describes it."""

    key_id: str | None
    scheme: str
    curve: str
    public_key: bytes
    network: str | None = None


def _hex_bytes(value: str) -> bytes:
    text = value[2:] if value[:2] in ("0x", "0X") else value
    return bytes.fromhex(text)


def _result(
    status: str,
    method: str,
    detail: str,
    key: PublicKeyInfo,
    digest: bytes | None = None,
) -> VerificationResult:
    return VerificationResult.model_validate(
        {
            "status": status,
            "method": method,
            "detail": detail,
            "scheme": key.scheme,
            "curve": key.curve,
            "public_key": key.public_key.hex(),
            "digest": digest.hex() if digest is not None else None,
            "key_id": key.key_id,
        }
    )


def _is_evm(request: SignatureRequestBody, view: SignatureRequestView, key: PublicKeyInfo) -> bool:
    network = key.network or request.network or view.network
    return network in EVM_NETWORKS or request.blockchain_kind == "Evm"


def verify_signature(
    key: PublicKeyInfo, request: SignatureRequestBody, view: SignatureRequestView
) -> VerificationResult:
    """Verify ``view``'s signature over ``request`` against ``key`` (pure, CPU-bound)."""
    if key.key_id is not None and view.key_id is not None and view.key_id != key.key_id:
        return _result(
            "invalid", "key-id", f"signed by key {view.key_id}, expected {key.key_id}", key
        )
    signature = view.signature
    if signature is None:
        if view.signatures:
            return _result(
                "unverifiable",
                "none",
                f"{request.kind} returned {len(view.signatures)} signatures; "
                "signgate checks single-signature kinds only",
                key,
            )
        return _result("invalid", "none", "the request is Signed but carries no signature", key)
    scheme, curve = key.scheme, key.curve
    try:
        if scheme == "ECDSA" and curve == "secp256k1":
            return _verify_ecdsa(key, request, view, signature)
        if scheme == "EdDSA" and curve == "ed25519":
            return _verify_eddsa(key, request, signature)
        if scheme == "Schnorr" and curve == "secp256k1":
            return _verify_schnorr(key, request, signature)
    except ValueError as exc:
        # Malformed hex, wrong lengths, a point off the curve: not a valid signature.
        return _result("invalid", f"{scheme}/{curve}", f"malformed signature or key: {exc}", key)
    return _result("unverifiable", "none", f"signgate does not verify {scheme}/{curve} keys", key)


def _ecdsa_digest(
    key: PublicKeyInfo, request: SignatureRequestBody, view: SignatureRequestView
) -> tuple[bytes | None, str]:
    evm = _is_evm(request, view, key)
    if isinstance(request, HashRequest):
        return _hex_bytes(request.hash), "hash"
    if isinstance(request, MessageRequest):
        if not evm:
            return None, "Message on a non-EVM ECDSA key has no documented digest"
        return crypto.eip191_hash(_hex_bytes(request.message)), "eip191"
    if isinstance(request, Eip712Request):
        return crypto.eip712_hash(to_wire(request)), "eip712"
    if isinstance(request, TransactionRequest):
        if not evm:
            return None, "only EVM transactions are verified"
        return crypto.evm_transaction_signing_hash(_hex_bytes(request.transaction)), "evm-tx"
    return None, f"{request.kind} requests are not verified by signgate"


def _verify_ecdsa(
    key: PublicKeyInfo,
    request: SignatureRequestBody,
    view: SignatureRequestView,
    signature: Signature,
) -> VerificationResult:
    digest, how = _ecdsa_digest(key, request, view)
    if digest is None:
        return _result("unverifiable", "none", how, key)
    method = f"ecdsa-secp256k1/{how}"
    r = int.from_bytes(_hex_bytes(signature.r), "big")
    s = int.from_bytes(_hex_bytes(signature.s), "big")
    expected = crypto.secp256k1_normalize_public_key(key.public_key, compressed=True)
    if s > crypto.SECP256K1_N // 2:
        return _result("invalid", method, "s is above n/2 (high-s, malleable)", key, digest)
    if signature.recid is not None:
        try:
            recovered = crypto.ecdsa_recover(digest, r, s, signature.recid, compressed=True)
        except ValueError as exc:
            return _result("invalid", method, f"recovery failed: {exc}", key, digest)
        if recovered != expected:
            return _result(
                "invalid", method, "the signature recovers to another public key", key, digest
            )
    elif not crypto.ecdsa_verify(expected, digest, r, s):
        return _result("invalid", method, "ECDSA verification failed", key, digest)
    if signature.encoded is not None and _is_evm(request, view, key) and signature.recid in (0, 1):
        assert signature.recid is not None
        want = crypto.encoded_evm_signature(crypto.EcdsaSignature(r, s, signature.recid))
        if _hex_bytes(signature.encoded) != want:
            return _result("invalid", method, "encoded is not r || s || v", key, digest)
    if isinstance(request, TransactionRequest) and view.signed_data and signature.recid is not None:
        want = crypto.evm_signed_transaction(
            _hex_bytes(request.transaction), crypto.EcdsaSignature(r, s, signature.recid)
        )
        if _hex_bytes(view.signed_data) != want:
            return _result(
                "invalid", method, "signedData is not the requested transaction signed", key, digest
            )
    return _result("verified", method, "signature recovers to the key", key, digest)


def _verify_eddsa(
    key: PublicKeyInfo, request: SignatureRequestBody, signature: Signature
) -> VerificationResult:
    if isinstance(request, HashRequest):
        message, method = _hex_bytes(request.hash), "ed25519/hash"
    elif isinstance(request, MessageRequest):
        message, method = _hex_bytes(request.message), "ed25519/message"
    else:
        return _result("unverifiable", "none", f"{request.kind} on EdDSA is not verified", key)
    sig = _hex_bytes(signature.r) + _hex_bytes(signature.s)
    if len(sig) != 64 or len(key.public_key) != 32:
        return _result("invalid", method, "Ed25519 needs a 64-byte signature and 32-byte key", key)
    if not crypto.ed25519_verify(key.public_key, message, sig):
        return _result("invalid", method, "Ed25519 verification failed", key, message)
    return _result("verified", method, "Ed25519 signature is valid", key, message)


def _verify_schnorr(
    key: PublicKeyInfo, request: SignatureRequestBody, signature: Signature
) -> VerificationResult:
    if not isinstance(request, HashRequest):
        return _result("unverifiable", "none", f"{request.kind} on Schnorr is not verified", key)
    digest = _hex_bytes(request.hash)
    xonly = crypto.secp256k1_normalize_public_key(key.public_key, compressed=True)[1:]
    root_hex = request.taproot_merkle_root
    if root_hex is None:
        output_key, method = xonly, "bip340/untweaked"
    else:
        root = _hex_bytes(root_hex) or None
        output_key, _parity = crypto.taproot_tweak_public_key(xonly, root)
        method = "bip340/taproot-tweaked"
    sig = _hex_bytes(signature.r) + _hex_bytes(signature.s)
    if len(sig) != 64:
        return _result("invalid", method, "a BIP-340 signature is 64 bytes", key, digest)
    if not crypto.schnorr_verify(output_key, digest, sig):
        return _result("invalid", method, "BIP-340 verification failed", key, digest)
    return _result(
        "verified", method, "BIP-340 signature is valid for the tweaked key", key, digest
    )


class VerificationActivities:
    """The verify activity over one shared :class:`DfnsClient`.

    Public keys are cached per target: a key's public key never changes, and neither does
    the key behind a wallet or a legacy public-key id.
    """

    def __init__(self, dfns: DfnsClient, *, cache_size: int = 4096) -> None:
        self._dfns = dfns
        self._cache: OrderedDict[SigningTarget, PublicKeyInfo] = OrderedDict()
        self._cache_size = cache_size

    def held_public_key(self, target: SigningTarget) -> PublicKeyInfo | None:
        """The target's public key if this worker has read it already (no Dfns call)."""
        cached = self._cache.get(target)
        if cached is not None:
            self._cache.move_to_end(target)
        return cached

    async def hold_public_key(self, target: SigningTarget) -> None:
        """Read and keep the target's public key unless held; a failure is only logged (the
        key is then read when a signature needs it)."""
        if self.held_public_key(target) is not None:
            return
        try:
            await self.public_key(target)
        except ApplicationError as exc:
            _log.info(
                "verification.key_not_held",
                target=f"{target.kind}:{target.id}",
                error=exc.message[:300],
            )

    async def public_key(self, target: SigningTarget) -> PublicKeyInfo:
        """The target's public key, read from Dfns (once per target)."""
        cached = self.held_public_key(target)
        if cached is not None:
            return cached
        info = await self._read_public_key(target)
        self._cache[target] = info
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return info

    async def _read_public_key(self, target: SigningTarget) -> PublicKeyInfo:
        with dfns_errors(f"read {target.kind} {target.id}"):
            if target.kind == "key":
                k = await self._dfns.get_key(target.id)
                return PublicKeyInfo(k.id, k.scheme, k.curve, _hex_bytes(k.public_key))
            if target.kind == "wallet":
                w = await self._dfns.get_wallet(target.id)
                sk = w.signing_key
                return PublicKeyInfo(
                    sk.id, sk.scheme, sk.curve, _hex_bytes(sk.public_key), network=w.network
                )
            p = await self._dfns.get_public_key(target.id)
        raw = _hex_bytes(p.public_key)
        # G1 objects say ``isEddsa`` rather than naming a scheme.
        is_eddsa = (p.model_extra or {}).get("isEddsa")
        if not isinstance(is_eddsa, bool):
            is_eddsa = len(raw) == 32
        scheme = p.scheme or ("EdDSA" if is_eddsa else "ECDSA")
        curve = p.curve or ("ed25519" if scheme == "EdDSA" else "secp256k1")
        return PublicKeyInfo(None, scheme, curve, raw)

    @api.VERIFY.implements
    async def verify(self, input: VerifyInput) -> VerificationResult:
        """Verify the signature of ``input.snapshot`` against the target's public key."""
        return await self._verify(input.target, input.request, input.snapshot)

    @api.VERIFY_CARRIED.implements
    async def verify_carried(self, input: VerifyCarriedInput) -> VerificationResult:
        """Verify a signed request a webhook carried; no Dfns call unless ``read_key``.

        The workflow takes the request from the event only when this says ``verified``.
        """
        key = self.held_public_key(input.target)
        if key is None:
            if not input.read_key:
                return VerificationResult(
                    status="unverifiable",
                    method="none",
                    detail="this worker holds no public key for the target yet",
                )
            try:
                key = await self.public_key(input.target)
            except ApplicationError as exc:
                # The workflow reads the request instead, which has its own retries.
                return VerificationResult(
                    status="unverifiable", method="none", detail=exc.message[:300]
                )
        return self._check(key, input.request, input.snapshot)

    @api.READ_AND_VERIFY.implements
    async def read_and_verify(self, input: ReadAndVerifyInput) -> ReadAndVerifyResult:
        """Read the request; when it carries signatures, verify them in the same activity.

        A read that fails fails the activity (the workflow counts a failed poll; a 429 is not
        retried here and not counted, see :func:`~activities.errors.read_errors`). A key that
        cannot be read only leaves ``verification`` empty: the workflow then verifies with
        :meth:`verify`, which retries until the key can be read.
        """
        with read_errors(f"fetch {input.signature_id}"):
            view = slim(await self._dfns.fetch(input.target, input.signature_id))
        if not input.verify:
            return ReadAndVerifyResult(view=view)
        return await self.with_verification(input.target, input.request, view)

    async def with_verification(
        self, target: SigningTarget, request: SignatureRequestBody, view: SignatureRequestView
    ) -> ReadAndVerifyResult:
        """``view`` with the verification of its signatures, when it carries any.

        A key that cannot be read leaves ``verification`` empty (the workflow then verifies
        with :meth:`verify`, which retries until it can).
        """
        if view.signature is None and not view.signatures:
            return ReadAndVerifyResult(view=view)
        try:
            result = await self._verify(target, request, view)
        except ApplicationError as exc:
            _log.warning("signature.verification_deferred", signature_id=view.id, error=exc.message)
            return ReadAndVerifyResult(view=view)
        return ReadAndVerifyResult(view=view, verification=result)

    async def _verify(
        self, target: SigningTarget, request: SignatureRequestBody, view: SignatureRequestView
    ) -> VerificationResult:
        return self._check(await self.public_key(target), request, view)

    def _check(
        self, key: PublicKeyInfo, request: SignatureRequestBody, view: SignatureRequestView
    ) -> VerificationResult:
        # libsecp256k1 checks a signature in about 0.1 ms: a thread hop would cost more.
        result = verify_signature(key, request, view)
        log = _log.warning if result.status == "invalid" else _log.info
        log(
            "signature.verified",
            signature_id=view.id,
            verdict=result.status,
            method=result.method,
            detail=result.detail,
        )
        return result
