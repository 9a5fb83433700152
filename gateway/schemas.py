"""Input and output checks, compiled once per function version (at load, never per call)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

MAX_ERRORS = 20


class SchemaCheck:
    """A compiled JSON Schema; ``errors`` lists ``{"path", "message"}`` like API.md's
    ``invalid_input``. A missing schema accepts everything at no cost."""

    __slots__ = ("_validator",)

    def __init__(self, schema: Any) -> None:
        self._validator = None if schema is None else Draft202012Validator(schema)

    @property
    def active(self) -> bool:
        return self._validator is not None

    def errors(self, value: Any) -> list[dict[str, str]]:
        if self._validator is None:
            return []
        found = []
        for error in self._validator.iter_errors(value):
            path = "/" + "/".join(str(p) for p in error.absolute_path)
            found.append({"path": path, "message": error.message})
            if len(found) >= MAX_ERRORS:
                break
        return found
