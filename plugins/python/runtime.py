"""The built-in ``python`` runtime: ``handler(event, context)`` in warm, sandboxed worker processes.

Code never runs in the gateway's interpreter: deploy checks it in a short-lived sandboxed child,
and calls run in a pool of workers dedicated to one function version (so two tenants never share
a process). Every one of those processes starts in a sandbox (``plugins.sandbox``) with a clean
environment — only the function's ``env`` — and the function's code as its only file; the worker
then caps its own memory (``sandbox``). Where no sandbox can be made, the runtime refuses to run
code (``check``). Input and output cross the pipe as raw JSON bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from plugins import (
    Artifact,
    Call,
    CallFunction,
    CallRefused,
    CallResult,
    CompileError,
    FunctionFailed,
    FunctionInfo,
    Limits,
    LogEntry,
    OutputTooLarge,
    PluginContext,
    Runtime,
    Source,
    write_once,
)
from plugins.workers import (
    POOL_SCHEMA,
    Answerer,
    FunctionPool,
    PoolOptions,
    WorkerProcess,
    read_capped,
)

log = logging.getLogger("tiergate.python")

CHECK_TIMEOUT_S = 30.0
CHECK_OUTPUT_BYTES = 64 * 1024
CODE_PATH = "/function/handler.py"
LOG_FRAME_BYTES = 8 * 1024 * 1024  # 1 MiB of log text, JSON-escaped at worst, and the rest


@dataclass
class LoadedPython:
    function_id: str
    pool: FunctionPool


class PythonRuntime(Runtime[LoadedPython]):
    name: ClassVar[str] = "python"
    manifest_options: ClassVar[dict[str, Any]] = {"pool": POOL_SCHEMA}

    def __init__(self, context: PluginContext) -> None:
        self._dir = context.data_dir / "python"
        self._sandbox = context.sandbox
        self._pools: set[FunctionPool] = set()
        self._budget = context.worker_budget

    def check(self) -> None:
        self._sandbox.require()

    async def start(self) -> None:
        (self._dir / "code").mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        pools, self._pools = self._pools, set()
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def artifact_key(self, limits: Limits) -> str:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}"

    async def compile(self, source: Source) -> Artifact:
        result = await self._check(source.code, source.limits)
        if not result.get("ok"):
            message = str(result.get("error", "the code does not load"))
            line = result.get("line")
            where = f" (line {line})" if line else ""
            raise CompileError(f"{message}{where}", line=line)
        return Artifact(
            self.artifact_key(source.limits), source.code, {"async": bool(result.get("async"))}
        )

    async def _check(self, code: bytes, limits: Limits) -> dict[str, Any]:
        argv = [sys.executable, "-I", "-m", "plugins.python.check"]
        argv += [str(limits.memory_mb), str(limits.tmp_mb)]
        with self._sandbox.command(argv, tmp_mb=limits.tmp_mb) as command:
            process = await asyncio.create_subprocess_exec(
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=command.env,
                cwd=command.cwd,
                pass_fds=command.pass_fds,
            )
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                out, err, _ = await asyncio.gather(
                    read_capped(process.stdout, CHECK_OUTPUT_BYTES),
                    read_capped(process.stderr, CHECK_OUTPUT_BYTES),
                    _feed(process, code),
                )
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            return {"ok": False, "error": f"importing the code took over {CHECK_TIMEOUT_S:g} s"}
        try:
            answer: dict[str, Any] = orjson.loads(out.splitlines()[-1])
            return answer
        except (IndexError, orjson.JSONDecodeError):
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"ok": False, "error": f"checking the code crashed: {tail[0]!r}"}

    async def load(self, artifact: Artifact, fn: FunctionInfo) -> LoadedPython:
        name = f"{hashlib.sha256(artifact.data).hexdigest()}.py"
        path = write_once(self._dir / "code" / name, artifact.data, mode=0o644)
        options = PoolOptions(**{**_defaults(), **fn.options.get("pool", {})})
        pool = FunctionPool(
            lambda: self._spawn(fn, path), options, budget=self._budget, tenant=fn.tenant
        )
        await pool.start()
        self._pools.add(pool)
        return LoadedPython(fn.function_id, pool)

    async def _spawn(self, fn: FunctionInfo, code: Path) -> WorkerProcess:
        limits = fn.limits
        argv = [sys.executable, "-I", "-m", "plugins.python.worker", fn.function_id, CODE_PATH]
        argv += [str(limits.memory_mb), str(limits.tmp_mb), str(limits.max_output_bytes)]
        files = {CODE_PATH: code}
        with self._sandbox.command(argv, env=fn.env, tmp_mb=limits.tmp_mb, files=files) as command:
            return await WorkerProcess.start(
                command.argv,
                env=command.env,
                cwd=command.cwd,
                pass_fds=command.pass_fds,
                max_frame=limits.max_output_bytes + LOG_FRAME_BYTES,
                name=f"python {fn.tenant}/{fn.function_id}@{fn.version}",
            )

    async def unload(self, loaded: LoadedPython) -> None:
        self._pools.discard(loaded.pool)
        await loaded.pool.close()

    async def invoke(self, loaded: LoadedPython, call: Call) -> CallResult:
        meta = [
            call.execution_id,
            call.trace_id,
            time.time() + call.remaining_s(),
            dict(call.secrets),
            dict(call.caller),
            call.custom,
        ]
        answerer = None if call.invoke is None else _answerer(call.invoke)
        frame = await loaded.pool.call(meta, call.input, call.deadline, answerer)
        logs = tuple(LogEntry(*entry) for entry in frame.meta[-1])
        status = frame.meta[0]
        if status == "ok":
            return CallResult(frame.data, logs)
        if status == "too_large":
            limit = call.limits.max_output_kb
            message = f"{frame.meta[1]}, over limits.max_output_kb ({limit} KiB)"
            raise OutputTooLarge(message, logs=list(logs))
        raise FunctionFailed(frame.meta[1], logs=list(logs))


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


def _defaults() -> dict[str, Any]:
    return {"max_size": os.cpu_count() or 2}


def _answerer(invoke: CallFunction) -> Answerer:
    """Answers the worker's ``context.invoke`` questions: ``["invoke", ref]`` with the input
    JSON, answered ``["ok"]`` with the output JSON or ``["error", code, detail]``."""

    async def answer(meta: Any, data: bytes) -> tuple[Any, bytes]:
        if not (isinstance(meta, list) and len(meta) == 2 and meta[0] == "invoke"):
            return ["error", "invalid_request", "the worker asked something unknown"], b""
        if not isinstance(meta[1], str):
            return ["error", "invalid_request", "context.invoke takes a function id"], b""
        try:
            return ["ok"], await invoke(meta[1], data)
        except CallRefused as exc:
            return ["error", exc.code, exc.detail], b""

    return answer
