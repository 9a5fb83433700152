"""``LoadedFunction``: everything decided once per function version at load time.

The warm path reads only this object: no storage I/O, no plugin calls, no schema compilation. It
lives here, below the gateway, because the tiers read it on every call; the gateway builds it (at
a cold start) and caches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from plugins.runtime import Limits, Runtime

from .schemas import SchemaCheck


class Observer(Protocol):
    def observe(self, seconds: float) -> None: ...


class FunctionCounters(Protocol):
    """The per-function counters the gateway bumps on the warm path (cache hits, outcomes,
    durations). They ride on the loaded function so a call finds them without a lookup; the
    tiers never touch them, so only their shape is named here, not the gateway's metrics."""

    cache_hits: int
    cold_starts: int

    @property
    def duration(self) -> Observer: ...

    def outcome(self, status: str, tier: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ResultCachePolicy:
    """The version's ``cache`` manifest field: the gateway keeps its code tier's results
    ``ttl_s`` seconds. ``generation`` tells this deploy of the version from an earlier one of
    the same number (a function deleted and deployed again starts again at version 1)."""

    ttl_s: int
    generation: float


@dataclass(eq=False)
class LoadedFunction:
    tenant: str
    function_id: str
    version: int
    manifest: Mapping[str, Any]
    limits: Limits
    env: Mapping[str, str]
    secrets: tuple[str, ...]
    input_check: SchemaCheck
    output_check: SchemaCheck
    metrics: FunctionCounters
    runtime: Runtime[Any] | None = None
    handle: Any = None
    slots: asyncio.Semaphore | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    result_cache: ResultCachePolicy | None = None  # None: every call runs (the common case)

    @property
    def has_code(self) -> bool:
        return self.runtime is not None

    @property
    def description(self) -> str:
        return str(self.manifest.get("description", ""))

    @property
    def input_schema(self) -> Any:
        return self.manifest.get("input_schema")

    @property
    def output_schema(self) -> Any:
        return self.manifest.get("output_schema")

    @property
    def tiers(self) -> Mapping[str, Any]:
        tiers: Mapping[str, Any] = self.manifest.get("tiers") or {}
        return tiers

    @property
    def cascade(self) -> Mapping[str, Any]:
        cascade: Mapping[str, Any] = self.manifest.get("cascade") or {}
        return cascade
