"""Loaders for the vendored seed pages and spec schemas under ``tests/fixtures``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
SEEDS_DIR = FIXTURES_DIR / "seeds"
SPEC_DIR = FIXTURES_DIR / "spec"

_FENCED = re.compile(r"^```(?:json|JSON|shell)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_UNFENCED = re.compile(r"^\{\n.*?^\}$", re.MULTILINE | re.DOTALL)
# The one documented repair: a trailing comma directly before a closing brace.
_TRAILING_COMMA = re.compile(r",(\s*\})")


@dataclass(frozen=True)
class SeedExample:
    """One JSON example found in a seed page."""

    seed: str
    index: int
    data: Any
    repaired: bool


def _parse(text: str) -> tuple[Any, bool]:
    try:
        return json.loads(text), False
    except json.JSONDecodeError:
        return json.loads(_TRAILING_COMMA.sub(r"\1", text)), True


@cache
def seed_examples() -> tuple[SeedExample, ...]:
    """Every JSON example of every seed, in file then page order.

    Pages with code fences contribute their ```json / ```JSON / ```shell blocks that hold a
    JSON object; a page without fences (the plain-text rendering) contributes each object
    that starts with ``{`` and ends with ``}`` at the start of a line.
    """
    examples = []
    for path in sorted(SEEDS_DIR.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if "```" in text:
            blocks = [m.group(1) for m in _FENCED.finditer(text)]
            blocks = [b for b in blocks if b.lstrip().startswith("{")]
        else:
            blocks = [m.group(0) for m in _UNFENCED.finditer(text)]
        for index, block in enumerate(blocks):
            data, repaired = _parse(block)
            examples.append(SeedExample(path.stem, index, data, repaired))
    return tuple(examples)


@cache
def spec_fixture(name: str) -> dict[str, Any]:
    """The vendored fixture ``spec/<name>.json`` (``{"source": ..., "schema": ...}``)."""
    loaded: dict[str, Any] = json.loads((SPEC_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def spec_schema(name: str) -> dict[str, Any]:
    """The schema of the vendored fixture ``spec/<name>.json``."""
    schema: dict[str, Any] = spec_fixture(name)["schema"]
    return schema
