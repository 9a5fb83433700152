"""Typed results: frozen dataclasses whose fields are the API's field names.

Each keeps the whole answer in ``raw``, so a field this SDK does not name yet is still there.
Times are the API's ISO-8601 strings (UTC). A field the answer lacks is ``None`` (or empty).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

__all__ = [
    "EXECUTION_ENDED",
    "RUN_ENDED",
    "Alias",
    "Attempt",
    "Deployment",
    "Event",
    "Execution",
    "Function",
    "Graph",
    "GraphRun",
    "LogLine",
    "NodeRun",
    "RuntimeInfo",
    "Task",
    "Version",
]

EXECUTION_ENDED = frozenset({"completed", "failed", "timeout", "cancelled"})
"""The statuses an execution ends with (``pending``, ``running`` and ``awaiting_human`` go on)."""

RUN_ENDED = frozenset({"completed", "failed", "cancelled"})
"""The statuses a graph run ends with (``running`` and ``awaiting_human`` go on)."""

R = TypeVar("R")


def _build(cls: type[R], doc: Any, **converted: Any) -> R:
    """``cls`` from the fields of ``doc`` of the same names (``None`` when absent), with
    ``converted`` values for the nested ones, and ``raw`` the whole document."""
    doc = doc if isinstance(doc, Mapping) else {}
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name == "raw":
            values["raw"] = dict(doc)
        elif f.name in converted:
            values[f.name] = converted[f.name]
        else:
            values[f.name] = doc.get(f.name)
    return cls(**values)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Attempt:
    """One try of one tier (``status``: succeeded, failed, timeout, skipped, cancelled)."""

    tier: str | None
    attempt: int | None
    status: str | None
    error: str | None
    duration_ms: float | None
    code: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Attempt:
        return _build(cls, doc)


@dataclass(frozen=True)
class LogLine:
    """One log entry of an execution (``stream``: stdout, stderr or log)."""

    ts: str | None
    stream: str | None
    message: str | None
    level: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> LogLine:
        return _build(cls, doc)


@dataclass(frozen=True)
class Execution:
    """An execution: the answer of ``invoke`` (200 or 202), ``GET /executions/{id}``, a log
    entry, a task's answer. A 202 answer (queued, or waiting for a person) has ``status``
    ``pending``, ``running`` or ``awaiting_human``, ``status_url`` and no ``output`` yet.
    Its ``repr`` shows the first fields only; every field is there."""

    execution_id: str
    function_id: str | None
    version: int | None
    status: str
    tier: str | None
    output: Any
    error: str | None
    attempts: tuple[Attempt, ...] = field(repr=False)
    logs: tuple[LogLine, ...] = field(repr=False)
    metrics: Mapping[str, Any] = field(repr=False)
    trace_id: str | None = field(repr=False)
    alias: str | None = field(repr=False)
    input: Any = field(repr=False)
    cause: Mapping[str, Any] | None = field(repr=False)
    children: tuple[str, ...] = field(repr=False)
    retries: int | None = field(repr=False)
    started_at: str | None = field(repr=False)
    ended_at: str | None = field(repr=False)
    duration_ms: float | None = field(repr=False)
    status_url: str | None = field(repr=False)
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ended(self) -> bool:
        """True once it has ended: completed, failed, timeout or cancelled."""
        return self.status in EXECUTION_ENDED

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @classmethod
    def from_dict(cls, doc: Any, function_id: str | None = None) -> Execution:
        doc = doc if isinstance(doc, Mapping) else {}
        return _build(
            cls,
            doc,
            function_id=doc.get("function_id") or function_id,
            attempts=tuple(Attempt.from_dict(a) for a in _list(doc.get("attempts"))),
            logs=tuple(LogLine.from_dict(x) for x in _list(doc.get("logs"))),
            metrics=dict(doc.get("metrics") or {}),
            children=tuple(_list(doc.get("children"))),
        )


@dataclass(frozen=True)
class StreamEvent:
    """One event of a live stream (``events``, ``follow_logs``): its name (``status``, ``log``,
    ``attempt``, ``token``, ``end``, ``execution``, ``error``), its ``id`` in the stream and its
    ``data``, the JSON the gateway sent (docs/api.md, *Live streams*)."""

    event: str
    id: str | None
    data: Any


@dataclass(frozen=True)
class Version:
    """One immutable version of a function."""

    version: int
    runtime: str | None
    code_sha256: str | None
    code_size: int | None
    deployed_at: str | None
    precompiled: bool | None
    description: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Version:
        return _build(cls, doc)


@dataclass(frozen=True)
class Function:
    """A deployed function: an entry of ``functions()``, or ``function(id)`` (its latest
    manifest is in ``raw``, its versions in ``versions``), or what ``rollback`` left."""

    id: str
    latest_version: int | None
    runtime: str | None
    description: str | None
    updated_at: str | None
    tenant: str | None
    versions: tuple[Version, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Function:
        doc = doc if isinstance(doc, Mapping) else {}
        versions = tuple(Version.from_dict(v) for v in _list(doc.get("versions")))
        return _build(cls, doc, versions=versions)


@dataclass(frozen=True)
class Deployment:
    """The answer of a deploy: the new version and what was stored."""

    id: str
    version: int
    runtime: str | None
    code_sha256: str | None
    code_size: int | None
    deployed_at: str | None
    precompiled: bool | None
    warnings: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Deployment:
        doc = doc if isinstance(doc, Mapping) else {}
        return _build(cls, doc, warnings=tuple(_list(doc.get("warnings"))))


@dataclass(frozen=True)
class RuntimeInfo:
    """An installed runtime (``GET /runtimes``): the file suffixes it takes and whether it can
    run code on that gateway (``status``: active, unavailable, failed, blocked; ``reason`` why
    not). Not ``Runtime``: ``tiergate.Runtime`` is the plugin authors' base class."""

    name: str
    description: str | None
    suffixes: tuple[str, ...]
    status: str | None
    ready: bool | None
    reason: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> RuntimeInfo:
        doc = doc if isinstance(doc, Mapping) else {}
        return _build(cls, doc, suffixes=tuple(_list(doc.get("suffixes"))))


@dataclass(frozen=True)
class Alias:
    """A name (``prod``) pointing at a version, with ``weights`` sending shares elsewhere."""

    name: str
    function_id: str
    version: int
    weights: Mapping[str, float]
    description: str | None
    created_at: str | None
    updated_at: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Alias:
        doc = doc if isinstance(doc, Mapping) else {}
        return _build(cls, doc, weights=dict(doc.get("weights") or {}))


@dataclass(frozen=True)
class Event:
    """A published event: its id and the executions its triggers started."""

    event_id: str
    started: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Event:
        doc = doc if isinstance(doc, Mapping) else {}
        return _build(cls, doc, started=tuple(_list(doc.get("started"))))


@dataclass(frozen=True)
class Task:
    """A human review task (``status``: pending, completed, rejected, expired, cancelled)."""

    id: str
    function_id: str | None
    execution_id: str | None
    status: str | None
    input: Any
    instructions: str | None
    attempts: tuple[Attempt, ...]
    created_at: str | None
    expires_at: str | None
    claimed_by: str | None
    claimed_by_id: str | None
    claimed_until: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Task:
        doc = doc if isinstance(doc, Mapping) else {}
        attempts = tuple(Attempt.from_dict(a) for a in _list(doc.get("attempts")))
        return _build(cls, doc, attempts=attempts)


@dataclass(frozen=True)
class Graph:
    """A deployed graph version; ``nodes`` in an order where each comes after what it needs."""

    id: str
    version: int
    nodes: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> Graph:
        doc = doc if isinstance(doc, Mapping) else {}
        nodes = doc.get("nodes")
        names = nodes if isinstance(nodes, list) else list(nodes or {})
        return _build(cls, doc, nodes=tuple(names))


@dataclass(frozen=True)
class NodeRun:
    """One node of a graph run (``status``: pending, running, completed, failed, skipped,
    reused, awaiting_human)."""

    status: str | None
    function: str | None
    function_version: int | None
    execution_id: str | None
    started_at: str | None
    ended_at: str | None
    output: Any
    reason: str | None
    error: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Any) -> NodeRun:
        return _build(cls, doc)


@dataclass(frozen=True)
class GraphRun:
    """A run of a graph (``status``: running, completed, failed, awaiting_human, cancelled)."""

    run_id: str
    graph_id: str
    version: int | None
    status: str
    output: Any
    error: str | None
    base_run: str | None
    trace_id: str | None
    created_at: str | None
    ended_at: str | None
    nodes: Mapping[str, NodeRun]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ended(self) -> bool:
        """True once it has ended: completed, failed or cancelled."""
        return self.status in RUN_ENDED

    @classmethod
    def from_dict(cls, doc: Any) -> GraphRun:
        doc = doc if isinstance(doc, Mapping) else {}
        nodes = doc.get("nodes") if isinstance(doc.get("nodes"), Mapping) else {}
        converted = {name: NodeRun.from_dict(node) for name, node in nodes.items()}
        return _build(cls, doc, nodes=converted)


def function_id_of(ref: str) -> str:
    """The function id of a reference: ``id``, ``id@version`` or ``id:alias``."""
    return re.split(r"[@:]", ref, maxsplit=1)[0]
