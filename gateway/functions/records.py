"""What the registry keeps about a function and each of its versions, as typed records.

Inside the gateway these are objects; they become JSON only where the registry stores them in the
KV (``encode`` and the ``decode_*`` functions, called by ``registry.py`` alone). A stored record
may carry keys this code does not know — written by a newer gateway sharing the KV, say. Reading
keeps them in ``extra`` and writing puts them back, so a read-modify-write here never drops what
another version of tiergate wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from gateway.errors import FunctionNotFound


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """``fn/<tenant>/<id>``: the function as a whole. ``latest_version`` is None between the
    first deploy's reservation of version 1 and its publication (readers treat it as absent).
    ``aliases``: name → the alias as stored (``gateway/functions/aliases.py``)."""

    id: str
    tenant: str
    latest_version: int | None = None
    next_version: int = 1
    created_at: float | None = None
    created_by: str = ""
    runtime: str | None = None
    description: str = ""
    updated_at: float | None = None
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        """The ``latest`` version of a published function (every record the registry hands out
        is one); an unpublished one is not found, as the registry treats it."""
        if self.latest_version is None:
            raise FunctionNotFound(f"function {self.id!r} not found", function_id=self.id)
        return self.latest_version


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """``fnv/<tenant>/<id>/<version>``: one immutable version — its manifest (without code), the
    facts of its code, and the precompiled artifacts stored for it (by artifact key)."""

    id: str
    tenant: str
    version: int
    manifest: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None
    description: str = ""
    code_sha256: str | None = None
    code_size: int = 0
    deployed_at: float = 0.0
    deployed_by: str = ""
    precompiled: bool = False
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


Record = TypeVar("Record", FunctionRecord, VersionRecord)


class UnreadableRecord(ValueError):
    """A stored record that is not JSON, or lacks what every record has (its id, say)."""


def encode(record: FunctionRecord | VersionRecord) -> bytes:
    """The record as stored: its fields, and beside them the unknown keys it was read with."""
    data = {
        f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "extra"
    }
    return orjson.dumps({**record.extra, **data})


def decode_function(raw: bytes) -> FunctionRecord:
    return _decode(FunctionRecord, raw)


def decode_version(raw: bytes) -> VersionRecord:
    return _decode(VersionRecord, raw)


def _decode(kind: type[Record], raw: bytes) -> Record:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnreadableRecord(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UnreadableRecord(f"a {kind.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(kind)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    try:
        return kind(**known, extra=extra)
    except TypeError as exc:  # a required field is missing
        raise UnreadableRecord(str(exc)) from None
