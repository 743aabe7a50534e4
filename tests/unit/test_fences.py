"""Each boundary fires on the breach it exists for, and the shipped code holds them all.

Two kinds of fence: the import lists in the ``ruff.toml`` of ``workflows/``,
``signgate/dfns/`` and ``signgate/sandbox/`` (checked by running ruff on a probe file placed
in that directory), and the syntax-tree rules of ``tools/fences.py``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import fences

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.fixture
def probe() -> Iterator[list[Path]]:
    """Probe files written into the source tree; removed afterwards whatever happens."""
    made: list[Path] = []
    yield made
    for path in made:
        path.unlink(missing_ok=True)


IMPORT_FENCES = [
    ("workflows", "import httpx"),
    ("workflows", "from signgate.dfns.client import DfnsClient"),
    ("workflows", "from signgate.dfns.auth import CredentialSigner"),
    ("workflows", "from activities.signing import SigningActivities"),
    ("workflows", "import signgate.webhook"),
    ("workflows", "from signgate.sandbox import server"),
    ("workflows", "import structlog"),
    ("signgate/dfns", "import temporalio"),
    ("signgate/dfns", "from temporalio.exceptions import ApplicationError"),
    ("signgate/dfns", "import activities.errors"),
    ("signgate/dfns", "from signgate.sandbox import db"),
    ("signgate/sandbox", "from signgate.dfns.client import DfnsClient"),
    ("signgate/sandbox", "import temporalio"),
    ("signgate/sandbox", "import workflows.signature"),
]


@pytest.mark.parametrize(("directory", "statement"), IMPORT_FENCES)
def test_an_import_across_a_fence_fails_the_lint(
    directory: str, statement: str, probe: list[Path]
) -> None:
    path = ROOT / directory / f"_fence_probe_{uuid.uuid4().hex[:8]}.py"
    probe.append(path)
    path.write_text(f'"""Probe."""\n\n{statement}\n')
    result = subprocess.run(  # noqa: S603 - the venv's ruff on our own probe file
        [str(RUFF), "check", "--no-cache", "--select", "TID251", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TID251" in result.stdout


def test_the_same_imports_are_allowed_where_they_belong(probe: list[Path]) -> None:
    path = ROOT / "activities" / f"_fence_probe_{uuid.uuid4().hex[:8]}.py"
    probe.append(path)
    path.write_text(
        '"""Probe."""\n\nimport httpx\nimport temporalio\n'
        "from signgate.dfns.client import DfnsClient\n\n"
        "__all__ = ['DfnsClient', 'httpx', 'temporalio']\n"
    )
    result = subprocess.run(  # noqa: S603 - the venv's ruff on our own probe file
        [str(RUFF), "check", "--no-cache", "--select", "TID251", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def _breaches(path: str, source: str) -> list[str]:
    return [b.rule for b in fences.check_source(Path(path), textwrap.dedent(source))]


def test_an_activity_that_maps_a_dfns_error_itself_is_caught() -> None:
    source = """
        async def submit(self):
            try:
                await self._dfns.submit()
            except DfnsError as exc:
                raise ApplicationError(str(exc), non_retryable=True) from None
    """
    assert _breaches("activities/signing.py", source) == ["dfns-error-mapping"]
    assert _breaches("activities/errors.py", source) == []


def test_reading_a_dfns_errors_status_or_cause_outside_the_mapper_is_caught() -> None:
    source = """
        def _retryable(exc: DfnsConnectionError) -> bool:
            return isinstance(exc.__cause__, httpx.ConnectError)

        async def deny(self):
            try:
                approval = await self._dfns.decide()
            except DfnsAPIError as exc:
                if exc.status == 409:
                    return approval.status
    """
    assert _breaches("activities/signing.py", source) == ["dfns-error-mapping"] * 2


def test_an_httpx_error_mapped_outside_the_mapper_is_caught() -> None:
    source = """
        async def deliver(self):
            try:
                await self._http.post(url)
            except (httpx.HTTPError, OSError):
                raise ApplicationError("callback failed")
    """
    assert _breaches("activities/downstream.py", source) == ["dfns-error-mapping"]


def test_an_unrelated_attribute_named_status_is_not_a_breach() -> None:
    source = """
        async def deny(self):
            try:
                approval = await self._dfns.decide()
            except DfnsAPIError as exc:
                if is_decision_conflict(exc):
                    return approval.status
                raise to_application_error(exc, action="deny") from None
    """
    assert _breaches("activities/signing.py", source) == []


def test_a_retry_policy_or_activity_call_outside_the_declarations_is_caught() -> None:
    source = """
        from temporalio import workflow
        from temporalio.common import RetryPolicy

        async def run(self):
            return await workflow.execute_activity(
                "submit", retry_policy=RetryPolicy(maximum_attempts=3)
            )
    """
    assert sorted(_breaches("workflows/signature.py", source)) == ["one-retry-rule"] * 2
    assert _breaches("signgate/activity_api.py", source) == []


def test_an_extras_package_imported_outside_its_part_is_caught() -> None:
    source = "import jsonschema\nfrom jsonschema.exceptions import ValidationError\n"
    assert _breaches("signgate/webhook/app.py", source) == ["extra-imports"] * 2
    assert _breaches("signgate/sandbox/validation.py", source) == []
    sdk = "from opentelemetry.sdk.trace import TracerProvider\nimport opentelemetry.exporter.otlp\n"
    assert _breaches("activities/metering.py", sdk) == ["extra-imports"] * 2
    assert _breaches("signgate/tracing.py", sdk) == []
    api = "from opentelemetry import trace\nimport opentelemetry.context\n"
    assert _breaches("activities/metering.py", api) == [], "the API is a dependency"


def test_a_local_activity_outside_the_declarations_is_caught() -> None:
    source = """
        from temporalio import workflow

        async def run(self):
            return await workflow.execute_local_activity("read_and_verify")
    """
    assert _breaches("workflows/signature.py", source) == ["one-retry-rule"]


def test_the_callers_api_importing_engine_code_is_caught() -> None:
    source = "from workflows.signature import SignatureWorkflow\nimport activities.signing\n"
    source += "from signgate.sandbox.server import SandboxServer\nimport signgate.contracts\n"
    assert _breaches("signgate/client.py", source) == ["caller-imports"] * 3
    assert _breaches("signgate/commands/sign.py", source) == []


def test_a_test_module_that_reads_the_clock_at_import_is_caught() -> None:
    source = """
        import time
        from datetime import datetime

        NOW = time.time()
        STARTED = datetime.now()

        class Case:
            at = time.monotonic()

        def test_fresh(later=time.time()):
            assert time.time() >= NOW
            stamp = lambda: datetime.now()
    """
    assert _breaches("tests/webhook/test_verify.py", source) == ["clock-at-import"] * 4
    assert _breaches("signgate/webhook/verify.py", source) == []


def test_virtual_time_passes_only_through_skip_time() -> None:
    source = """
        import asyncio

        async def test_waits(ts_env, engine):
            await ts_env.sleep(timedelta(hours=1))
            await engine.env.sleep(60)
            server = ts_env
            await server.sleep(60)
            await WorkflowEnvironment.sleep(ts_env, 60)
            await ts_env.client.test_service.unlock_time_skipping_with_sleep(request)
            await ts_env.client.test_service.sleep_until(request)
            nap = ts_env.sleep
            await getattr(engine.env, "sleep")(60)
            await skip_time(ts_env, timedelta(hours=1))
            await asyncio.sleep(0)
            await workflow.sleep(1)
            pause = asyncio.sleep
            fake.sleep = pause
    """
    assert _breaches("tests/workflows/test_x.py", source) == ["virtual-time"] * 8
    assert _breaches("tests/support/temporal.py", source) == []
    assert _breaches("signgate/demo.py", source) == []


def test_a_workflow_patch_before_release_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    source = """
        from temporalio import workflow
        from temporalio.workflow import deprecate_patch, patched

        def run(self):
            if workflow.patched(ids.BUDGET_QUEUES_READS_PATCH):
                pass
            if workflow.patched("signgate-new-timer"):
                pass
            if patched(ids.NEW_TIMER_PATCH):
                pass
            deprecate_patch(id=ids.OLD_PATCH)
            workflow.patched(ids.NOT_A_PATCH_NAME)
            workflow.deprecate_patch(ids.BUDGET_QUEUES_READS_PATCH)
    """
    assert _breaches("workflows/signature.py", source) == ["recorded-patches-only"] * 5
    assert _breaches("tests/replay/changed_workflow.py", source) == []
    monkeypatch.setattr(fences, "RELEASED", True)
    # Released: versioning patches are allowed as ids constants; a literal id still is not,
    # and the recorded decision is never deprecated.
    assert _breaches("workflows/signature.py", source) == ["recorded-patches-only"] * 3


def test_a_patch_function_taken_by_reference_is_caught() -> None:
    source = """
        import functools
        from temporalio import workflow
        from temporalio.workflow import patched as is_patched

        ask = workflow.patched
        later = functools.partial(workflow.deprecate_patch, "signgate-old")
        looked_up = getattr(workflow, "patched")
    """
    assert _breaches("workflows/signature.py", source) == ["recorded-patches-only"] * 4


def test_the_shipped_code_holds_every_fence() -> None:
    assert [str(b) for b in fences.check_tree(ROOT)] == []
