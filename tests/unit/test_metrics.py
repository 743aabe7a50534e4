"""signgate.metrics: route templates and status classes keep every label bounded."""

from __future__ import annotations

import pytest

from signgate.metrics import route_template, status_class


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/keys/key-abc/signatures", "/keys/{id}/signatures"),
        ("/keys/key-abc/signatures/sig-123", "/keys/{id}/signatures/{id}"),
        ("/wallets/wa-1/signatures/sig-2", "/wallets/{id}/signatures/{id}"),
        ("/public-keys/pk-1/signatures", "/public-keys/{id}/signatures"),
        ("/v2/policy-approvals/ap-9/decisions", "/v2/policy-approvals/{id}/decisions"),
        ("/keys/key-abc", "/keys/{id}"),
        ("/auth/action/init", "/auth/action/init"),
        ("/something/unexpected-token-value", "/{id}/{id}"),
    ],
)
def test_route_template_replaces_every_id(path: str, template: str) -> None:
    assert route_template(path) == template


def test_route_template_drops_the_base_path() -> None:
    assert route_template("/dfns/keys/k1/signatures", "/dfns") == "/keys/{id}/signatures"
    assert route_template("/keys/k1", "/") == "/keys/{id}"


@pytest.mark.parametrize(
    ("status", "klass"),
    [
        (200, "2xx"),
        (201, "2xx"),
        (404, "4xx"),
        (409, "4xx"),
        (429, "429"),
        (503, "5xx"),
        (None, "transport"),
    ],
)
def test_status_class_counts_429_on_its_own(status: int | None, klass: str) -> None:
    assert status_class(status) == klass
