"""signgate's own metrics: every name, label and bucket in one place.

The engine's metrics go through Temporal's meters (``workflow.metric_meter()`` in
workflows, ``activity.metric_meter()`` in activities) and come out on the worker's
Prometheus endpoint (``SIGNGATE_METRICS_PORT``) next to Temporal's runtime metrics. A
workflow's meter does not emit while the workflow replays, so replaying a history adds
nothing; durations are measured with ``workflow.now()``. Counts are at least once, not
exactly once: a workflow task that Temporal refuses (a signal landed as it completed) or
that a dying worker did not finish runs again and records again.

Labels are bounded: outcome kinds, statuses, schemes, verdicts, route *templates*, status
classes and wake-up causes. No request id, workflow id, key id, token or body is ever a
label value (:func:`route_template` replaces every id in a Dfns path with ``{id}``).

How many requests wait now, and how old the oldest is, is not a gauge: each workflow is its
own writer and a gauge written by many would say whatever the last one said. Temporal's
visibility index answers it (:data:`WAITING_QUERY`, the ``SignGateStatus`` search
attribute), and ``signgate list --pending`` shows each waiting request's age.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from temporalio.common import MetricMeter

__all__ = [
    "APPROVAL_WAIT",
    "DFNS_CALLS",
    "DURATION_BUCKETS",
    "HTTP_LATENCY_BUCKETS",
    "OUTCOMES",
    "REQUESTS_SUBMITTED",
    "TIME_TO_OUTCOME",
    "VERIFICATIONS",
    "WAITING_QUERY",
    "WAKEUPS",
    "EngineMeter",
    "histogram_overrides",
    "route_template",
    "status_class",
]

REQUESTS_SUBMITTED: Final = "signgate_requests_submitted_total"
"""Requests created at Dfns (label ``target_kind``: key, wallet, public-key)."""
OUTCOMES: Final = "signgate_outcomes_total"
"""Requests that ended (label ``outcome``: an outcome kind, ``verification_failed`` or
``refused``)."""
TIME_TO_OUTCOME: Final = "signgate_time_to_outcome_seconds"
"""Workflow start to outcome, in seconds (label ``outcome``)."""
APPROVAL_WAIT: Final = "signgate_approval_wait_seconds"
"""Time a request with a policy approval spent ``Pending`` (label ``result``: the status it
moved to, lower case)."""
VERIFICATIONS: Final = "signgate_verifications_total"
"""Checks of returned signatures (labels ``scheme``, ``verdict``)."""
DFNS_CALLS: Final = "signgate_dfns_calls_total"
"""HTTP calls to Dfns (labels ``route`` template, ``method``, ``status_class``)."""
WAKEUPS: Final = "signgate_wakeups_total"
"""Why a waiting workflow looked at its request (label ``cause``: webhook, poll, deadline,
cancel)."""

WAITING_QUERY: Final = (
    "WorkflowType = 'SignatureWorkflow' AND ExecutionStatus = 'Running' "
    "AND SignGateStatus IN ('Pending', 'Executing')"
)
"""The visibility query of the requests waiting now (ordered by ``StartTime`` for the oldest)."""

DURATION_BUCKETS: Final[Sequence[float]] = (
    0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400, 7 * 86400,
)  # fmt: skip
"""Buckets (seconds) of the workflow histograms: a request settles in seconds or days."""
HTTP_LATENCY_BUCKETS: Final[Sequence[float]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip
"""Buckets (seconds) of the receiver's verification and signal latencies."""

_ID: Final = "{id}"
_STATIC_SEGMENTS: Final = frozenset(
    {
        "keys",
        "wallets",
        "public-keys",
        "signatures",
        "v2",
        "policy-approvals",
        "decisions",
        "webhooks",
        "ping",
        "events",
        "auth",
        "action",
        "init",
        "policies",
    }
)


def histogram_overrides() -> dict[str, Sequence[float]]:
    """Bucket boundaries for the Prometheus exporter (``PrometheusConfig``)."""
    return {TIME_TO_OUTCOME: DURATION_BUCKETS, APPROVAL_WAIT: DURATION_BUCKETS}


def route_template(path: str, base_path: str = "") -> str:
    """``/keys/key-1/signatures/sig-2`` -> ``/keys/{id}/signatures/{id}``.

    Every segment that is not one of Dfns's fixed route words becomes ``{id}``, so the
    label has a bounded set of values whatever ids the calls carry. ``base_path`` (the
    path of the configured base URL) is dropped first.
    """
    if base_path and base_path != "/" and path.startswith(base_path.rstrip("/")):
        path = path[len(base_path.rstrip("/")) :]
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(p if p in _STATIC_SEGMENTS else _ID for p in parts)


def status_class(status: int | None) -> str:
    """``2xx`` / ``3xx`` / ``4xx`` / ``5xx``, ``429`` on its own, ``transport`` for none."""
    if status is None:
        return "transport"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


class EngineMeter:
    """The workflow's metrics, recorded on the meter it is given (the workflow's)."""

    def __init__(self, meter: MetricMeter) -> None:
        self._submitted = meter.create_counter(REQUESTS_SUBMITTED, "Requests created at Dfns")
        self._outcomes = meter.create_counter(OUTCOMES, "Requests that ended, by outcome")
        self._time_to_outcome = meter.create_histogram_float(
            TIME_TO_OUTCOME, "Seconds from workflow start to outcome", "s"
        )
        self._approval_wait = meter.create_histogram_float(
            APPROVAL_WAIT, "Seconds a request with a policy approval spent Pending", "s"
        )
        self._verifications = meter.create_counter(
            VERIFICATIONS, "Checks of returned signatures, by scheme and verdict"
        )
        self._wakeups = meter.create_counter(WAKEUPS, "Why a waiting workflow looked again")

    def submitted(self, target_kind: str) -> None:
        """A request was created at Dfns."""
        self._submitted.add(1, {"target_kind": target_kind})

    def outcome(self, outcome: str, started_at: datetime, now: datetime) -> None:
        """The request ended with ``outcome``; ``started_at`` is the workflow's first start."""
        self._outcomes.add(1, {"outcome": outcome})
        self._time_to_outcome.record(_seconds(now - started_at), {"outcome": outcome})

    def approval_waited(self, waited: timedelta, result: str) -> None:
        """A request that waited for approval left ``Pending`` for ``result``."""
        self._approval_wait.record(_seconds(waited), {"result": result.lower()})

    def verification(self, scheme: str | None, verdict: str) -> None:
        """A returned signature was checked."""
        self._verifications.add(1, {"scheme": scheme or "unknown", "verdict": verdict})

    def wakeup(self, cause: str) -> None:
        """A waiting workflow looked at its request because of ``cause``."""
        self._wakeups.add(1, {"cause": cause})


def _seconds(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0)
