"""The built-in ``python`` runtime: ``handler(event, context)`` in warm, sandboxed worker processes.

Code never runs in the gateway's interpreter: deploy checks it in a short-lived sandboxed child,
and calls run in a pool of workers dedicated to one function version (so two tenants never share
a process). Each worker starts with a clean environment — only the function's ``env`` — in an
empty private directory, caps its memory, leaves the network and, when started as root, gives up
root (see ``sandbox``). Input and output cross the pipe as raw JSON bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson

from plugins import (
    Artifact,
    Call,
    CallResult,
    CompileError,
    FunctionFailed,
    FunctionInfo,
    Limits,
    LogEntry,
    PluginContext,
    Runtime,
    Source,
    write_once,
)
from plugins.workers import POOL_SCHEMA, FunctionPool, PoolOptions, WorkerProcess

from .jail import Jail

log = logging.getLogger("tiergate.python")

CHECK_TIMEOUT_S = 30.0


@dataclass
class LoadedPython:
    function_id: str
    pool: FunctionPool


class PythonRuntime(Runtime[LoadedPython]):
    name: ClassVar[str] = "python"
    manifest_options: ClassVar[dict[str, Any]] = {"pool": POOL_SCHEMA}

    def __init__(self, context: PluginContext) -> None:
        self._dir = context.data_dir / "python"
        self._use_jail = context.options.get("python", {}).get("jail", "auto") != "off"
        self._jail: Jail | None = None
        self._pools: set[FunctionPool] = set()
        self._budget = context.worker_budget
        self.network_isolated: bool | None = None

    async def start(self) -> None:
        (self._dir / "code").mkdir(parents=True, exist_ok=True)
        (self._dir / "work").mkdir(parents=True, exist_ok=True)
        self._jail = await asyncio.get_running_loop().run_in_executor(None, Jail, self._use_jail)
        log.info("python workers: %s", self._jail.describe())

    @property
    def jail(self) -> Jail:
        assert self._jail is not None, "start() first"
        return self._jail

    async def close(self) -> None:
        pools, self._pools = self._pools, set()
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def artifact_key(self, limits: Limits) -> str:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}"

    async def compile(self, source: Source) -> Artifact:
        result = await self._check(source.code, source.limits.memory_mb)
        if not result.get("ok"):
            message = str(result.get("error", "the code does not load"))
            line = result.get("line")
            where = f" (line {line})" if line else ""
            raise CompileError(f"{message}{where}", line=line)
        return Artifact(
            self.artifact_key(source.limits), source.code, {"async": bool(result.get("async"))}
        )

    async def _check(self, code: bytes, memory_mb: int) -> dict[str, Any]:
        workdir = tempfile.mkdtemp(dir=self._dir / "work")
        argv = self.jail.wrap(
            [sys.executable, "-I", "-m", "plugins.python.check", str(memory_mb)], workdir
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_clean_env({}, workdir),
                cwd=workdir,
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(code), CHECK_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
                return {"ok": False, "error": f"importing the code took over {CHECK_TIMEOUT_S:g} s"}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        try:
            return orjson.loads(out.splitlines()[-1])
        except (IndexError, orjson.JSONDecodeError):
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"ok": False, "error": f"checking the code crashed: {tail[0]}"}

    async def load(self, artifact: Artifact, fn: FunctionInfo) -> LoadedPython:
        name = f"{hashlib.sha256(artifact.data).hexdigest()}.py"
        path = write_once(self._dir / "code" / name, artifact.data)
        options = PoolOptions(**{**_defaults(), **fn.options.get("pool", {})})
        pool = FunctionPool(
            lambda: self._spawn(fn, path), options, budget=self._budget, tenant=fn.tenant
        )
        await pool.start()
        self._pools.add(pool)
        return LoadedPython(fn.function_id, pool)

    async def _spawn(self, fn: FunctionInfo, code: Path) -> WorkerProcess:
        workdir = tempfile.mkdtemp(dir=self._dir / "work")
        argv = [
            sys.executable,
            "-I",
            "-m",
            "plugins.python.worker",
            fn.function_id,
            str(code),
            str(fn.limits.memory_mb),
        ]
        argv = self.jail.wrap(argv, workdir, readable=[str(code)])
        try:
            worker = await WorkerProcess.start(argv, env=_clean_env(fn.env, workdir), cwd=workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        worker.exited.add_done_callback(lambda _: shutil.rmtree(workdir, ignore_errors=True))
        self.network_isolated = bool(worker.hello[1])
        return worker

    async def unload(self, loaded: LoadedPython) -> None:
        self._pools.discard(loaded.pool)
        await loaded.pool.close()

    async def invoke(self, loaded: LoadedPython, call: Call) -> CallResult:
        meta = [
            call.execution_id,
            call.trace_id,
            time.time() + call.remaining_s(),
            dict(call.secrets),
        ]
        frame = await loaded.pool.call(meta, call.input, call.deadline)
        logs = tuple(LogEntry(*entry) for entry in frame.meta[-1])
        if frame.meta[0] == "ok":
            return CallResult(frame.data, logs)
        raise FunctionFailed(frame.meta[1], logs=list(logs))


def _defaults() -> dict[str, Any]:
    return {"max_size": os.cpu_count() or 2}


def _clean_env(env: dict[str, str] | Any, workdir: str) -> dict[str, str]:
    """Nothing of the gateway's environment: a fixed minimum, then the function's own ``env``."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **dict(env),
    }
