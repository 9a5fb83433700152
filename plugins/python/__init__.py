"""The built-in Python runtime, registered through the same entry point as any plugin."""

from __future__ import annotations

from collections.abc import Iterator

from plugins import PluginContext, RuntimeSpec, hookimpl

from .runtime import PythonRuntime


@hookimpl
def tiergate_runtimes(context: PluginContext) -> Iterator[RuntimeSpec]:
    yield RuntimeSpec(
        name="python",
        factory=PythonRuntime,
        description="Python handler(event, context) in warm worker processes",
        suffixes=(".py",),
    )
