"""The built-in WebAssembly runtime, registered through the same entry point as any plugin."""

from __future__ import annotations

from collections.abc import Iterator

from plugins import PluginContext, RuntimeSpec, hookimpl

from .runtime import WasmRuntime


@hookimpl
def tiergate_runtimes(context: PluginContext) -> Iterator[RuntimeSpec]:
    yield RuntimeSpec(
        name="wasm",
        factory=WasmRuntime,
        description="WebAssembly on wasmtime: WASI commands and core JSON modules",
        suffixes=(".wasm", ".wat"),
    )
