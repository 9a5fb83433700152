"""Input and output checks, compiled once per function version (at load, never per call).

Schemas are the tenant's and run on the event loop, so they must not be able to stall it: the
``pattern`` and ``patternProperties`` keywords match with RE2 (linear time, no backtracking)
instead of Python's ``re``, whose backtracking lets one pattern like ``(a+)+$`` and one input
hold the loop for hours. Patterns RE2 cannot run (backreferences, lookaround) are refused at
deploy; a ``$ref`` that cannot be resolved (tiergate never fetches schemas) is a check error.

Here, below the gateway, because the loaded function carries its checks and the cascade engine
checks every tier's output with them; the gateway's manifest check uses ``check_patterns``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import _WrappedReferencingError

MAX_ERRORS = 20
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a tenant's pattern never reaches the gateway's log


class PatternError(ValueError):
    """A schema pattern RE2 cannot run; the message names it."""


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        raise PatternError(f"pattern {pattern!r} cannot be used: {exc}") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


Validator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def check_patterns(schema: Any) -> None:
    """Raise ``PatternError`` for the first pattern in ``schema`` RE2 cannot run."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                compiled(value)
            elif key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    compiled(pattern)
            check_patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            check_patterns(item)


class SchemaCheck:
    """A compiled JSON Schema; ``errors`` lists ``{"path", "message"}`` like API.md's
    ``invalid_input``. A missing schema accepts everything: ``active`` is false, and the warm path
    then skips the check without a call."""

    __slots__ = ("_validator", "active")

    def __init__(self, schema: Any) -> None:
        self._validator = None if schema is None else Validator(schema)
        self.active = self._validator is not None

    def errors(self, value: Any) -> list[dict[str, str]]:
        if self._validator is None:
            return []
        found = []
        try:
            for error in self._validator.iter_errors(value):
                path = "/" + "/".join(str(p) for p in error.absolute_path)
                found.append({"path": path, "message": error.message})
                if len(found) >= MAX_ERRORS:
                    break
        except _WrappedReferencingError as exc:
            found.append({"path": "/", "message": f"the schema cannot be used: {exc}"})
        return found
