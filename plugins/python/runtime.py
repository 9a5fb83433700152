"""The built-in ``python`` runtime: ``handler(event, context)`` in warm, sandboxed worker processes.

Code never runs in the gateway's interpreter: deploy checks it in a short-lived sandboxed child,
and calls run in a pool of workers dedicated to one function version (so two tenants never share
a process). Every one of those processes starts in a sandbox (``plugins.sandbox``) with a clean
environment — only the function's ``env`` — and the function's code as its only file; the worker
then caps its own memory (``sandbox``). Where no sandbox can be made, the runtime refuses to run
code (``check``). Input and output cross the pipe as raw JSON bytes. A function with ``network``
gets an egress proxy per worker (``plugins.sandbox.proxy``) and an ``EgressLedger`` per call,
whose counts and refusals join the call's metrics and logs.

Code is one source file, or a package: a zip or tar archive (``archive``) holding ``handler.py``
(or the manifest's ``entry``), more modules and a ``requirements.txt``, whose requirements are
resolved at deploy into a shared, read-only environment (``environments``). A package's sandboxes
show its unpacked code at ``/function/code`` and its environment at ``/function/env``, read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
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
    RuntimeUnavailable,
    Source,
    write_once,
)
from plugins.errors import AttemptFailure
from plugins.sandbox import NETWORK_SCHEMA, EgressLedger, EgressProxy
from plugins.workers import (
    POOL_SCHEMA,
    Answerer,
    FunctionPool,
    LogSink,
    PoolOptions,
    WorkerProcess,
    read_capped,
)

from .archive import (
    MIB,
    ArchiveLimits,
    archive_kind,
    find_entry,
    module_of,
    relative_path,
    remove_tree,
    settle,
    unpack,
    unpack_beside,
)
from .disk import LocalTrees
from .environments import Environments, ResolverSettings, number_option, parse_requirements

log = logging.getLogger("tiergate.python")

CHECK_TIMEOUT_S = 30.0
CHECK_OUTPUT_BYTES = 64 * 1024
CODE_PATH = "/function/handler.py"
PACKAGE_PATH = "/function/code"
ENV_PATH = "/function/env"
ENTRY_PATTERN = r"^([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\.py$"
ENTRY_SCHEMA = {
    "type": "string",
    "maxLength": 255,
    "pattern": ENTRY_PATTERN,
    "description": "The file of a code archive whose module defines handler (default "
    "handler.py), relative to the archive's root or its one top-level directory",
}
STORED = ArchiveLimits(max_files=2**62, max_bytes=2**62)
"""An archive stored by a deploy passed the limits of its day; a load does not refuse it again."""
UNENFORCED = (
    "function %s has network.allow, but TIERGATE_SANDBOX=none: its code runs with the host's "
    "network, and the list is not enforced"
)
LOG_FRAME_BYTES = 8 * 1024 * 1024  # 1 MiB of log text, JSON-escaped at worst, and the rest


@dataclass
class LoadedPython:
    function_id: str
    pool: FunctionPool
    network: bool = False  # manifest network: each call gets an EgressLedger
    paths: tuple[Path, ...] = ()  # what it holds in ``LocalTrees``: code file or tree, env


@dataclass(frozen=True, slots=True)
class Package:
    """A package as its sandboxes show it: the code directory (on the host), the entry module
    and the environment directory, if it has requirements."""

    code: Path
    module: str
    env: Path | None = None

    @property
    def files(self) -> dict[str, Path]:
        return {PACKAGE_PATH: self.code, **({ENV_PATH: self.env} if self.env else {})}

    @property
    def argv(self) -> list[str]:
        """``MODULE [ENV_PATH]``: what the worker and the check take after the limits."""
        return [self.module, *([ENV_PATH] if self.env else [])]


class PythonRuntime(Runtime[LoadedPython]):
    name: ClassVar[str] = "python"
    manifest_options: ClassVar[dict[str, Any]] = {
        "pool": POOL_SCHEMA,
        "entry": ENTRY_SCHEMA,
        "network": NETWORK_SCHEMA,
    }

    def __init__(self, context: PluginContext) -> None:
        self._dir = context.data_dir / "python"
        self._sandbox = context.sandbox
        self._pools: set[FunctionPool] = set()
        self._budget = context.worker_budget
        options = context.options.get("python", {})
        self._problem: str | None = None
        try:
            resolver = ResolverSettings.from_options(options)
            self._limits = ArchiveLimits(
                max_files=max(1, int(number_option(options, "max_files", 1000))),
                max_bytes=int(number_option(options, "max_unpacked_mb", 64) * MIB),
            )
            max_disk = int(number_option(options, "max_disk_mb", 10240) * MIB)
        except ValueError as exc:
            self._problem, resolver, self._limits = str(exc), ResolverSettings(), ArchiveLimits()
            max_disk = 10240 * MIB
        self._envs = Environments(self._dir / "envs", resolver)
        self._trees = LocalTrees((self._dir / "code", self._envs.root), max_disk)

    def check(self) -> None:
        if self._problem:
            raise RuntimeUnavailable(self._problem)
        self._sandbox.require()

    async def start(self) -> None:
        (self._dir / "code").mkdir(parents=True, exist_ok=True)
        self._envs.root.mkdir(parents=True, exist_ok=True)
        await self._trees.start()

    async def close(self) -> None:
        pools, self._pools = self._pools, set()
        await asyncio.gather(*(p.close() for p in pools), return_exceptions=True)

    def artifact_key(self, limits: Limits) -> str:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}"

    async def compile(self, source: Source) -> Artifact:
        if "network" in source.options and not self._sandbox.isolated:
            log.warning(UNENFORCED, source.function_id)
        if archive_kind(source.code) is not None:
            return await self._compile_package(source)
        if source.options.get("entry") is not None:
            raise CompileError(
                "entry names a file in a code archive (zip or tar); a single source file is its "
                "own entry",
                field="entry",
            )
        result = await self._check(source.code, source.limits)
        return Artifact(
            self.artifact_key(source.limits), source.code, {"async": _verdict(result)}
        )

    async def _compile_package(self, source: Source) -> Artifact:
        """Unpack (beside its final place), resolve the requirements, check in a sandbox; the
        tree is kept only when the code passed."""
        tree = self._tree(source.code)
        staged = await asyncio.to_thread(unpack_beside, source.code, tree, self._limits)
        try:
            root, entry = find_entry(staged, source.options.get("entry"))
            listed = staged / root / "requirements.txt"
            requirements = parse_requirements(listed.read_bytes()) if listed.is_file() else []
            env = await self._envs.resolve(requirements) if requirements else None
            package = Package(
                staged / root, module_of(entry), self._envs.path(env.sha256) if env else None
            )
            is_async = _verdict(await self._check(b"", source.limits, package))
            await asyncio.to_thread(settle, staged, tree)
        finally:
            await asyncio.to_thread(remove_tree, staged)
        for made in (tree, package.env):
            if made is not None:
                self._trees.touch(made)
        await self._trees.sweep()
        metadata: dict[str, Any] = {"async": is_async, "package": {"root": root, "entry": entry}}
        if env is not None:
            metadata["environment"] = env.record
        return Artifact(self.artifact_key(source.limits), source.code, metadata)

    def _tree(self, archive: bytes) -> Path:
        return self._dir / "code" / hashlib.sha256(archive).hexdigest()

    async def _check(
        self, code: bytes, limits: Limits, package: Package | None = None
    ) -> dict[str, Any]:
        argv = [sys.executable, "-I", "-m", "plugins.python.check"]
        argv += [str(limits.memory_mb), str(limits.tmp_mb)]
        files = {}
        if package is not None:
            argv += [package.module, PACKAGE_PATH, *package.argv[1:]]
            files = package.files
        with self._sandbox.command(argv, tmp_mb=limits.tmp_mb, files=files) as command:
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
        """Hold the code's paths in ``LocalTrees`` before making them, so that no sweep removes
        them while the function is loaded."""
        path: Path | Package
        held = self._paths(artifact)
        self._trees.hold(held)
        try:
            if isinstance(artifact.metadata.get("package"), dict):
                path = await self._package(artifact)
            else:
                path = write_once(held[0], artifact.data, mode=0o644)
            options = PoolOptions(**{**_defaults(), **fn.options.get("pool", {})})
            pool = FunctionPool(
                lambda: self._spawn(fn, path), options, budget=self._budget, tenant=fn.tenant
            )
            await pool.start()
        except BaseException:
            self._trees.release(held)
            raise
        self._pools.add(pool)
        await self._trees.sweep()
        return LoadedPython(fn.function_id, pool, "network" in fn.options, held)

    def _paths(self, artifact: Artifact) -> tuple[Path, ...]:
        """Where this artifact's code file or tree, and its environment, are on this disk."""
        if not isinstance(artifact.metadata.get("package"), dict):
            return (self._dir / "code" / f"{hashlib.sha256(artifact.data).hexdigest()}.py",)
        recorded = artifact.metadata.get("environment")
        sha256 = recorded.get("sha256") if isinstance(recorded, dict) else None
        env = (self._envs.path(sha256),) if isinstance(sha256, str) and sha256.isalnum() else ()
        return (self._tree(artifact.data), *env)

    async def _package(self, artifact: Artifact) -> Package:
        """A deployed package's tree (unpacked again where this gateway lacks it) and its
        environment (rebuilt from the recorded lock where it lacks that)."""
        described = artifact.metadata["package"]
        root, entry = described.get("root"), described.get("entry")
        if not (isinstance(root, str) and "/" not in root and relative_path(root) == root
                and isinstance(entry, str) and re.match(ENTRY_PATTERN, entry)):
            raise RuntimeUnavailable("the version's recorded package layout is malformed")
        tree = await asyncio.to_thread(unpack, artifact.data, self._tree(artifact.data), STORED)
        recorded = artifact.metadata.get("environment")
        env = await self._envs.ensure(recorded) if isinstance(recorded, dict) else None
        return Package(tree / root, module_of(entry), env)

    async def _spawn(self, fn: FunctionInfo, code: Path | Package) -> WorkerProcess:
        limits = fn.limits
        target = PACKAGE_PATH if isinstance(code, Package) else CODE_PATH
        argv = [sys.executable, "-I", "-m", "plugins.python.worker", fn.function_id, target]
        argv += [str(limits.memory_mb), str(limits.tmp_mb), str(limits.max_output_bytes)]
        if isinstance(code, Package):
            argv += code.argv
        files = code.files if isinstance(code, Package) else {CODE_PATH: code}
        egress = await self._egress(fn)
        try:
            with self._sandbox.command(
                argv, env=fn.env, tmp_mb=limits.tmp_mb, files=files, egress=egress
            ) as command:
                worker = await WorkerProcess.start(
                    command.argv,
                    env=command.env,
                    cwd=command.cwd,
                    pass_fds=command.pass_fds,
                    max_frame=limits.max_output_bytes + LOG_FRAME_BYTES,
                    name=f"python {fn.tenant}/{fn.function_id}@{fn.version}",
                )
        except BaseException:
            if egress is not None:
                egress.close()
            raise
        if egress is not None:  # the worker's connections count for the call it runs
            egress.follow(lambda: worker.context, worker.exited)
        return worker

    async def _egress(self, fn: FunctionInfo) -> EgressProxy | None:
        """A started proxy for a worker of a function with ``network``; None without (or
        where code runs unsandboxed, with the host's network: see ``UNENFORCED``)."""
        network = fn.options.get("network")
        proxy = self._sandbox.egress(network["allow"]) if network else None
        if proxy is not None:
            await proxy.start()
        return proxy

    async def unload(self, loaded: LoadedPython) -> None:
        self._pools.discard(loaded.pool)
        try:
            await loaded.pool.close()
        finally:
            self._trees.release(loaded.paths)

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
        ledger = EgressLedger() if loaded.network else None
        written: list[LogEntry] = []  # streamed entries, where the caller takes none as they come
        on_log = _log_sink(call.on_log or written.append)
        try:
            frame = await loaded.pool.call(
                meta, call.input, call.deadline, answerer, ledger, on_log
            )
        except AttemptFailure as failure:  # timed out, crashed: its connections still count
            failure.logs = [*written, *failure.logs]
            if ledger is not None:
                ledger.close()
                failure.logs += [LogEntry(*entry) for entry in ledger.entries]
                failure.metrics = ledger.metrics()
            raise
        finally:
            if ledger is not None:
                ledger.close()  # the call's connections end with it
        entries, metrics = frame.meta[-1], {}
        if ledger is not None:
            entries, metrics = ledger.merged(entries), ledger.metrics()
        logs = (*written, *_entries(entries))
        status = frame.meta[0]
        if status == "ok":
            return CallResult(frame.data, logs, metrics)
        if status == "too_large":
            limit = call.limits.max_output_kb
            message = f"{frame.meta[1]}, over limits.max_output_kb ({limit} KiB)"
            raise OutputTooLarge(message, logs=list(logs), metrics=metrics)
        raise FunctionFailed(frame.meta[1], logs=list(logs), metrics=metrics)


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
        await process.stdin.drain()
        process.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass


def _entries(raw: Any) -> list[LogEntry]:
    """The well-formed ``[ts, stream, message, level]`` entries of what a worker sent (its code
    may forge frames: anything else is dropped)."""
    if not isinstance(raw, list):
        return []
    return [
        LogEntry(float(entry[0]), entry[1], entry[2], entry[3])
        for entry in raw
        if isinstance(entry, list)
        and len(entry) == 4
        and isinstance(entry[0], int | float)
        and entry[1] in ("stdout", "stderr", "log")
        and isinstance(entry[2], str)
        and (entry[3] is None or isinstance(entry[3], str))
    ]


def _log_sink(take: Callable[[LogEntry], None]) -> LogSink:
    """Hands each entry a worker streams (``child.log``) to ``take`` as it comes."""

    def sink(raw: list[Any]) -> None:
        for entry in _entries(raw):
            take(entry)

    return sink


def _verdict(result: Mapping[str, Any]) -> bool:
    """Whether the checked handler is ``async``; ``CompileError`` when the check failed."""
    if not result.get("ok"):
        message = str(result.get("error", "the code does not load"))
        line, file = result.get("line"), result.get("file")
        where = f" ({file}, line {line})" if file and line else f" (line {line})" if line else ""
        if where and where.strip() in message:  # a SyntaxError says where already
            where = ""
        raise CompileError(f"{message}{where}", line=line, **({"file": file} if file else {}))
    return bool(result.get("async"))


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
