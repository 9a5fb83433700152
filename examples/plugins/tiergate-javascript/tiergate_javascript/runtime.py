"""Node.js workers for ``export default function handler(event, context)`` modules.

Only the public plugin API (``import tiergate``) is used: ``WorkerProcess`` speaks tiergate's
frame protocol (``worker.mjs`` implements the other end), ``FunctionPool`` gives the pool
kinds, timeouts and crash handling, and ``Sandbox.command`` starts every node process (the deploy
check too: importing a module runs its code) in tiergate's sandbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import tiergate

WORKER = Path(__file__).with_name("worker.mjs")
MIN_NODE = 18
CHECK_TIMEOUT_S = 20.0
CHECK_OUTPUT_BYTES = 64 * 1024
CODE = "/function/handler.mjs"
WORKER_INSIDE = "/function/worker.mjs"
LOG_FRAME_BYTES = 8 * 1024 * 1024


@dataclass
class LoadedModule:
    pool: tiergate.FunctionPool


class JavaScriptRuntime(tiergate.Runtime[LoadedModule]):
    name: ClassVar[str] = "javascript"
    manifest_options: ClassVar[dict[str, Any]] = {"pool": tiergate.POOL_SCHEMA}

    def __init__(self, context: tiergate.PluginContext) -> None:
        self._node_option = context.options.get("javascript", {}).get("node")
        self._dir = context.data_dir / "javascript"
        self._sandbox = context.sandbox
        self._pools: set[tiergate.FunctionPool] = set()
        self._budget = context.worker_budget

    @property
    def node(self) -> str | None:
        return self._node_option or shutil.which("node")

    def check(self) -> None:
        self._sandbox.require()
        node = self.node
        if not node or not Path(node).exists():
            raise tiergate.RuntimeUnavailable(
                "node not found on PATH; install nodejs (18 or newer) or set "
                "TIERGATE_JAVASCRIPT_NODE to its path"
            )
        try:
            version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise tiergate.RuntimeUnavailable(f"{node} does not run: {exc}") from None
        major = int(re.match(r"v(\d+)", version).group(1)) if re.match(r"v\d+", version) else 0
        if major < MIN_NODE:
            raise tiergate.RuntimeUnavailable(f"{node} is {version or 'unknown'}; need Node "
                                              f"{MIN_NODE} or newer")

    async def start(self) -> None:
        (self._dir / "code").mkdir(parents=True, exist_ok=True)

    def _files(self, code: Path) -> dict[str, Path]:
        """What a sandboxed node sees besides the system: its code, the worker, and node itself
        when it is not the system's."""
        node = Path(str(self.node))
        files = {CODE: code, WORKER_INSIDE: WORKER}
        if not node.is_relative_to("/usr"):
            files[str(node)] = node
        return files

    async def close(self) -> None:
        pools, self._pools = self._pools, set()
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def artifact_key(self, limits: tiergate.Limits) -> str:
        return "javascript-esm"

    async def compile(self, source: tiergate.Source) -> tiergate.Artifact:
        path = self._code_file(source.code)
        argv = [str(self.node), WORKER_INSIDE, "check", CODE]
        with self._sandbox.command(argv, tmp_mb=source.limits.tmp_mb,
                                   files=self._files(path)) as command:
            process = await asyncio.create_subprocess_exec(
                *command.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                env=command.env, cwd=command.cwd, pass_fds=command.pass_fds)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                out = await tiergate.read_capped(process.stdout, CHECK_OUTPUT_BYTES)
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise tiergate.CompileError("loading the module took too long") from None
        try:
            result = json.loads(out.decode(errors="replace").strip().splitlines()[-1])
        except (IndexError, ValueError):
            result = {"ok": False, "error": "checking the module crashed"}
        if not result.get("ok"):
            line = result.get("line")
            suffix = f" (line {line})" if line else ""
            raise tiergate.CompileError(f"{result.get('error')}{suffix}", line=line)
        return tiergate.Artifact(self.artifact_key(source.limits), source.code)

    def _code_file(self, code: bytes) -> Path:
        name = f"{hashlib.sha256(code).hexdigest()}.mjs"
        return tiergate.write_once(self._dir / "code" / name, code, mode=0o644)

    async def load(self, artifact: tiergate.Artifact, fn: tiergate.FunctionInfo) -> LoadedModule:
        path = self._code_file(artifact.data)
        options = tiergate.PoolOptions(**fn.options.get("pool", {}))
        pool = tiergate.FunctionPool(lambda: self._spawn(fn, path), options,
                                     budget=self._budget, tenant=fn.tenant)
        await pool.start()
        self._pools.add(pool)
        return LoadedModule(pool)

    async def _spawn(self, fn: tiergate.FunctionInfo, code: Path) -> tiergate.WorkerProcess:
        memory = f"--max-old-space-size={fn.limits.memory_mb - fn.limits.tmp_mb}"
        argv = [str(self.node), memory, WORKER_INSIDE, "run", fn.function_id, CODE]
        with self._sandbox.command(argv, env=fn.env, tmp_mb=fn.limits.tmp_mb,
                                   files=self._files(code)) as command:
            return await tiergate.WorkerProcess.start(
                command.argv, env=command.env, cwd=command.cwd, pass_fds=command.pass_fds,
                max_frame=fn.limits.max_output_bytes + LOG_FRAME_BYTES,
                name=f"javascript {fn.tenant}/{fn.function_id}@{fn.version}")

    async def unload(self, loaded: LoadedModule) -> None:
        self._pools.discard(loaded.pool)
        await loaded.pool.close()

    async def invoke(self, loaded: LoadedModule, call: tiergate.Call) -> tiergate.CallResult:
        meta = [call.execution_id, call.trace_id, time.time() + call.remaining_s(),
                dict(call.secrets)]
        frame = await loaded.pool.call(meta, call.input, call.deadline)
        logs = tuple(tiergate.LogEntry(*entry) for entry in frame.meta[-1])
        if frame.meta[0] == "ok":
            return tiergate.CallResult(frame.data, logs)
        raise tiergate.FunctionFailed(frame.meta[1], logs=list(logs))
