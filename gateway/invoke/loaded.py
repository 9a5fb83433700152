"""``LoadedFunction``: everything decided once per function version at load time.

The warm path reads only this object: no storage I/O, no plugin calls, no schema compilation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.functions.schemas import SchemaCheck
from gateway.metrics import FunctionMetrics
from plugins.runtime import Limits, Runtime


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
    metrics: FunctionMetrics
    runtime: Runtime[Any] | None = None
    handle: Any = None
    slots: asyncio.Semaphore | None = None
    extras: dict[str, Any] = field(default_factory=dict)

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
        return self.manifest.get("tiers") or {}

    @property
    def cascade(self) -> Mapping[str, Any]:
        return self.manifest.get("cascade") or {}
