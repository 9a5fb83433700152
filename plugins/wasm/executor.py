"""Runs calls inside a wasm worker process: loads modules from the artifact cache on first use
and answers each call frame with the output, or with how it failed."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import wasmtime

from . import capi, core_abi, wasi_abi
from .engine import Engines, ticks_until

STDERR_TAIL_LINES = 5
CACHE_SIZE = 512


@dataclass(frozen=True)
class Module:
    abi: str
    pre: wasmtime.InstancePre  # kept alive: its pointer is used on every call
    pre_ptr: Any
    engine_ptr: Any


def linker(engine: wasmtime.Engine, abi: str) -> wasmtime.Linker:
    result = wasmtime.Linker(engine)
    if abi == "wasi":
        result.define_wasi()
    else:
        core_abi.define_imports(result)
    return result


class Executor:
    def __init__(self) -> None:
        self.engines = Engines()
        self._modules: OrderedDict[str, Module] = OrderedDict()

    def module(self, key: str, path: str, abi: str, fuel: int | None) -> Module:
        module = self._modules.get(key)
        if module is not None:
            self._modules.move_to_end(key)
            return module
        engine = self.engines.for_fuel(fuel)
        compiled = wasmtime.Module.deserialize_file(engine, path)
        pre = linker(engine, abi).instantiate_pre(compiled)
        module = self._modules[key] = Module(abi, pre, pre.ptr(), engine.ptr())
        if len(self._modules) > CACHE_SIZE:
            self._modules.popitem(last=False)
        return module

    def drop(self, key: str) -> None:
        self._modules.pop(key, None)

    def handle(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        """Answer ``[status, message, logs, seconds]`` (+ output); ``seconds`` is the time spent
        here, which the parent uses to tell quick functions from slow ones."""
        started = time.perf_counter()
        answer, output = self._handle(meta, data)
        answer.append(time.perf_counter() - started)
        return answer, output

    def _handle(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        if meta[0] == "drop":
            self.drop(meta[1])
            return ["ok", None, []], b""
        _, key, path, abi, timeout_s, memory_bytes, fuel, env = meta
        try:
            module = self.module(key, path, abi, fuel)
        except (wasmtime.WasmtimeError, OSError) as exc:
            return ["failed", f"cannot load the module: {exc}", []], b""
        store = capi.Store(module.engine_ptr, ticks_until(timeout_s), memory_bytes, fuel)
        try:
            if abi == "core":
                return self._core(store, module, data)
            return self._wasi(store, module, data, env)
        finally:
            store.close()

    @staticmethod
    def _core(store: capi.Store, module: Module, data: bytes) -> tuple[list[Any], bytes]:
        outcome = core_abi.CoreCall()
        try:
            core_abi.run(store, module.pre_ptr, data, outcome)
        except capi.WasmEnded as ended:
            return _failure(ended.trap, outcome.failure, outcome.logs), b""
        return ["ok", None, outcome.logs], outcome.output

    @staticmethod
    def _wasi(
        store: capi.Store, module: Module, data: bytes, env: dict[str, str]
    ) -> tuple[list[Any], bytes]:
        outcome = wasi_abi.WasiCall()
        try:
            wasi_abi.run(store, module.pre_ptr, data, env, outcome)
        except capi.WasmEnded as ended:
            return _failure(ended.trap, None, _stderr_logs(outcome.stderr)), b""
        logs = _stderr_logs(outcome.stderr)
        if outcome.exit_status != 0:
            tail = "\n".join(entry[2] for entry in logs[-STDERR_TAIL_LINES:])
            message = f"exited with status {outcome.exit_status}" + (f": {tail}" if tail else "")
            return ["failed", message, logs], b""
        return ["ok", None, logs], outcome.stdout


def _stderr_logs(stderr: bytes) -> list[list[Any]]:
    now = time.time()
    text = stderr.decode(errors="replace")
    return [[now, "stderr", line] for line in text.splitlines() if line.strip()]


def _failure(trap: capi.Trap, failure: str | None, logs: list[Any]) -> list[Any]:
    if failure is not None:
        return ["failed", failure, logs]
    if trap.code == capi.INTERRUPT:
        return ["timeout", "ran past its deadline", logs]
    if trap.code == capi.OUT_OF_FUEL:
        return ["fuel", "ran out of fuel", logs]
    cause, backtrace = _split_backtrace(trap.message)
    if backtrace:
        logs = [*logs, [time.time(), "stderr", backtrace]]
    return ["failed", cause, logs]


def _split_backtrace(message: str) -> tuple[str, str]:
    """wasmtime reports ``error while executing at wasm backtrace: … Caused by: <cause>``; the
    cause is what a user needs first, the backtrace goes to the logs."""
    head, marker, cause = message.partition("Caused by:")
    if not marker:
        return message.strip(), ""
    return " ".join(cause.split()), head.strip()
