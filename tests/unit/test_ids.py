"""signgate.ids: externalId derivation and workflow-id rules."""

from __future__ import annotations

import pytest

from signgate.ids import (
    EXTERNAL_ID_MAX_LENGTH,
    SEARCH_ATTRIBUTES,
    child_signature_workflow_id,
    external_id_for,
    signature_workflow_id,
)


@pytest.mark.parametrize(
    "key",
    ["payout-2026-11-21-0001", "x", "Ünïcödé key with spaces / and slashes", "k" * 5000, "----"],
)
def test_external_ids_are_deterministic_and_fit_dfns(key: str) -> None:
    first = external_id_for(key)
    assert first == external_id_for(key)
    assert 1 <= len(first) <= EXTERNAL_ID_MAX_LENGTH
    assert first.startswith("sg-")
    assert first.isascii()


def test_external_ids_keep_a_readable_slug_and_differ_per_key() -> None:
    assert external_id_for("Payout 42/EUR").startswith("sg-payout-42-eur-")
    keys = [f"payout-{i}" for i in range(2000)] + ["payout-1 ", "PAYOUT-1", "payout-1"]
    assert len({external_id_for(k) for k in keys}) == 2002
    # Same slug, different keys: the hash tells them apart.
    assert external_id_for("a" * 40 + "1") != external_id_for("a" * 40 + "2")


def test_an_empty_idempotency_key_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        external_id_for("")


def test_workflow_ids_are_the_business_key() -> None:
    assert signature_workflow_id("payout-42") == "payout-42"
    assert child_signature_workflow_id("payout-42") == "payout-42/signature"
    for bad in ("", "has space", "x" * 201, "tab\there"):
        with pytest.raises(ValueError):
            signature_workflow_id(bad)


def test_search_attributes_are_distinct_keywords() -> None:
    names = [key.name for key in SEARCH_ATTRIBUTES]
    assert len(names) == len(set(names)) == 6
    assert all(name.startswith("SignGate") for name in names)
