"""``signgate sandbox``: flags, errors, and a real start in a subprocess."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from signgate.cli import main
from tests.sandbox.helpers import ORG_FILE


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--error-rate", "2"], "argument --error-rate: 2 is not a probability between 0 and 1"),
        (["--port", "70000"], "argument --port: 70000 is not a TCP port"),
        (["--drop-after-commit", "-1"], "argument --drop-after-commit: -1 must be >= 0"),
        (["--block-response", "maybe"], "argument --block-response: invalid choice"),
        (["--clock-scale", "0"], "argument --clock-scale: 0 must be > 0"),
    ],
)
def test_bad_flags_exit_2_with_a_reason(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sandbox", *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unreadable_org_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sandbox", "--config", str(tmp_path / "nope.toml"), "--db", str(tmp_path / "db")])
    assert code == 2
    assert "cannot read the org file" in capsys.readouterr().err


def test_bad_org_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    org = tmp_path / "org.toml"
    org.write_text(ORG_FILE.read_text().replace('credential = "RSA"', 'credential = "DSA"'))
    code = main(["sandbox", "--config", str(org), "--db", str(tmp_path / "db")])
    assert code == 2
    assert "users[2].credential: 'DSA' is not one of" in capsys.readouterr().err


def test_no_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "sandbox" in capsys.readouterr().err


def test_sandbox_command_serves_and_writes_credentials(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "signgate.cli",
        "sandbox",
        "--port",
        "0",
        "--db",
        str(tmp_path / "state" / "sb.db"),
        "--config",
        str(ORG_FILE),
        "--log-format",
        "json",
        "--rate-429",
        "0.25",
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("signgate sandbox listening on http://127.0.0.1:")
        base_url = lines[0].split()[-1]
        credentials = Path(lines[2].split(": ", 1)[1].strip())
        assert credentials == (tmp_path / "state" / "sb-credentials.json").resolve()
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        faults = httpx.get(f"{base_url}/_local/faults", timeout=5).json()
        assert faults["rate429"] == 0.25
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
