"""``signgate sign`` refuses bad input before anything starts: exit 2, the problem named.

Every case runs the real command against the running dev stack with a fresh
``--request-id`` and then checks that Temporal holds no workflow with that id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from signgate.commands.common import CommandError
from signgate.commands.sign import parse_deadline
from tests.cli.conftest import workflow_exists
from tests.cli.support import HASH, cli

MAIL = {
    "types": {
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "domain": {"name": "Ether Mail", "version": "1", "chainId": 1},
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}

# Valid with either struct as the primary type; Dfns infers Outer (no struct references it).
NESTED = {
    "types": {
        "Inner": [{"name": "x", "type": "uint256"}],
        "Outer": [{"name": "x", "type": "uint256"}, {"name": "inner", "type": "Inner"}],
    },
    "primaryType": "Inner",
    "domain": {"name": "nested", "chainId": 1},
    "message": {"x": 1, "inner": {"x": 2}},
}


def _file(tmp: Path, name: str, content: str) -> str:
    path = tmp / name
    path.write_text(content)
    return str(path)


Args = Callable[[Path], list[str]]

CASES: list[tuple[str, Args, str]] = [
    (
        "bad-hex",
        lambda t: ["--key", "evm-ops", "--hash", "0xzz" + "0" * 62],
        "--hash: '0xzz0000000000000000...' is not hexadecimal",
    ),
    (
        "short-hash",
        lambda t: ["--key", "evm-ops", "--hash", "0x1234"],
        "--hash: must be 32 bytes (64 hex digits), got 2 bytes",
    ),
    (
        "odd-hex",
        lambda t: ["--key", "evm-ops", "--message", "0x123"],
        "--message: 3 hex digits is not a whole number of bytes",
    ),
    (
        "schnorr-without-root",
        lambda t: ["--key", "taproot", "--hash", HASH],
        "--taproot-merkle-root is required: --key taproot is a Schnorr key",
    ),
    (
        "root-on-ecdsa",
        lambda t: ["--key", "evm-ops", "--hash", HASH, "--taproot-merkle-root", ""],
        "--taproot-merkle-root: --key evm-ops signs with ECDSA; only Schnorr keys take",
    ),
    (
        "root-wrong-length",
        lambda t: ["--key", "taproot", "--hash", HASH, "--taproot-merkle-root", "0x12"],
        "--taproot-merkle-root: must be 32 bytes (64 hex digits), got 1 bytes",
    ),
    (
        "eip712-missing-file",
        lambda t: ["--key", "evm-ops", "--eip712", str(t / "absent.json")],
        "absent.json: no such file",
    ),
    (
        "eip712-not-json",
        lambda t: ["--key", "evm-ops", "--eip712", _file(t, "typed.json", "{not json")],
        "typed.json: not JSON",
    ),
    (
        "eip712-invalid",
        lambda t: [
            "--key",
            "evm-ops",
            "--eip712",
            _file(t, "typed.json", json.dumps({**MAIL, "message": {"contents": 5}})),
        ],
        "typed.json: not valid EIP-712 typed data",
    ),
    (
        "eip712-other-primary-type",
        lambda t: [
            "--key",
            "evm-ops",
            "--eip712",
            _file(t, "typed.json", json.dumps(NESTED)),
        ],
        "primaryType 'Inner' is not the type Dfns infers",
    ),
    (
        "eip712-on-eddsa",
        lambda t: ["--key", "solana", "--eip712", _file(t, "typed.json", json.dumps(MAIL))],
        "--eip712: --key solana signs with EdDSA ed25519; EIP-712 needs an ECDSA",
    ),
    (
        "transaction-not-hex",
        lambda t: ["--key", "evm-ops", "--transaction", _file(t, "tx.txt", "not a transaction\n")],
        "tx.txt: 'not a transaction' is not hexadecimal",
    ),
    (
        "transaction-unreadable",
        lambda t: ["--key", "evm-ops", "--transaction", str(t)],
        "cannot read it (Is a directory)",
    ),
    (
        "unknown-key",
        lambda t: ["--key", "no-such-key", "--hash", HASH],
        "--key no-such-key: no such key at http://127.0.0.1:",
    ),
    (
        "unknown-wallet",
        lambda t: ["--wallet", "wa-00000-00000-0000000000000000", "--hash", HASH],
        "--wallet wa-00000-00000-0000000000000000: no such wallet",
    ),
    (
        "deadline-unparsable",
        lambda t: ["--key", "evm-ops", "--hash", HASH, "--deadline", "soon"],
        "--deadline: 'soon' is neither a duration",
    ),
    (
        "deadline-past",
        lambda t: ["--key", "evm-ops", "--hash", HASH, "--deadline", "2020-01-01T00:00:00Z"],
        "--deadline: '2020-01-01T00:00:00Z' is in the past",
    ),
    (
        "callback-not-http",
        lambda t: ["--key", "evm-ops", "--hash", HASH, "--callback", "ftp://example.com/x"],
        "--callback: 'ftp://example.com/x' is not an http(s) URL",
    ),
    (
        "legacy-key-message",
        lambda t: ["--public-key", "legacy-evm", "--message", "0x68656c6c6f"],
        "a legacy public-key target signs only Hash requests, not Message",
    ),
    (
        "confirmed-needs-transaction",
        lambda t: ["--key", "evm-ops", "--hash", HASH, "--wait-for-confirmed"],
        "wait_for_confirmed needs a Transaction request",
    ),
    (
        "bad-network-name",
        lambda t: ["--key", "evm-ops", "--message", "0x01", "--network", "sepolia"],
        "--network/--blockchain-kind: network: String should match pattern",
    ),
    (
        "two-targets",
        lambda t: ["--key", "evm-ops", "--wallet", "evm-ops", "--hash", HASH],
        "argument --wallet: not allowed with argument --key",
    ),
    (
        "no-body",
        lambda t: ["--key", "evm-ops"],
        "one of the arguments --hash --message --eip712 --transaction is required",
    ),
]


@pytest.mark.parametrize(("case", "args", "message"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_exits_2_and_starts_nothing(
    case: str,
    args: Args,
    message: str,
    state_dir: Path,
    temporal: Client,
    tmp_path: Path,
) -> None:
    request_id = f"bad-{case}-{uuid.uuid4().hex[:8]}"
    result = cli(state_dir, "sign", *args(tmp_path), "--request-id", request_id)
    assert result.code == 2, result
    assert message in result.err
    assert "Traceback" not in result.err
    assert result.out == ""
    assert not await workflow_exists(temporal, request_id)


async def test_invalid_request_id_exits_2(state_dir: Path, temporal: Client) -> None:
    before = [wf.id async for wf in temporal.list_workflows()]
    result = cli(state_dir, "sign", "--key", "evm-ops", "--hash", HASH, "--request-id", "a b")
    assert result.code == 2
    assert "--request-id: a business key uses printable ASCII without spaces" in result.err
    assert [wf.id async for wf in temporal.list_workflows()] == before


def test_no_stack_and_no_credentials_exits_2(tmp_path: Path) -> None:
    result = cli(tmp_path / "nowhere", "sign", "--key", "evm-ops", "--hash", HASH)
    assert result.code == 2
    assert "no sandbox credentials at" in result.err
    assert "signgate dev" in result.err


def test_deadline_forms() -> None:
    now = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    assert parse_deadline("90s", now) == now + timedelta(seconds=90)
    assert parse_deadline("15m", now) == now + timedelta(minutes=15)
    assert parse_deadline("2h", now) == now + timedelta(hours=2)
    assert parse_deadline("1.5d", now) == now + timedelta(hours=36)
    assert parse_deadline("2030-01-02T00:00:00Z", now) == now + timedelta(days=1)
    with pytest.raises(CommandError, match="has no timezone"):
        parse_deadline("2030-01-02T00:00:00", now)
    with pytest.raises(CommandError, match="must be longer than zero"):
        parse_deadline("0s", now)
