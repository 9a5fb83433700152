"""Compiling at deploy, each module in a short-lived child process of its own (``main``).

wat2wasm, validation, ABI detection and ``Module.serialize`` never run in the gateway's process
(its event loop or its threads): a module that takes minutes or gigabytes to compile would stall
every deploy and call there. The child caps its own address space (``RLIMIT_AS``, ``MEMORY_BYTES``),
runs at a lower CPU priority than serving, and is killed at the compile timeout. Modules larger
than the size cap are refused before any child starts (413 ``payload_too_large``: the code as sent
is too large, like the contract's code-size limit; nothing about it failed to compile).

At most ``slots`` compiles run at once; modules over ``SMALL_BYTES`` may take all but one slot,
so a small deploy never waits behind big ones. (Compile time only roughly follows size: a small
module built to compile slowly holds a slot until the timeout at worst.)

The child reads the code on stdin and answers one frame on stdout: ``{"abi": ...}`` with the
serialized module as data (``calls``: whether it imports ``tiergate.invoke``), or
``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
from typing import Any

import wasmtime

from plugins.errors import CompileError, PayloadTooLarge
from plugins.workers import FrameReader, describe_exit, encode

from .abi import calls_functions, detect
from .engine import make_engine
from .executor import linker

DEFAULT_MAX_MODULE_MB = 32
DEFAULT_TIMEOUT_S = 60.0
SMALL_BYTES = 1 << 20
MEMORY_BYTES = 4 << 30
NICENESS = 10
CHILD = "from plugins.wasm.compiler import main; main()"  # not -m: the package imports this module


class Compiler:
    """The gateway's side: size check, slots, the child's life and its answer."""

    def __init__(self, max_module_mb: int, timeout_s: float, slots: int) -> None:
        self.max_module_bytes = max_module_mb << 20
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(slots)
        self._big_slots = asyncio.Semaphore(max(1, slots - 1))

    async def compile(self, code: bytes, *, fuel: bool) -> tuple[dict[str, Any], bytes]:
        """(``{"abi", "calls"}``, serialized module) of ``code``, WebAssembly text or binary."""
        if len(code) > self.max_module_bytes:
            raise PayloadTooLarge(
                f"the module is {len(code)} bytes, over the wasm runtime's limit of "
                f"{self.max_module_bytes >> 20} MiB (TIERGATE_WASM_MAX_MODULE_MB)",
                limit=self.max_module_bytes,
            )
        async with contextlib.AsyncExitStack() as slots:
            if len(code) > SMALL_BYTES:
                await slots.enter_async_context(self._big_slots)
            await slots.enter_async_context(self._slots)
            return await self._run(code, fuel)

    async def _run(self, code: bytes, fuel: bool) -> tuple[dict[str, Any], bytes]:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-I", "-c", CHILD, str(int(fuel))),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(code), self.timeout_s)
        except TimeoutError:
            raise CompileError(
                f"compiling took longer than {self.timeout_s:g} s (TIERGATE_COMPILE_TIMEOUT_S); "
                "a smaller module, or fewer or smaller functions, compiles faster"
            ) from None
        finally:
            if process.returncode is None:  # timed out, or the deploy was cancelled
                process.kill()
                await process.wait()
        for frame in FrameReader(MEMORY_BYTES).feed(out):
            if "error" in frame.meta:
                raise CompileError(frame.meta["error"])
            return frame.meta, frame.data
        lines = err.decode(errors="replace").strip().splitlines() or ["no message"]
        cause = next((line for line in lines if "memory" in line.lower()), lines[-1])
        raise CompileError(
            f"the compiler stopped ({describe_exit(process.returncode)}; it may use "
            f"{MEMORY_BYTES >> 20} MiB): {cause}"
        )


def compile_module(code: bytes, *, fuel: bool) -> tuple[dict[str, Any], bytes | bytearray]:
    """The child's work: validate, detect the ABI, check every import resolves, serialize."""
    engine = make_engine(fuel=fuel)
    try:
        wasm = code if code.startswith(b"\0asm") else bytes(wasmtime.wat2wasm(code.decode()))
        module = wasmtime.Module(engine, wasm)
        abi = detect(module)
        linker(engine, abi).instantiate_pre(module)
    except UnicodeDecodeError:
        return {"error": "the code is neither a WebAssembly binary nor UTF-8 text"}, b""
    except wasmtime.WasmtimeError as exc:
        return {"error": f"invalid WebAssembly: {exc}"}, b""
    except CompileError as exc:
        return {"error": exc.detail}, b""
    return {"abi": abi, "calls": calls_functions(module)}, module.serialize()


def main() -> None:
    """The child: ``python -c CHILD FUEL`` with the code on stdin."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.nice(NICENESS)
    meta, data = compile_module(sys.stdin.buffer.read(), fuel=sys.argv[-1] == "1")
    sys.stdout.buffer.write(encode(1, meta, data))
