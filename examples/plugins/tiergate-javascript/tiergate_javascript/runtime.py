"""Node.js workers for ``export default function handler(event, context)`` modules.

Only the public plugin API (``import tiergate``) is used: ``WorkerProcess`` speaks tiergate's
frame protocol (``worker.mjs`` implements the other end) and ``FunctionPool`` gives the pool
kinds, timeouts and crash handling.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import tiergate

WORKER = Path(__file__).with_name("worker.mjs")
MIN_NODE = 18
CHECK_TIMEOUT_S = 20.0


@dataclass
class LoadedModule:
    pool: tiergate.FunctionPool


class JavaScriptRuntime(tiergate.Runtime[LoadedModule]):
    name: ClassVar[str] = "javascript"
    manifest_options: ClassVar[dict[str, Any]] = {"pool": tiergate.POOL_SCHEMA}

    def __init__(self, context: tiergate.PluginContext) -> None:
        self._node_option = context.options.get("javascript", {}).get("node")
        self._dir = context.data_dir / "javascript"
        self._pools: set[tiergate.FunctionPool] = set()
        self._budget = context.worker_budget

    @property
    def node(self) -> str | None:
        return self._node_option or shutil.which("node")

    def check(self) -> None:
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
        for part in ("code", "work"):
            (self._dir / part).mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        pools, self._pools = self._pools, set()
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def artifact_key(self, limits: tiergate.Limits) -> str:
        return "javascript-esm"

    async def compile(self, source: tiergate.Source) -> tiergate.Artifact:
        path = self._code_file(source.code)
        process = await asyncio.create_subprocess_exec(
            str(self.node), str(WORKER), "check", str(path), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd=self._dir / "work")
        try:
            out, _ = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            raise tiergate.CompileError("loading the module took too long") from None
        result = json.loads(out.decode().strip().splitlines()[-1] or "{}")
        if not result.get("ok"):
            line = result.get("line")
            suffix = f" (line {line})" if line else ""
            raise tiergate.CompileError(f"{result.get('error')}{suffix}", line=line)
        return tiergate.Artifact(self.artifact_key(source.limits), source.code)

    def _code_file(self, code: bytes) -> Path:
        name = f"{hashlib.sha256(code).hexdigest()}.mjs"
        return tiergate.write_once(self._dir / "code" / name, code)

    async def load(self, artifact: tiergate.Artifact, fn: tiergate.FunctionInfo) -> LoadedModule:
        path = self._code_file(artifact.data)
        options = tiergate.PoolOptions(**fn.options.get("pool", {}))
        pool = tiergate.FunctionPool(lambda: self._spawn(fn, path), options,
                                     budget=self._budget, tenant=fn.tenant)
        await pool.start()
        self._pools.add(pool)
        return LoadedModule(pool)

    async def _spawn(self, fn: tiergate.FunctionInfo, code: Path) -> tiergate.WorkerProcess:
        workdir = tempfile.mkdtemp(dir=self._dir / "work")
        memory = f"--max-old-space-size={fn.limits.memory_mb}"
        argv = [str(self.node), memory, str(WORKER), "run", fn.function_id, str(code)]
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, **fn.env}
        worker = await tiergate.WorkerProcess.start(argv, env=env, cwd=workdir)
        worker.exited.add_done_callback(lambda _: shutil.rmtree(workdir, ignore_errors=True))
        return worker

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
