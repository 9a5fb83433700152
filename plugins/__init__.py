"""The public plugin API (re-exported by the top-level ``tiergate`` module)."""

from gateway.errors import (
    BadOutput,
    CompileError,
    FunctionCrashed,
    FunctionFailed,
    FunctionTimeout,
    OutputTooLarge,
    QueueFull,
    RuntimeUnavailable,
)
from storage.files import write_once

from .hookspecs import hookimpl, hookspec
from .logs import LogBudget, cap_entries
from .runtime import (
    Artifact,
    Call,
    CallResult,
    FunctionInfo,
    Limits,
    LogEntry,
    PluginContext,
    Runtime,
    RuntimeSpec,
    Source,
)
from .workers import (
    POOL_SCHEMA,
    FunctionPool,
    PoolOptions,
    WorkerBudget,
    WorkerDied,
    WorkerProcess,
)

__all__ = [
    "POOL_SCHEMA",
    "Artifact",
    "BadOutput",
    "Call",
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
    "Source",
    "WorkerBudget",
    "WorkerDied",
    "WorkerProcess",
    "cap_entries",
    "hookimpl",
    "hookspec",
    "write_once",
]
