"""The metrics the shipped Grafana dashboard (``deploy/grafana/dashboards/signgate.json``) uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/signgate.json"
_METRIC = re.compile(r"\b(signgate_[a-z0-9_]+)")
_HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


def dashboard() -> dict[str, Any]:
    """The dashboard document."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions() -> list[str]:
    """Every PromQL expression of every panel."""
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def metric_names() -> set[str]:
    """The sample names the expressions read, as a scrape shows them."""
    return {name for expr in expressions() for name in _METRIC.findall(expr)}


def family(sample: str) -> str:
    """``x_bucket`` / ``x_count`` / ``x_sum`` -> ``x``; other names unchanged."""
    for part in _HISTOGRAM_PARTS:
        if sample.endswith(part):
            return sample[: -len(part)]
    return sample
