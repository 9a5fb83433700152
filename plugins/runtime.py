"""The runtime-author API: the ``Runtime`` base class and the values it receives and returns.

A runtime turns source into an artifact at deploy (``compile``), an artifact into something
callable at a cold start (``load``), and runs one call at a time per ``invoke``. Runtimes know
nothing of HTTP, tenants, storage layout or tiers; the gateway owns those. Input and output are raw
JSON bytes so that no layer parses them twice.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

from .sandbox import Sandbox
from .workers.budget import WorkerBudget

LogStream = Literal["stdout", "stderr", "log"]
MAX_OUTPUT_KB = 65_536
"""The largest ``limits.max_output_kb`` a manifest may set: what a worker's answer is sized for."""


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What a runtime factory is given: where it may keep files, its own options, a logger, and
    the sandbox every process that runs function code must be started in (``Sandbox.command``;
    ``Sandbox.require`` in ``Runtime.check`` refuses to run code where it cannot isolate it), and
    the budget of worker processes per tenant that every ``FunctionPool`` it makes must draw from
    (the gateway sets both from its settings; the defaults are for tests and tools)."""

    data_dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("tiergate.plugins"))
    sandbox: Sandbox = field(default_factory=Sandbox)
    worker_budget: WorkerBudget = field(default_factory=WorkerBudget)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-function limits from the manifest; ``fuel`` is ``None`` when not metered.

    ``tmp_mb`` is the function's writable scratch space (``/tmp``, its working directory): it
    counts against ``memory_mb``, so a sandboxed process gets ``memory_mb - tmp_mb`` for its heap.
    ``isolation``: ``per_call`` (a fresh instance for every call, the contract's default) or
    ``warm`` (an instance kept and reused for the function version's calls, where the runtime
    can: the wasm runtime's core-ABI modules).
    """

    timeout_ms: int = 30_000
    memory_mb: int = 128
    fuel: int | None = None
    max_output_kb: int = 6144
    tmp_mb: int = 16
    isolation: Literal["per_call", "warm"] = "per_call"

    @property
    def max_output_bytes(self) -> int:
        return self.max_output_kb * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """Code as deployed: bytes (text is UTF-8), the optional file name, runtime-specific options."""

    function_id: str
    version: int
    code: bytes
    limits: Limits = Limits()
    filename: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artifact:
    """What ``compile`` produced; stored under ``key`` and handed back to ``load``.

    ``data`` may be the source itself for interpreted languages. ``metadata`` is small JSON-able
    facts (e.g. the detected ABI) that ``load`` needs without re-parsing ``data``.
    """

    key: str
    data: bytes
    metadata: Mapping[str, Any] = field(default_factory=dict)
    precompiled: bool = False


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """The deployed function a ``load`` is for (never carries secrets)."""

    function_id: str
    version: int
    tenant: str
    limits: Limits
    env: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


class CallRefused(Exception):
    """A function's call of another function (``Call.invoke``) was refused or failed; ``code``
    and ``detail`` are the API's (``function_not_found``, ``call_too_deep``, ``cascade_exhausted``…)
    for the runtime to hand to the code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


CallFunction = Callable[[str, bytes], Awaitable[bytes]]
"""``invoke(ref, input_json) -> output_json``: another function of the same tenant ("id" or
"id@version"), called through the gateway's own invoke path; raises ``CallRefused``."""


@dataclass(frozen=True, slots=True)
class Call:
    """One invocation of loaded code. ``deadline`` is a ``time.monotonic()`` instant.

    ``caller`` is who asked for it: ``{"key_id", "tenant", "roles"}`` of an API key, or the
    ``cause`` of work the gateway started (``{"kind": "event", "event_id"}``, a chain's, a
    schedule's, a graph node's). ``custom`` is the caller's ``X-Tiergate-Context`` header, as
    JSON (``None`` without one). A runtime hands both to the code as it can (the Python runtime:
    ``context.caller``, ``context.custom``). ``invoke`` calls another function from the code
    (the Python runtime: ``context.invoke``); ``None`` where the gateway offers no such calls.

    ``on_log``, when set, takes log entries as the code writes them: a runtime that can hand
    them over while the call runs does (the Python runtime does), so that a call that never
    returns — killed at its deadline, cancelled — keeps what it wrote, and live streams show it
    at once. An entry handed to ``on_log`` is not returned again (``CallResult.logs``,
    ``AttemptFailure.logs``); a runtime that ignores ``on_log`` returns them all at the end.

    ``annotate``, set only while the gateway traces (OpenTelemetry), describes the call on its
    ``runtime`` span: ``annotate("wasm.placement", "inline")`` becomes the span attribute
    ``tiergate.wasm.placement``. Say what only the runtime knows, in a few words, never data."""

    input: bytes
    execution_id: str
    function_id: str
    trace_id: str
    deadline: float
    limits: Limits
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    caller: Mapping[str, Any] = field(default_factory=dict)
    custom: Any = None
    invoke: CallFunction | None = None
    on_log: Callable[[LogEntry], None] | None = None
    annotate: Callable[[str, str], None] | None = None

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class LogEntry(NamedTuple):
    """One captured line of output. ``ts`` is a Unix timestamp in seconds. A tuple, because a
    call may bring thousands of them and they are made on the event loop."""

    ts: float
    stream: LogStream
    message: str
    level: str | None = None


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful call: the output JSON bytes (unchecked) and what the code logged."""

    output: bytes
    logs: tuple[LogEntry, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)


LoadedT = TypeVar("LoadedT")


class Runtime(abc.ABC, Generic[LoadedT]):
    """One language. One instance per gateway process, created lazily from its ``RuntimeSpec``.

    Failures are reported by raising: ``CompileError`` from ``compile``; ``FunctionFailed``,
    ``FunctionCrashed``, ``BadOutput`` or ``FunctionTimeout`` from ``invoke``;
    ``RuntimeUnavailable`` from ``check`` when the runtime cannot work on this machine.
    """

    name: ClassVar[str]
    manifest_options: ClassVar[Mapping[str, Any]] = {}

    async def start(self) -> None:
        """Start engines or worker pools. Called once before the first compile or load."""

    async def close(self) -> None:
        """Release everything ``start`` and ``load`` created."""

    def check(self) -> None:
        """Raise ``RuntimeUnavailable`` with an actionable message if this runtime cannot work."""

    def artifact_key(self, limits: Limits) -> str:
        """Identify what ``compile`` output for these limits is compatible with; a change of key
        makes the gateway recompile from source instead of loading a stale artifact."""
        return self.name

    @abc.abstractmethod
    async def compile(self, source: Source) -> Artifact:
        """Validate and compile at deploy; raise ``CompileError`` with an actionable message."""

    @abc.abstractmethod
    async def load(self, artifact: Artifact, fn: FunctionInfo) -> LoadedT:
        """Turn an artifact into something ``invoke`` can call (a cold start)."""

    @abc.abstractmethod
    async def invoke(self, loaded: LoadedT, call: Call) -> CallResult:
        """Run one call. Never block the event loop."""

    def stats(self) -> Mapping[str, float]:
        """Counters worth watching (the gateway shows them as ``tiergate_runtime_stat``)."""
        return {}

    async def unload(self, loaded: LoadedT) -> None:
        """Drop what ``load`` created (LRU eviction, delete, redeploy)."""


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """What a plugin declares through ``tiergate_runtimes``: a name and how to build the runtime."""

    name: str
    factory: Callable[[PluginContext], Runtime[Any]]
    description: str = ""
    suffixes: tuple[str, ...] = ()
