"""Commands that run the sandbox say which extra to install when its packages are missing."""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from signgate.cli import main
from signgate.commands.common import CommandError, require_sandbox_extra


def _without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "jsonschema" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_the_sandbox_extra_is_present_in_the_dev_install() -> None:
    require_sandbox_extra("signgate sandbox")


def test_without_the_extra_the_error_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_jsonschema(monkeypatch)
    with pytest.raises(CommandError) as caught:
        require_sandbox_extra("signgate sandbox")
    assert caught.value.code == 2
    assert "pip install 'signgate[sandbox]'" in caught.value.message
    assert "signgate[local]" in caught.value.message


def test_signgate_sandbox_refuses_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _without_jsonschema(monkeypatch)
    database = tmp_path / "sandbox.db"
    code = main(["sandbox", "--port", "0", "--db", str(database)])
    assert code == 2
    err = capsys.readouterr().err
    assert "signgate sandbox runs the Dfns sandbox" in err
    assert "pip install 'signgate[sandbox]'" in err
    assert not database.exists()
