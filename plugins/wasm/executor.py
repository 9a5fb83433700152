"""Runs calls inside a wasm worker process: loads modules from the artifact cache on first use
and answers each call frame with the output, or with how it failed.

What an answer carries is bounded by construction: the output is at most the call's
``max_output`` (more fails the call ``too_large`` without copying it), and every log entry,
the stderr lines and a trap's backtrace included, goes through one ``LogBudget`` per call. Each
store may hold one instance with one linear memory of at most ``limits.memory_mb`` and a few
tables of bounded size; the module cache is bounded in count and in artifact bytes.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime

from plugins.logs import cap_entries

from . import calls_abi, capi, core_abi, wasi_abi
from .abi import calls_functions
from .engine import TICK_S, Engines, ticks_until
from .log_flusher import LogFlusher

WARM_CALLS = 10_000
WARM_MEMORY_BYTES = 16 * 1024 * 1024
CACHE_SIZE = 512
CACHE_BYTES = 1 << 30  # artifacts mapped by one worker at most (the one in use is always kept)


@dataclass(frozen=True)
class Module:
    abi: str
    pre: wasmtime.InstancePre  # kept alive: its pointer is used on every call
    pre_ptr: Any
    engine_ptr: Any
    size: int
    calls: bool  # imports tiergate.invoke: its calls may leave an answer behind (``calls_abi``)


@dataclass
class WarmSlot:
    """One function version's warm instance (``limits.isolation: warm``); never shared: each
    loaded version of each tenant's function has its own."""

    instance: core_abi.Instance | None = None
    calls: int = 0
    first_size: int = 0

    def start(self, store: capi.Store, pre_ptr: object) -> None:
        self.drop()
        try:
            self.instance = core_abi.Instance(store, pre_ptr)
        except BaseException:
            store.close()
            raise
        self.calls, self.first_size = 0, self.instance.memory_size()

    def worn_out(self) -> bool:
        assert self.instance is not None
        size = self.instance.memory_size()
        return self.calls >= WARM_CALLS or size > max(WARM_MEMORY_BYTES, 4 * self.first_size)

    def drop(self) -> None:
        if self.instance is not None:
            self.instance.store.close()
            self.instance = None


def linker(engine: wasmtime.Engine, abi: str) -> wasmtime.Linker:
    result = wasmtime.Linker(engine)
    if abi == "wasi":
        result.define_wasi()
    else:
        core_abi.define_imports(result)
    calls_abi.define_imports(result)
    return result


class Executor:
    """``tick_s``: how often this process's ticker advances the epochs (deadlines are counted in
    ticks); ``pooled``: instance slots of the pooling allocator (see ``engine.make_engine``);
    ``flusher``: in a worker, what sends a running call's log entries to the gateway while it
    runs (without one, as on the gateway's loop, they all go with the answer)."""

    def __init__(
        self, tick_s: float = TICK_S, pooled: int = 0, flusher: LogFlusher | None = None
    ) -> None:
        self.engines = Engines(pooled)
        self.tick_s = tick_s
        self.flusher = flusher
        self._modules: OrderedDict[str, Module] = OrderedDict()
        self._bytes = 0
        self._ticks = 0  # the running call's deadline, in ticks from its start
        self.given_up: Callable[[], bool] | None = None
        """Whether the running call's caller gave up already (a worker's ``Cancels``)."""

    def interrupt(self) -> None:
        """End the running call now (called from another thread, ``plugins.workers.cancels``:
        its caller gave up): the epochs advance past its deadline, so it traps as if it timed
        out. A worker runs one call at a time, and each call's deadline counts from the epoch
        at its start, so no other call is touched."""
        for _ in range(self._ticks + 1):
            self.engines.plain.increment_epoch()
            self.engines.fuel.increment_epoch()

    def module(self, key: str, path: str, abi: str, fuel: int | None) -> Module:
        module = self._modules.get(key)
        if module is not None:
            self._modules.move_to_end(key)
            return module
        engine = self.engines.for_fuel(fuel)
        compiled = wasmtime.Module.deserialize_file(engine, path)
        pre = linker(engine, abi).instantiate_pre(compiled)
        size = os.path.getsize(path)
        calls = calls_functions(compiled)
        module = self._modules[key] = Module(abi, pre, pre.ptr(), engine.ptr(), size, calls)
        self._bytes += size
        while len(self._modules) > CACHE_SIZE or (
            self._bytes > CACHE_BYTES and len(self._modules) > 1
        ):
            self._bytes -= self._modules.popitem(last=False)[1].size
        return module

    def drop(self, key: str) -> None:
        module = self._modules.pop(key, None)
        if module is not None:
            self._bytes -= module.size

    def handle(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        """Answer ``[status, message, logs, seconds]`` (+ output); ``seconds`` is the time spent
        here, which the parent uses to tell quick functions from slow ones: CPU time for a
        core-ABI call, which cannot wait on anything (so a busy machine's preemption does not make
        it look slow), wall time for a WASI one, which may."""
        started, cpu = time.perf_counter(), time.thread_time()
        answer, output = self._handle(meta, data)
        core = len(meta) > 3 and meta[3] == "core"
        answer.append(time.thread_time() - cpu if core else time.perf_counter() - started)
        return answer, output

    def _handle(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        if meta[0] == "drop":
            self.drop(meta[1])
            return ["ok", None, []], b""
        _, key, path, abi, timeout_s, memory_bytes, fuel, env, max_output = meta
        try:
            module = self.module(key, path, abi, fuel)
        except (wasmtime.WasmtimeError, OSError) as exc:
            return ["failed", f"cannot load the module: {exc}", []], b""
        ticks = self._ticks = ticks_until(timeout_s, self.tick_s)
        store = capi.Store(module.engine_ptr, ticks, memory_bytes, fuel)
        try:
            if self.given_up is not None and self.given_up():  # as its store was made
                return ["cancelled", "its caller gave up", []], b""
            if abi == "core":
                fresh = functools.partial(core_abi.run, store, module.pre_ptr, data, max_output)
                return self._core(fresh, max_output)
            return self._wasi(store, module, data, env, max_output)
        finally:
            store.close()
            if module.calls:
                calls_abi.forget()

    def handle_warm(
        self, meta: list[Any], data: bytes, slot: WarmSlot
    ) -> tuple[list[Any], bytes]:
        """A core-ABI call on ``slot``'s instance, made at its first call and reused until it
        has answered ``WARM_CALLS`` calls, grown its memory past ``WARM_MEMORY_BYTES`` (or to
        four times its first size), or failed in any way (a trap may leave it broken). Its
        ``seconds`` is CPU time, as for any core-ABI call."""
        started = time.thread_time()
        _, key, path, abi, timeout_s, memory_bytes, fuel, _, max_output = meta
        ticks = ticks_until(timeout_s, self.tick_s)
        try:
            if slot.instance is None:
                module = self.module(key, path, abi, fuel)
                store = capi.Store(module.engine_ptr, ticks, memory_bytes, fuel)
                slot.start(store, module.pre_ptr)
            else:
                slot.instance.store.deadline(ticks)
        except (wasmtime.WasmtimeError, OSError, capi.WasmEnded) as exc:
            slot.drop()
            return ["failed", f"cannot instantiate the module: {exc}", [], 0.0], b""
        instance = slot.instance
        assert instance is not None
        answer, output = self._core(
            functools.partial(instance.call, data, max_output), max_output
        )
        slot.calls += 1
        if answer[0] != "ok" or slot.worn_out():
            slot.drop()
        answer.append(time.thread_time() - started)
        return answer, output

    def _core(
        self, call: Callable[[core_abi.CoreCall], None], max_output: int
    ) -> tuple[list[Any], bytes]:
        outcome = core_abi.CoreCall()
        flusher = self.flusher
        if flusher is not None:
            flusher.follow(outcome)
        ended = None
        try:
            call(outcome)
        except capi.WasmEnded as exc:
            ended = exc.trap
        finally:
            if flusher is not None:
                flusher.unfollow()  # from here on, what is left goes with the answer
        logs = outcome.logs
        if ended is not None:
            status, message, more = _failure(ended, outcome.failure)
            return [status, message, logs + cap_entries(more, outcome.budget)], b""
        if outcome.budget is not None:
            logs += cap_entries((), outcome.budget)  # the summary entry, if any was dropped
        if outcome.output_size > max_output:
            message = (
                f"the output is {outcome.output_size} bytes, over limits.max_output_kb "
                f"({max_output // 1024} KiB)"
            )
            return ["too_large", message, logs], b""
        return ["ok", None, logs], outcome.output

    def _wasi(
        self, store: capi.Store, module: Module, data: bytes, env: dict[str, str], max_output: int
    ) -> tuple[list[Any], bytes]:
        outcome = wasi_abi.WasiCall()
        flusher = self.flusher
        if flusher is not None:
            flusher.follow(outcome)
        ended = None
        try:
            wasi_abi.run(store, module.pre_ptr, data, env, max_output, outcome)
        except capi.WasmEnded as exc:
            ended = exc.trap
        finally:
            if flusher is not None:
                flusher.unfollow()
        if outcome.stdout_size > max_output:
            message = (
                f"wrote more than limits.max_output_kb ({max_output // 1024} KiB) to stdout, "
                "which was cut off there"
            )
            return ["too_large", message, outcome.finish()], b""
        if ended is not None:
            status, message, more = _failure(ended, None)
            return [status, message, outcome.finish(more)], b""
        logs = outcome.finish()
        if outcome.exit_status != 0:
            tail = "\n".join(outcome.stderr_tail)
            message = f"exited with status {outcome.exit_status}" + (f": {tail}" if tail else "")
            return ["failed", message, logs], b""
        return ["ok", None, logs], outcome.stdout


def _failure(trap: capi.Trap, failure: str | None) -> tuple[str, str, list[list[Any]]]:
    """How a call that ended abnormally is answered: status, message, and log entries to add
    (the trap's backtrace)."""
    if failure is not None:
        return "failed", failure, []
    if trap.code == capi.INTERRUPT:
        return "timeout", "ran past its deadline", []
    if trap.code == capi.OUT_OF_FUEL:
        return "fuel", "ran out of fuel", []
    cause, backtrace = _split_backtrace(trap.message)
    return "failed", cause, [[time.time(), "stderr", backtrace]] if backtrace else []


def _split_backtrace(message: str) -> tuple[str, str]:
    """wasmtime reports ``error while executing at wasm backtrace: … Caused by: <cause>``; the
    cause is what a user needs first, the backtrace goes to the logs."""
    head, marker, cause = message.partition("Caused by:")
    if not marker:
        return message.strip(), ""
    return " ".join(cause.split()), head.strip()
