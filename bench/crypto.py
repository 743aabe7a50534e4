"""Crypto benchmark: ``python bench/crypto.py`` prints what one signature check costs.

For each scheme signgate verifies (an ECDSA hash, an EIP-191 message, EIP-712 typed data,
an EVM transaction, a BIP-340 signature against a taproot-tweaked key, Ed25519) it times
one call of ``activities.verification.verify_signature`` (the function the worker runs on
every signed request: digest, key decoding, the curve check, the result model) twice in the
same run: with ``signgate.crypto`` as shipped (libsecp256k1 through coincurve), and with its
secp256k1 functions swapped for ``tests/unit/crypto/reference.py``, the pure-Python curve
code signgate used before. Hashing, parsing and Ed25519 are the same code in both columns.
Then the same for the bare primitives (sign, verify, recover, BIP-340, the taproot tweak).

Each figure is the median of ``--rounds`` rounds, each round as many calls as fit in
``--round-seconds``. The worker's CPU per approval and its event-loop lag during a burst
are ``bench/webhook.py``'s. The figures depend on the machine; the script asserts only that
every signature it times verifies.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.verification import PublicKeyInfo, verify_signature  # noqa: E402
from signgate import crypto  # noqa: E402
from signgate.dfns.models import Signature, SignatureRequestView, SignatureStatus  # noqa: E402
from signgate.dfns.requests import (  # noqa: E402
    Eip712Request,
    HashRequest,
    MessageRequest,
    SignatureRequestBody,
    TransactionRequest,
    to_wire,
)
from tests.support import vectors  # noqa: E402
from tests.unit.crypto import reference  # noqa: E402

SECRET = hashlib.sha256(b"bench key").digest()
DIGEST = hashlib.sha256(b"bench digest").digest()
# The functions verify_signature reaches in signgate.crypto that do curve arithmetic.
CURVE_FUNCTIONS = (
    "ecdsa_recover",
    "ecdsa_verify",
    "secp256k1_normalize_public_key",
    "taproot_tweak_public_key",
    "schnorr_verify",
)
# The EIP-712 example from the EIP ("Ether Mail"), in Dfns's shape.
MAIL, _MAIL_DIGEST = vectors.ether_mail()
# The unsigned EIP-1559 transaction of Dfns's "Transaction" request example.
UNSIGNED_TX = bytes.fromhex(
    "02e783aa36a71603850cbab1770382520894e5a2ebc128e262ab1e3bd02bffbe16911adfbffb0180c0"
)

Case = tuple[PublicKeyInfo, SignatureRequestBody, SignatureRequestView]


def _h(data: bytes) -> str:
    return "0x" + data.hex()


def _view(signature: Signature, signed_data: bytes | None = None) -> SignatureRequestView:
    return SignatureRequestView(
        generation="keys",
        id="sig-bench",
        key_id="key-1",
        status=SignatureStatus.SIGNED,
        raw_status="Signed",
        signature=signature,
        signed_data=_h(signed_data) if signed_data is not None else None,
    )


def _ecdsa_case(request: SignatureRequestBody, digest: bytes, network: str | None) -> Case:
    sig = crypto.ecdsa_sign(SECRET, digest)
    key = PublicKeyInfo("key-1", "ECDSA", "secp256k1", crypto.secp256k1_public_key(SECRET), network)
    evm = network is not None
    signature = Signature(
        r=_h(sig.r.to_bytes(32, "big")),
        s=_h(sig.s.to_bytes(32, "big")),
        recid=sig.recid,
        encoded=_h(crypto.encoded_evm_signature(sig)) if evm else None,
    )
    signed = None
    if isinstance(request, TransactionRequest):
        signed = crypto.evm_signed_transaction(UNSIGNED_TX, sig)
    return key, request, _view(signature, signed)


def cases() -> dict[str, Case]:
    """One valid signed request per scheme, as the engine would see it."""
    message = b"I approve payout 42"
    eip712 = Eip712Request.model_validate(MAIL)
    tweaked = crypto.taproot_tweak_secret(SECRET, None)
    schnorr = crypto.schnorr_sign(tweaked, DIGEST)
    ed = crypto.ed25519_sign(SECRET, DIGEST)
    return {
        "ECDSA hash": _ecdsa_case(HashRequest(hash=_h(DIGEST)), DIGEST, None),
        "EIP-191 message": _ecdsa_case(
            MessageRequest(message=_h(message)), crypto.eip191_hash(message), "Ethereum"
        ),
        "EIP-712 typed data": _ecdsa_case(eip712, crypto.eip712_hash(to_wire(eip712)), "Ethereum"),
        "EVM transaction": _ecdsa_case(
            TransactionRequest(transaction=_h(UNSIGNED_TX)),
            crypto.evm_transaction_signing_hash(UNSIGNED_TX),
            "EthereumSepolia",
        ),
        "Schnorr (taproot key path)": (
            PublicKeyInfo("key-1", "Schnorr", "secp256k1", crypto.secp256k1_public_key(SECRET)),
            HashRequest(hash=_h(DIGEST), taproot_merkle_root=""),
            _view(Signature(r=_h(schnorr[:32]), s=_h(schnorr[32:]))),
        ),
        "Ed25519 hash": (
            PublicKeyInfo("key-1", "EdDSA", "ed25519", crypto.ed25519_public_key(SECRET)),
            HashRequest(hash=_h(DIGEST)),
            _view(Signature(r=_h(ed[:32]), s=_h(ed[32:]))),
        ),
    }


@contextlib.contextmanager
def pure_python_curve() -> Iterator[None]:
    """signgate.crypto's curve functions swapped for the pure-Python reference's."""
    saved = {name: getattr(crypto, name) for name in CURVE_FUNCTIONS}
    try:
        for name in CURVE_FUNCTIONS:
            setattr(crypto, name, getattr(reference, name))
        yield
    finally:
        for name, function in saved.items():
            setattr(crypto, name, function)


def seconds_per_call(call: Callable[[], object], rounds: int, round_seconds: float) -> float:
    """Median over ``rounds`` of the mean time of one call, each round ``round_seconds`` long."""
    call()  # warm caches (the reference builds its table on first use)
    per_round: list[float] = []
    for _ in range(rounds):
        calls, began = 0, time.perf_counter()
        while True:
            call()
            calls += 1
            elapsed = time.perf_counter() - began
            if elapsed >= round_seconds:
                break
        per_round.append(elapsed / calls)
    return statistics.median(per_round)


def _row(name: str, new: float, old: float) -> str:
    return f"  {name:<30} {new * 1e6:9.1f} us {old * 1e6:11.1f} us {old / new:8.1f}x"


def _header(what: str) -> None:
    print(f"  {what:<30} {'libsecp256k1':>12} {'pure Python':>14} {'ratio':>9}")


def bench_verification(rounds: int, round_seconds: float) -> None:
    print("one verify_signature call (digest + key + curve check + result), per scheme")
    _header("scheme")
    for name, (key, request, view) in cases().items():

        def call(key: PublicKeyInfo = key, request: SignatureRequestBody = request,
                 view: SignatureRequestView = view) -> object:  # fmt: skip
            return verify_signature(key, request, view)

        result = verify_signature(key, request, view)
        assert result.status == "verified", (name, result.detail)
        new = seconds_per_call(call, rounds, round_seconds)
        with pure_python_curve():
            result = verify_signature(key, request, view)
            assert result.status == "verified", (name, "reference", result.detail)
            old = seconds_per_call(call, rounds, round_seconds)
        print(_row(name, new, old))


def bench_primitives(rounds: int, round_seconds: float) -> None:
    public = crypto.secp256k1_public_key(SECRET)
    sig = crypto.ecdsa_sign(SECRET, DIGEST)
    xonly = crypto.xonly_public_key(SECRET)
    schnorr = crypto.schnorr_sign(SECRET, DIGEST, b"\x00" * 32)
    assert crypto.ecdsa_verify(public, DIGEST, sig.r, sig.s)
    assert reference.ecdsa_verify(public, DIGEST, sig.r, sig.s)
    assert crypto.schnorr_verify(xonly, DIGEST, schnorr)
    assert reference.schnorr_verify(xonly, DIGEST, schnorr)
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "ecdsa_sign": (
            lambda: crypto.ecdsa_sign(SECRET, DIGEST),
            lambda: reference.ecdsa_sign(SECRET, DIGEST),
        ),
        "ecdsa_verify": (
            lambda: crypto.ecdsa_verify(public, DIGEST, sig.r, sig.s),
            lambda: reference.ecdsa_verify(public, DIGEST, sig.r, sig.s),
        ),
        "ecdsa_recover": (
            lambda: crypto.ecdsa_recover(DIGEST, sig.r, sig.s, sig.recid),
            lambda: reference.ecdsa_recover(DIGEST, sig.r, sig.s, sig.recid),
        ),
        "schnorr_sign": (
            lambda: crypto.schnorr_sign(SECRET, DIGEST, b"\x00" * 32),
            lambda: reference.schnorr_sign(SECRET, DIGEST, b"\x00" * 32),
        ),
        "schnorr_verify": (
            lambda: crypto.schnorr_verify(xonly, DIGEST, schnorr),
            lambda: reference.schnorr_verify(xonly, DIGEST, schnorr),
        ),
        "taproot_tweak_public_key": (
            lambda: crypto.taproot_tweak_public_key(xonly, None),
            lambda: reference.taproot_tweak_public_key(xonly, None),
        ),
        "secp256k1_public_key": (
            lambda: crypto.secp256k1_public_key(SECRET),
            lambda: reference.secp256k1_public_key(SECRET),
        ),
    }
    print()
    print("the bare primitives")
    _header("function")
    for name, (new_call, old_call) in pairs.items():
        new = seconds_per_call(new_call, rounds, round_seconds)
        old = seconds_per_call(old_call, rounds, round_seconds)
        print(_row(name, new, old))


def bench_table_build() -> None:
    began = time.perf_counter()
    reference._build_g_table()
    built = time.perf_counter() - began
    print()
    print(
        f"the pure-Python code's table of multiples of G: {built * 1e3:.0f} ms to build "
        "(libsecp256k1 needs none at start)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (median)")
    parser.add_argument(
        "--round-seconds", type=float, default=0.2, help="how long each round calls"
    )
    args = parser.parse_args()
    bench_verification(args.rounds, args.round_seconds)
    bench_primitives(args.rounds, args.round_seconds)
    bench_table_build()


if __name__ == "__main__":
    main()
