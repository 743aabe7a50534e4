"""The activity declarations of ``signgate.activity_api`` and the implementations bound to them."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity

from activities.downstream import DownstreamActivities
from activities.payout import build_evm_transfer
from activities.reconciling import ReconcilerActivities
from activities.signing import SigningActivities
from activities.verification import VerificationActivities
from signgate import activity_api as api
from tests.workflows.fakes import FakeDfns


def _implementations() -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = [build_evm_transfer]
    for cls in (
        SigningActivities,
        VerificationActivities,
        DownstreamActivities,
        ReconcilerActivities,
    ):
        found += [
            fn
            for _, fn in inspect.getmembers(cls, inspect.isfunction)
            if activity._Definition.from_callable(fn) is not None
        ]
    return found


def test_every_declaration_has_one_implementation_with_its_types() -> None:
    by_name = {ref.name: ref for ref in api.ALL}
    seen: list[str] = []
    for fn in _implementations():
        name = str(activity._Definition.must_from_callable(fn).name)
        ref = by_name[name]
        hints = typing.get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert [hints[p] for p in params] == [ref.input_type], name
        assert hints["return"] is ref.result_type, name
        seen.append(name)
    assert sorted(seen) == sorted(by_name), "every declared activity is implemented once"


@pytest.mark.parametrize("ref", api.ALL, ids=lambda r: r.name)
def test_no_bounded_activity_can_end_a_workflow(ref: api.ActivityRef[Any, Any]) -> None:
    """The rule: retry without limit, or fail to a caller that records it and goes on."""
    if ref.retry.maximum_attempts != 0:
        assert ref.on_failure == "recorded", f"{ref.name} gives up but is not recorded"
    else:
        assert ref.on_failure == "never"


def test_the_workflow_fakes_implement_the_same_declarations() -> None:
    names = {
        str(activity._Definition.must_from_callable(fn).name) for fn in FakeDfns().activities()
    }
    assert names <= {ref.name for ref in api.ALL}


def test_every_activity_that_holds_the_dfns_client_runs_on_a_dfns_lane() -> None:
    """What calls Dfns is rate-limited by its lane's task queue; nothing else is."""
    for fn in _implementations():
        holds_dfns = (
            fn.__qualname__.split(".")[0]
            in (
                "SigningActivities",
                "VerificationActivities",
            )
            or fn.__qualname__ == "ReconcilerActivities.pending_approvals"
        ) and fn.__qualname__ != "VerificationActivities.verify_carried"
        # verify_carried is a local activity with no Dfns call unless its input allows the
        # key's read, which the workflow allows only where reads are not budgeted (as for
        # any local read); tests/unit/activities/test_verification.py holds it to that.
        name = activity._Definition.must_from_callable(fn).name
        assert (api.lane_of(fn) is not None) == holds_dfns, name
    for ref in api.ALL:
        assert (ref.lane is None) == (ref.dfns_calls == 0), ref.name


def test_lane_of_reads_bound_methods_and_the_fakes_alike() -> None:
    fake = FakeDfns()
    assert api.lane_of(fake.submit) == "writes"
    assert api.lane_of(fake.read_and_verify) == "reads"
    assert api.lane_of(fake.deliver_callback) is None
    assert api.lane_of(build_evm_transfer) is None
    assert api.lane_calls("writes") == 3  # challenge, signed answer, then the request or decision
    assert api.lane_calls("reads") == 1
