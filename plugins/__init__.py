"""The public plugin API (re-exported by the top-level ``tiergate`` module)."""

from gateway.errors import (
    BadOutput,
    CompileError,
    FunctionCrashed,
    FunctionFailed,
    FunctionTimeout,
    QueueFull,
    RuntimeUnavailable,
)

from .hookspecs import hookimpl, hookspec
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

__all__ = [
    "Artifact",
    "BadOutput",
    "Call",
    "CallResult",
    "CompileError",
    "FunctionCrashed",
    "FunctionFailed",
    "FunctionInfo",
    "FunctionTimeout",
    "Limits",
    "LogEntry",
    "PluginContext",
    "QueueFull",
    "Runtime",
    "RuntimeSpec",
    "RuntimeUnavailable",
    "Source",
    "hookimpl",
    "hookspec",
]
