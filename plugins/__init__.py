"""The public plugin API (re-exported by the top-level ``tiergate`` module).

What a runtime plugin may build on, and so all the built-in runtimes (``plugins.wasm``,
``plugins.python``) import: the names below, and the modules ``plugins.errors``,
``plugins.runtime``, ``plugins.hookspecs``, ``plugins.logs``, ``plugins.workers`` and
``plugins.sandbox``. Not for runtimes: ``plugins.manager`` (discovery and the runtime registry,
the gateway's side), ``plugins.testing`` and ``plugins.conformance`` (the test suite), storage,
and one built-in runtime for another. ``lint-imports`` checks it (``pyproject.toml``).
"""

from storage.files import write_once

from .errors import (
    BadOutput,
    CompileError,
    FunctionCrashed,
    FunctionFailed,
    FunctionTimeout,
    OutputTooLarge,
    QueueFull,
    RuntimeUnavailable,
)
from .hookspecs import hookimpl, hookspec
from .logs import LogBudget, cap_entries
from .runtime import (
    Artifact,
    Call,
    CallFunction,
    CallRefused,
    CallResult,
    FunctionInfo,
    Limits,
    LogEntry,
    PluginContext,
    Runtime,
    RuntimeSpec,
    Source,
)
from .sandbox import Sandbox, SandboxedCommand
from .workers import (
    POOL_SCHEMA,
    FunctionPool,
    PoolOptions,
    WorkerBudget,
    WorkerDied,
    WorkerProcess,
    read_capped,
)

__all__ = [
    "POOL_SCHEMA",
    "Artifact",
    "BadOutput",
    "Call",
    "CallFunction",
    "CallRefused",
    "CallResult",
    "CompileError",
    "FunctionCrashed",
    "FunctionFailed",
    "FunctionInfo",
    "FunctionPool",
    "FunctionTimeout",
    "Limits",
    "LogBudget",
    "LogEntry",
    "OutputTooLarge",
    "PluginContext",
    "PoolOptions",
    "QueueFull",
    "Runtime",
    "RuntimeSpec",
    "RuntimeUnavailable",
    "Sandbox",
    "SandboxedCommand",
    "Source",
    "WorkerBudget",
    "WorkerDied",
    "WorkerProcess",
    "cap_entries",
    "hookimpl",
    "hookspec",
    "read_capped",
    "write_once",
]
