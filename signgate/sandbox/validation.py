"""Request-body validation against the Dfns spec slices shipped in ``schemas/``.

A schema is named by its file (``"generate-signature.request"``) or by a file and one of
its top-level entries (``"policies#createPolicyBody"``). One problem becomes a 400 whose
message names the field, e.g. ``body.hash: '0x12' does not match '^(0x)?[0-9a-fA-F]{64}$'``
or ``body.action.approvalGroups[0].quorum: 0 is less than the minimum of 1``. When a body
has several, the shallowest is named (spec order among equals), a wrong discriminator
before the other problems of its object; a value that is not an object reads
``must be a JSON object``.

Discriminated ``oneOf`` unions (every branch pins ``activityKind`` or ``kind`` with an
``enum``: the signature request ``kind``, ``firstFactor.kind``, a policy's ``activityKind``,
``rule.kind`` and ``action.kind``) are followed down the branch the body names. That makes
the message about that branch rather than a bare "is not valid under any of the given
schemas", and it is also what keeps validation cheap: the validators built here check only
the named branch, which is equivalent because the branches' enums are disjoint.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from signgate.sandbox.errors import SandboxError

_MAX_LISTED = 12
# Tried in this order: a policy body's branches pin ``activityKind`` and each has a ``kind``
# deeper down, never at its own level.
_DISCRIMINATORS = ("activityKind", "kind")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema from ``signgate/sandbox/schemas``: ``"file"`` or ``"file#entry"``."""
    file, _, entry = name.partition("#")
    if entry:
        part: dict[str, Any] = load_schema(file)[entry]
        return part
    text = (
        resources.files("signgate.sandbox").joinpath("schemas", f"{file}.json").read_text("utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _discriminator(branches: Sequence[Any]) -> str | None:
    for name in _DISCRIMINATORS:
        if all(
            isinstance(branch, dict) and "enum" in branch.get("properties", {}).get(name, {})
            for branch in branches
        ):
            return name
    return None


# id(branches) -> (branches, discriminator, {value: branch index} when the enums are disjoint)
_UNIONS: dict[int, tuple[Sequence[Any], str | None, dict[str, int]]] = {}


def _chosen_branch(branches: Sequence[Any], instance: Any) -> int | None:
    """The one branch a discriminated union's instance names, if exactly one."""
    known = _UNIONS.get(id(branches))
    if known is None or known[0] is not branches:
        name = _discriminator(branches)
        index: dict[str, int] = {}
        values = [v for b in branches for v in b["properties"][name]["enum"]] if name else []
        if name is not None and len(values) == len(set(values)):
            index = {v: i for i, b in enumerate(branches) for v in b["properties"][name]["enum"]}
        # The schemas live for the whole process, so their ids are never reused.
        known = _UNIONS[id(branches)] = (branches, name, index)
    _, name, index = known
    if name is None or not isinstance(instance, dict):
        return None
    value = instance.get(name)
    return index.get(value) if isinstance(value, str) else None


_ONE_OF = Draft202012Validator.VALIDATORS["oneOf"]


def _one_of(
    validator: Validator, branches: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    # Only the named branch can match: the others' discriminator enums exclude the value.
    chosen = _chosen_branch(branches, instance)
    if chosen is None:
        yield from _ONE_OF(validator, branches, instance, schema)
        return
    errors = list(validator.descend(instance, branches[chosen], schema_path=chosen))
    if errors:
        yield ValidationError(
            f"{instance!r} is not valid under any of the given schemas", context=errors
        )


_Validator = validators.extend(Draft202012Validator, {"oneOf": _one_of})


@functools.cache
def validator(name: str) -> Validator:
    """The compiled validator for schema ``name`` (built once per process)."""
    built: Validator = _Validator(load_schema(name))
    return built


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a body: the field (``body.rule.kind``) and what."""

    field: str
    problem: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.problem}"


def validate(name: str, instance: Any, *, root: str = "body", field_details: bool = False) -> None:
    """Raise a 400 naming the first problem when ``instance`` does not match ``name``.

    ``field_details`` adds ``details: {"field": ...}`` to the error (the policy routes do).
    """
    problem = first_problem(name, instance, root=root)
    if problem is not None:
        details = {"field": problem.field} if field_details else None
        raise SandboxError(400, problem.message, details=details)


def first_problem(name: str, instance: Any, *, root: str = "body") -> Problem | None:
    """What :func:`validate` would report, or ``None`` when ``instance`` is valid."""
    errors = list(validator(name).iter_errors(instance))
    if not errors:
        return None
    path, problem = _describe(min(errors, key=_order))
    return Problem(_join(root, path), problem)


def _order(error: ValidationError) -> tuple[int, int]:
    # Shallow errors first: they are what a reader fixes first (``min`` keeps spec order).
    # A wrong discriminator (``action.kind``) ranks with its object's own errors and before
    # them: which fields are required depends on it.
    path = error.absolute_path
    on_discriminator = error.validator == "enum" and bool(path) and path[-1] in _DISCRIMINATORS
    return (len(path) - 1, 0) if on_discriminator else (len(path), 1)


def _join(root: str, path: Iterable[Any]) -> str:
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _short(values: Sequence[Any]) -> str:
    if len(values) <= _MAX_LISTED:
        return repr(list(values))
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED])
    return f"[{shown}, ... ({len(values)} values; see the Dfns spec)]"


def _describe(error: ValidationError) -> tuple[list[Any], str]:
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator in ("oneOf", "anyOf"):
        return _describe_union(error, path)
    if error.validator == "required" and isinstance(instance, dict):
        missing = [n for n in error.validator_value if n not in instance]
        if missing:
            return [*path, missing[0]], "is required"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extras = [n for n in instance if n not in known]
        if extras:
            return [*path, extras[0]], "is not allowed (unknown field)"
    if error.validator == "enum":
        return path, f"{instance!r} is not one of {_short(error.validator_value)}"
    if error.validator == "type" and error.validator_value == "object":
        return path, "must be a JSON object"
    return path, error.message


def _describe_union(error: ValidationError, path: list[Any]) -> tuple[list[Any], str]:
    branches = error.validator_value
    instance = error.instance
    name = _discriminator(branches)
    if name is None or not error.context:
        return path, error.message
    if not isinstance(instance, dict):
        return path, "must be a JSON object"
    if name not in instance:
        return [*path, name], "is required"
    allowed = [v for b in branches for v in b["properties"][name]["enum"]]
    chosen = next(
        (i for i, b in enumerate(branches) if instance[name] in b["properties"][name]["enum"]),
        None,
    )
    if chosen is None:
        return [*path, name], f"{instance[name]!r} is not one of {_short(allowed)}"
    inner = [
        e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == chosen
    ]
    if not inner:
        return path, error.message
    return _describe(min(inner, key=_order))
