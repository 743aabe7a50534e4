"""The boundaries ruff's banned-import lists cannot express, checked on the syntax tree.

Run by ``make lint`` (``python -m tools.fences``); exits 1 and prints ``path:line: rule``
for every breach. The import fences (what each layer may import) live in the ``ruff.toml``
of ``workflows/``, ``signgate/dfns/`` and ``signgate/sandbox/``; ARCHITECTURE.md lists them.

Rules:

``dfns-error-mapping``
    Only ``activities/errors.py`` turns a Dfns or HTTP error into an ``ApplicationError``:
    elsewhere under ``activities/``, an ``except`` clause that catches a ``Dfns*Error`` or an
    ``httpx`` error, or a function that takes one as a parameter, builds no
    ``ApplicationError`` and reads no ``__cause__`` or ``status``. One table then decides
    which failures are retried.
``extra-imports``
    A package that only an extra installs is imported only by the part that extra is for:
    ``jsonschema`` (extra ``sandbox``) under ``signgate/sandbox/``, the OpenTelemetry SDK
    and exporter (extra ``tracing``) in ``signgate/tracing.py``. The production install
    (``pip install signgate``) then imports everything it ships.
``caller-imports``
    ``signgate/client.py``, the API a caller's process imports, imports no workflow,
    activity, worker or sandbox code: a caller runs no worker and needs none of it.
``clock-at-import`` (tests only)
    No test module reads the clock while it is imported (a module-level ``time.time()``,
    ``time.monotonic()``, ``datetime.now()``...): a suite that takes minutes to reach the
    test would see a stale "now". Read it inside the test.
``virtual-time`` (tests only)
    Virtual time passes on a time-skipping server only through
    ``tests.support.temporal.skip_time``, never ``WorkflowEnvironment.sleep``: that call sets
    no RPC timeout, so the client's 30 s default fails a test when a busy machine takes
    longer to run what hours of virtual time hold.
``recorded-patches-only`` (shipped code)
    signgate is unreleased: a workflow change replaces the old code and re-records the replay
    histories, so ``workflow.patched`` is asked only for a patch id that records a worker's
    decision (``RECORDED_DECISIONS``), never to keep an old code path beside a new one, and
    ``workflow.deprecate_patch`` never for one of those. From the first release on, set
    ``RELEASED = True``: any ``ids.<NAME>_PATCH`` constant is then allowed (ARCHITECTURE's
    versioning discipline), a literal id never. The patch functions are called directly, so
    each call's id can be read (not that the constant exists: mypy checks that).
``one-retry-rule``
    ``RetryPolicy`` is built, and activities are started, only in
    ``signgate/activity_api.py``: the retry rule ("a retryable error never decides an
    outcome") has one place in code, and so does the Dfns budget (an activity that calls
    Dfns is started on its lane's rate-limited task queue, never as a local activity).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ERROR_MAPPER = Path("activities/errors.py")
SKIP_TIME_HOME = Path("tests/support/temporal.py")
_SKIP_RPCS = frozenset({"unlock_time_skipping_with_sleep", "sleep_until"})
_PLAIN_SLEEPS = frozenset({"asyncio", "time", "workflow", "anyio", "trio"})
ACTIVITY_API = Path("signgate/activity_api.py")
RELEASED = False
"""Whether signgate has had its first release (see ``recorded-patches-only``)."""
RECORDED_DECISIONS = frozenset({"ids.BUDGET_QUEUES_READS_PATCH"})
"""Patch ids that record a worker's decision rather than a code version: never deprecated."""
_PATCH_CALLS = frozenset({"patched", "deprecate_patch"})
_PATCH_CONSTANT = re.compile(r"ids\.[A-Z][A-Z0-9_]*_PATCH")
CHECKED = ("activities", "workflows", "signgate", "worker.py", "tests")
"""What the rules read: the shipped code, and the tests for the rule about them."""

_DFNS_ERROR = re.compile(r"^Dfns\w*Error$")
_STARTS_ACTIVITY = {
    "start_activity",
    "execute_activity",
    "start_local_activity",
    "execute_local_activity",
}
_START_ACTIVITY_OWNERS = {"workflow"}


@dataclass(frozen=True)
class Breach:
    path: Path
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


def _names(node: ast.expr | None) -> Iterator[str]:
    """The dotted names an ``except`` clause or an annotation mentions."""
    if node is None:
        return
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
            yield f"{sub.value.id}.{sub.attr}"
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield from re.findall(r"[\w.]+", sub.value)


def _is_transport_error(name: str) -> bool:
    return bool(_DFNS_ERROR.match(name.rsplit(".", 1)[-1])) or name.startswith("httpx.")


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _mapping_breaches(
    path: Path, body: Iterable[ast.AST], error: str | None, why: str
) -> Iterator[Breach]:
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and _called_name(node) == "ApplicationError":
                yield Breach(
                    path,
                    node.lineno,
                    "dfns-error-mapping",
                    f"ApplicationError built from {why}; map it in {ERROR_MAPPER}",
                )
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in ("__cause__", "status")
                and isinstance(node.value, ast.Name)
                and node.value.id == error
            ):
                yield Breach(
                    path,
                    node.lineno,
                    "dfns-error-mapping",
                    f"reads .{node.attr} of {why}; decide on it in {ERROR_MAPPER}",
                )


def check_error_mapping(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``dfns-error-mapping`` for one module under ``activities/``."""
    if path == ERROR_MAPPER or path.parts[0] != "activities":
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            caught = [n for n in _names(node.type) if _is_transport_error(n)]
            if caught:
                yield from _mapping_breaches(path, node.body, node.name, f"a caught {caught[0]}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            for arg in args:
                typed = [n for n in _names(arg.annotation) if _is_transport_error(n)]
                if typed:
                    why = f"a {typed[0]} parameter"
                    yield from _mapping_breaches(path, node.body, arg.arg, why)


def check_retry_rule(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``one-retry-rule`` for one module."""
    if path == ACTIVITY_API or path.parts[0] == "tests":
        return
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _called_name(node)
        if name == "RetryPolicy":
            yield Breach(
                path,
                node.lineno,
                "one-retry-rule",
                f"RetryPolicy built outside {ACTIVITY_API}: declare the policy there",
            )
        elif (
            name in _STARTS_ACTIVITY
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in _START_ACTIVITY_OWNERS
        ):
            yield Breach(
                path,
                node.lineno,
                "one-retry-rule",
                f"workflow.{name} outside {ACTIVITY_API}: call the activity's ref (.run/.start)",
            )


EXTRA_ONLY = {
    "jsonschema": Path("signgate/sandbox"),
    "opentelemetry.sdk": Path("signgate/tracing.py"),
    "opentelemetry.exporter": Path("signgate/tracing.py"),
}
"""Packages of an optional extra, and the one directory or module that may import each."""


def check_extra_imports(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``extra-imports`` for one module."""
    if path.parts[0] == "tests":
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        else:
            continue
        for module in modules:
            for package, home in EXTRA_ONLY.items():
                if module != package and not module.startswith(f"{package}."):
                    continue
                if home != path and home not in path.parents:
                    yield Breach(
                        path,
                        node.lineno,
                        "extra-imports",
                        f"{package} comes with an optional extra and may be imported only "
                        f"in {home}",
                    )


CALLER_API = Path("signgate/client.py")
_CALLER_BANNED = ("workflows", "activities", "worker", "signgate.sandbox")


def check_caller_imports(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``caller-imports`` for ``signgate/client.py``."""
    if path != CALLER_API:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        else:
            continue
        for module in modules:
            banned = next(
                (
                    b
                    for b in _CALLER_BANNED
                    if module.split(".")[: b.count(".") + 1] == b.split(".")
                ),
                None,
            )
            if banned is not None:
                yield Breach(
                    path,
                    node.lineno,
                    "caller-imports",
                    f"{module}: the caller's API must not import {banned} (callers run no worker)",
                )


_CLOCK_READS = {"time", "monotonic", "perf_counter", "now", "utcnow", "today", "time_ns"}
_CLOCK_OWNERS = {"time", "datetime", "date"}


def _import_time_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes Python runs while importing the module: not function bodies or lambdas."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending.extend(node.decorator_list)
            pending.extend(d for d in node.args.defaults + node.args.kw_defaults if d)
            continue
        if isinstance(node, ast.Lambda):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def check_clock_at_import(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``clock-at-import`` for one test module."""
    if path.parts[0] != "tests" or not isinstance(tree, ast.Module):
        return
    for node in _import_time_nodes(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _CLOCK_READS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in _CLOCK_OWNERS
        ):
            yield Breach(
                path,
                node.lineno,
                "clock-at-import",
                f"{node.func.value.id}.{node.func.attr}() runs at import; read the clock inside "
                "the test (or use a fixed instant)",
            )


def check_virtual_time(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``virtual-time`` for one test module.

    Any ``X.sleep(...)`` but ``asyncio``'s, ``time``'s, ``workflow``'s, ``anyio``'s and
    ``trio``'s is taken for a test environment's, whatever the receiver is called (an alias
    of the environment, or ``WorkflowEnvironment.sleep(env, ...)``), and the raw test-service
    RPCs ``unlock_time_skipping_with_sleep`` and ``sleep_until`` are ``skip_time``'s module's
    own. A reference counts as a call (``s = env.sleep``, ``getattr(env, "sleep")``);
    ``getattr`` with a computed name is not seen, and ``import asyncio as aio`` would need
    ``aio.sleep`` allowed (no test imports it so).
    """
    if path.parts[0] != "tests" or path == SKIP_TIME_HOME:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _SKIP_RPCS:
            yield Breach(
                path,
                node.lineno,
                "virtual-time",
                f"{node.attr} is called only by "
                "tests.support.temporal.skip_time(env, duration), which sets its RPC timeout",
            )
            continue
        if isinstance(node, ast.Attribute) and node.attr == "sleep":
            if isinstance(node.ctx, ast.Store | ast.Del):
                continue  # a fake's own attribute being set, not a sleep being taken
            receiver = ast.unparse(node.value)
        elif (
            isinstance(node, ast.Call)
            and _called_name(node) == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "sleep"
        ):
            receiver = ast.unparse(node.args[0])
        else:
            continue
        if receiver not in _PLAIN_SLEEPS:
            yield Breach(
                path,
                node.lineno,
                "virtual-time",
                f"{receiver}.sleep is a test environment's, with the client's 30 s RPC "
                "timeout; use tests.support.temporal.skip_time(env, duration)",
            )


def check_patches(path: Path, tree: ast.AST) -> Iterator[Breach]:
    """``recorded-patches-only`` for one shipped module.

    Only a direct call can be judged by its id: a patch function taken by reference
    (``f = workflow.patched``, ``functools.partial(...)``, ``getattr(workflow, "patched")``,
    an import under another name) is a breach of its own.
    """
    if path.parts[0] == "tests":
        return
    called: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in _PATCH_CALLS:
            called.add(id(node.func))
            yield from _patch_call_breaches(path, node)
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr | ast.stmt):
            continue
        name = None
        if isinstance(node, ast.Attribute | ast.Name) and id(node) not in called:
            name = node.attr if isinstance(node, ast.Attribute) else node.id
        elif isinstance(node, ast.ImportFrom):
            renamed = [a.name for a in node.names if a.asname and a.asname != a.name]
            name = next((n for n in renamed if n in _PATCH_CALLS), None)
        elif (
            isinstance(node, ast.Call)
            and _called_name(node) == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            name = node.args[1].value if isinstance(node.args[1].value, str) else None
        if name in _PATCH_CALLS:
            yield Breach(
                path,
                node.lineno,
                "recorded-patches-only",
                f"{name} is called directly, as workflow.{name}(ids.<NAME>_PATCH), so the "
                "fence can read its id",
            )


def _patch_call_breaches(path: Path, node: ast.Call) -> Iterator[Breach]:
    function = _called_name(node)
    args = [*node.args, *(k.value for k in node.keywords if k.arg == "id")]
    patch_id = ast.unparse(args[0]) if args else ""
    if patch_id in RECORDED_DECISIONS:
        if function == "patched":
            return
        why = "it records a worker's decision, not a code version: it is never deprecated"
    elif RELEASED and _PATCH_CONSTANT.fullmatch(patch_id):
        return
    elif RELEASED:
        why = "a patch id is an ids.<NAME>_PATCH constant of signgate/ids.py, never a literal"
    else:
        why = (
            "signgate is unreleased: change the workflow in place and re-record the replay "
            "histories (python -m tests.replay.record); workflow.patched is asked only for "
            f"{', '.join(sorted(RECORDED_DECISIONS))}"
        )
    yield Breach(path, node.lineno, "recorded-patches-only", f"{patch_id or '?'}: {why}")


RULES = (
    check_error_mapping,
    check_retry_rule,
    check_extra_imports,
    check_caller_imports,
    check_clock_at_import,
    check_virtual_time,
    check_patches,
)


def check_source(path: Path, source: str) -> list[Breach]:
    """Every breach in one module; ``path`` is relative to the repository root."""
    tree = ast.parse(source, filename=str(path))
    return [breach for rule in RULES for breach in rule(path, tree)]


def _modules(root: Path) -> Iterator[Path]:
    for entry in CHECKED:
        target = root / entry
        if target.is_file():
            yield target
        else:
            yield from sorted(target.rglob("*.py"))


def check_tree(root: Path = ROOT) -> list[Breach]:
    """Every breach in the shipped code under ``root``."""
    breaches: list[Breach] = []
    for module in _modules(root):
        relative = module.relative_to(root)
        breaches.extend(check_source(relative, module.read_text(encoding="utf-8")))
    return breaches


def main() -> int:
    breaches = check_tree()
    for breach in breaches:
        print(breach)
    if breaches:
        print(f"{len(breaches)} fence breach(es); see tools/fences.py and ARCHITECTURE.md")
        return 1
    print("fences: all hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
