"""The built-in ``wasm`` runtime: WASI command modules and core JSON modules on wasmtime.

Deploy validates, detects the ABI and precompiles (``Module.serialize``) in a child process per
module (``compiler``), so a cold start maps the artifact instead of compiling. Calls run in worker
processes (``plugins.wasm.worker``), each with its own engines and epoch ticker: every call gets a
fresh store and instance from an ``InstancePre`` made once per module per worker; CPU time is
bounded by epoch interruption (and fuel when asked), memory by the store limiter, output by
``limits.max_output_kb`` (sent with each call), logs by ``plugins.logs``. The gateway's event loop
only moves bytes. A module that imports ``tiergate.invoke`` calls other functions through the
gateway (``Call.invoke``): its worker asks over its pipe and waits, so its calls run alone in a
worker (``WasmWorkers.call_alone``), never inline, and its questions are answered by the call's
deadline at the latest.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import wasmtime

from plugins import (
    Artifact,
    Call,
    CallFunction,
    CallRefused,
    CallResult,
    FunctionCrashed,
    FunctionFailed,
    FunctionInfo,
    FunctionTimeout,
    Limits,
    LogEntry,
    OutputTooLarge,
    PluginContext,
    Runtime,
    Source,
    write_once,
)
from plugins.workers import WorkerDied

from .abi import Abi
from .compiler import DEFAULT_MAX_MODULE_MB, DEFAULT_TIMEOUT_S, Compiler
from .engine import Engines, engine_key
from .executor import WarmSlot
from .inline import BUDGET_S as INLINE_BUDGET_S
from .inline import Inline, Speed
from .pool import WasmWorkers


@dataclass(frozen=True)
class LoadedModule:
    key: str
    path: str
    abi: Abi
    memory_bytes: int
    fuel: int | None
    isolation: str = "per_call"
    calls: bool = False  # imports tiergate.invoke
    speed: Speed = field(default_factory=Speed, compare=False)
    warm: WarmSlot = field(default_factory=WarmSlot, compare=False)

    @property
    def inline(self) -> bool:
        """May its calls run in the gateway's process (``inline``)? Core ABI, no fuel, and no
        calls of other functions (a host import cannot wait for the loop it runs on)."""
        return self.abi == "core" and self.fuel is None and not self.calls


TIMEOUT = 4  # where a call frame's meta carries the seconds the call has
QUEUED_GRACE_S = 0.5
"""How long past its deadline a worker call is waited for: the worker ends a running call at its
deadline itself; past this, it was still queued behind other calls there (and is dropped), or is
blocked in a host call (and the pool's sweeper stops its worker)."""
STREAMED = ("log", "stderr")  # what workers send as calls run: tiergate.log, WASI stderr lines


class WasmRuntime(Runtime[LoadedModule]):
    name: ClassVar[str] = "wasm"

    def __init__(self, context: PluginContext) -> None:
        options = context.options.get("wasm", {})
        self._cache = context.data_dir / "wasm-modules"
        self._workers = WasmWorkers(int(options.get("workers") or os.cpu_count() or 2))
        self._compiler = Compiler(
            int(options.get("max_module_mb") or DEFAULT_MAX_MODULE_MB),
            float(options.get("compile_timeout_s") or DEFAULT_TIMEOUT_S),
            slots=max(2, os.cpu_count() or 2),
        )
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wasm-load")
        self._engines: Engines | None = None
        self._inline_wanted = bool(options.get("inline", True))
        self._inline: Inline | None = None
        self._calls = {"inline": 0, "inline_then_worker": 0, "worker": 0}

    @property
    def engines(self) -> Engines:
        if self._engines is None:
            self._engines = Engines()
        return self._engines

    async def start(self) -> None:
        self._cache.mkdir(parents=True, exist_ok=True)
        await self._workers.start()
        if self._inline_wanted:
            self._inline = Inline()

    async def close(self) -> None:
        await self._workers.close()
        if self._inline is not None:
            self._inline.close()
        self._threads.shutdown(wait=True)

    def stats(self) -> dict[str, float]:
        """Calls by where they ran: in the gateway (``inline``), in a worker after an inline try
        ran out of budget (``inline_then_worker``), in a worker (``worker``)."""
        return {f"calls_{where}": count for where, count in self._calls.items()}

    def artifact_key(self, limits: Limits) -> str:
        return engine_key(limits.fuel)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def compile(self, source: Source) -> Artifact:
        meta, data = await self._compiler.compile(source.code, fuel=source.limits.fuel is not None)
        metadata = {"abi": meta["abi"], "calls": meta["calls"]}
        return Artifact(self.artifact_key(source.limits), data, metadata, precompiled=True)

    async def load(self, artifact: Artifact, fn: FunctionInfo) -> LoadedModule:
        key = hashlib.sha256(artifact.data).hexdigest()
        path = await self._in_thread(self._cache_file, key, artifact.data, fn.limits.fuel)
        return LoadedModule(
            key,
            str(path),
            artifact.metadata["abi"],
            fn.limits.memory_mb * 1024 * 1024,
            fn.limits.fuel,
            fn.limits.isolation,
            # artifacts made before tiergate.invoke existed could not import it
            bool(artifact.metadata.get("calls", False)),
        )

    def _cache_file(self, key: str, data: bytes, fuel: int | None) -> Path:
        """Write the artifact where workers map it from, checking first that it deserialises."""
        path = self._cache / f"{key}.cwasm"
        if not path.exists():
            wasmtime.Module.deserialize(self.engines.for_fuel(fuel), data)
            write_once(path, data)
        return path

    async def unload(self, loaded: LoadedModule) -> None:
        self._workers.broadcast(["drop", loaded.key])
        loaded.warm.drop()
        if self._inline is not None:
            self._inline.drop(loaded.key)

    async def invoke(self, loaded: LoadedModule, call: Call) -> CallResult:
        remaining = call.remaining_s()
        meta = self._meta(loaded, call, remaining)
        if loaded.calls:
            return await self._invoke_alone(loaded, call, meta, remaining)
        if (
            self._inline is not None
            and loaded.inline
            and loaded.speed.quick
            and remaining > INLINE_BUDGET_S
        ):
            meta[TIMEOUT] = INLINE_BUDGET_S
            warm = loaded.warm if loaded.isolation == "warm" else None
            cpu = time.thread_time()
            answer, output = self._inline.run(meta, call.input, warm)
            if answer[0] != "timeout":
                self._calls["inline"] += 1
                if call.annotate is not None:
                    call.annotate("wasm.placement", "inline")
                return self._result(loaded, answer, output, remaining)
            # past its budget: the worker runs it again, from the start
            loaded.speed.overran(time.thread_time() - cpu)
            self._calls["inline_then_worker"] += 1
            if call.annotate is not None:
                call.annotate("wasm.placement", "inline_then_worker")
            remaining = meta[TIMEOUT] = call.remaining_s()
        else:
            self._calls["worker"] += 1
            if call.annotate is not None:
                call.annotate("wasm.placement", "worker")
        written: list[LogEntry] = []  # streamed entries, where the caller takes none as they come
        sink = functools.partial(_hand_over, call.on_log or written.append)
        try:
            async with asyncio.timeout(remaining + QUEUED_GRACE_S):
                frame = await self._workers.call(meta, call.input, remaining, sink)
        except TimeoutError:  # queued behind other calls (dropped there), or blocked
            raise FunctionTimeout(
                f"did not finish within its {remaining * 1000:.0f} ms: it waited behind other "
                "calls in its wasm worker, or was blocked where it could not be interrupted (then "
                "its worker is stopped)",
                logs=written,
            ) from None
        except WorkerDied as exc:
            if call.remaining_s() <= 0:
                raise FunctionTimeout(
                    f"did not finish within its {remaining * 1000:.0f} ms, blocked where it "
                    "could not be interrupted; its worker was stopped",
                    logs=written,
                ) from None
            raise FunctionCrashed(f"the wasm worker died: {exc}", logs=written) from None
        if self._inline is not None:
            loaded.speed.measured(frame.meta[-1])
        return self._result(loaded, frame.meta, frame.data, remaining, written)

    async def _invoke_alone(
        self, loaded: LoadedModule, call: Call, meta: list[Any], remaining: float
    ) -> CallResult:
        """A call of a module that calls functions: alone in a worker, which asks ``call.invoke``
        (without it, the module's calls answer ``not_supported``)."""
        self._calls["worker"] += 1
        if call.annotate is not None:
            call.annotate("wasm.placement", "worker")
        answers = _Answers(call, call.invoke) if call.invoke is not None else None
        written: list[LogEntry] = []
        sink = functools.partial(_hand_over, call.on_log or written.append)
        try:
            nested = call.caller.get("kind") == "call"
            frame = await self._workers.call_alone(
                meta, call.input, remaining, answers, sink, nested=nested
            )
        except TimeoutError:
            raise FunctionTimeout(
                f"no wasm worker was free within its {remaining * 1000:.0f} ms: every worker "
                "that runs calls of functions calling functions was busy"
            ) from None
        except WorkerDied as exc:
            if call.remaining_s() <= 0:
                raise FunctionTimeout(
                    f"did not finish within its {remaining * 1000:.0f} ms; its worker was stopped",
                    logs=written,
                ) from None
            raise FunctionCrashed(f"the wasm worker died: {exc}", logs=written) from None
        if answers is not None and answers.ran_out:
            raise FunctionTimeout(
                f"did not finish within its {remaining * 1000:.0f} ms: it was waiting for a "
                "function it called",
                logs=[*written, *(LogEntry(*entry) for entry in frame.meta[2])],
            )
        return self._result(loaded, frame.meta, frame.data, remaining, written)

    @staticmethod
    def _meta(loaded: LoadedModule, call: Call, remaining: float) -> list[Any]:
        env = None
        if loaded.abi == "wasi":
            env = {
                "FUNCTION_ID": call.function_id,
                "EXECUTION_ID": call.execution_id,
                "TRACE_ID": call.trace_id,
                **call.env,
                **call.secrets,
            }
        return [
            "call",
            loaded.key,
            loaded.path,
            loaded.abi,
            remaining,
            loaded.memory_bytes,
            loaded.fuel,
            env,
            call.limits.max_output_bytes,
        ]

    @staticmethod
    def _result(
        loaded: LoadedModule,
        answer: list[Any],
        output: bytes,
        remaining: float,
        written: list[LogEntry] | None = None,
    ) -> CallResult:
        """``written``: entries the worker sent before its answer, which no ``on_log`` took."""
        status, message, raw_logs, _ = answer
        logs = tuple(LogEntry(*entry) for entry in raw_logs)  # [ts, stream, message, level?]
        if written:
            logs = (*written, *logs)
        if status == "ok":
            return CallResult(output, logs)
        if status == "timeout":
            budget = f"{remaining * 1000:.0f} ms"
            raise FunctionTimeout(f"did not finish within its {budget}", logs=list(logs))
        if status == "fuel":
            raise FunctionFailed(f"ran out of fuel (limits.fuel = {loaded.fuel})", logs=list(logs))
        if status == "too_large":
            raise OutputTooLarge(message, logs=list(logs))
        raise FunctionFailed(message, logs=list(logs))


def _hand_over(take: Callable[[LogEntry], None], raw: list[Any]) -> None:
    """Hands ``take`` each entry a worker sent while its call ran (``log_flusher``): the
    well-formed ``[ts, stream, message]`` ones (a worker runs tenants' code; what it sends is
    checked, as the gateway caps it again)."""
    for entry in raw:
        if (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], float)
            and entry[1] in STREAMED
            and isinstance(entry[2], str)
        ):
            take(LogEntry(entry[0], entry[1], entry[2]))


class _Answers:
    """Answers a worker's ``tiergate.invoke`` questions for one call: ``["invoke", ref]`` with
    the input JSON, answered ``["ok"]`` with the output JSON or ``["error", code, detail]``. A
    call of a function still running at the caller's deadline is cancelled and answered
    ``["timeout"]``: the module's host call traps, and the caller's call ends as a timeout
    (``ran_out``), as a Python caller's does."""

    __slots__ = ("_call", "_invoke", "ran_out")

    def __init__(self, call: Call, invoke: CallFunction) -> None:
        self._call = call
        self._invoke = invoke
        self.ran_out = False

    async def __call__(self, meta: Any, data: bytes) -> tuple[Any, bytes]:
        if not (isinstance(meta, list) and len(meta) == 2 and meta[0] == "invoke"):
            return ["error", "invalid_request", "the worker asked something unknown"], b""
        try:
            async with asyncio.timeout(self._call.remaining_s()):
                return ["ok"], await self._invoke(str(meta[1]), data)
        except CallRefused as exc:
            return ["error", exc.code, exc.detail], b""
        except TimeoutError:
            self.ran_out = True
            return ["timeout"], b""
