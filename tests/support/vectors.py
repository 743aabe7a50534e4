"""Published test vectors from ``tests/fixtures/vectors`` (see its README for sources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "fixtures" / "vectors"


def load(name: str) -> Any:
    """One vector file, parsed."""
    return json.loads((VECTORS / name).read_text())


def ether_mail() -> tuple[dict[str, Any], str]:
    """EIP-712's "Ether Mail" example in Dfns's ``Eip712`` shape, and its published digest.

    Dfns's request carries ``types`` without ``EIP712Domain`` (the domain's type follows from
    its fields) and no ``primaryType`` (the one type no other type references).
    """
    vector = load("eip712-ether-mail.json")
    typed = vector["typedData"]
    types = {name: fields for name, fields in typed["types"].items() if name != "EIP712Domain"}
    body = {"types": types, "domain": typed["domain"], "message": typed["message"]}
    return body, str(vector["expected"]["digest"])
