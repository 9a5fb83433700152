"""The core JSON ABI: ``alloc(len) -> ptr``, ``handle(ptr, len) -> (ptr << 32) | len``, and the
host imports ``tiergate.log`` / ``tiergate.fail``.

The imports are defined through the C API with our own callbacks: wasmtime-py's trampoline keeps a
raised exception in a module global that is not thread-safe. Per-call state (logs, the failure
message) lives in a thread-local, since a call runs start to end on one wasm thread.

Nothing a module hands over is copied whole: a log entry or failure message reads at most the
per-entry cap out of guest memory, and logs past the execution's allowance are only counted
(``plugins.logs``); an output longer than the call's cap is refused before it is copied.
"""

from __future__ import annotations

import ctypes
import threading
import time
from ctypes import byref
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from plugins.logs import ENTRY_BYTES, LogBudget

from . import capi

_call = threading.local()
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


def guest_address(caller: object, ptr: int, length: int) -> int:
    """The host address of ``(ptr, length)`` in the calling module's memory, which must hold
    all of it (``ValueError`` otherwise)."""
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_caller_export_get(caller, b"memory", 6, byref(item)):
        raise ValueError("the module exports no memory")
    ctx = ffi.wasmtime_caller_context(caller)
    base = ffi.wasmtime_memory_data(ctx, byref(item.of.memory))
    size = ffi.wasmtime_memory_data_size(ctx, byref(item.of.memory))
    ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
    if ptr + length > size:
        raise ValueError(f"({ptr}, {length}) is outside the module's memory")
    return ctypes.addressof(base.contents) + ptr


def _guest_bytes(caller: object, ptr: int, length: int) -> bytes:
    """At most ``ENTRY_BYTES`` + 1 bytes (enough for the log cap to see that a longer message is
    longer) of ``(ptr, length)`` in the caller's memory, which must hold all of it."""
    address = guest_address(caller, ptr, length)
    return ctypes.string_at(address, min(length & 0xFFFFFFFF, ENTRY_BYTES + 1))


def trap(message: str) -> int:
    """A new trap carrying ``message``, as a host callback returns it to end the call."""
    data = message.encode()
    made = ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data))
    return ctypes.cast(made, ctypes.c_void_p).value or 0


@ffi.wasmtime_func_callback_t
def _log(env, caller, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    length = args[1].of.i32 & 0xFFFFFFFF
    try:
        text = _guest_bytes(caller, args[0].of.i32, length).decode(errors="replace")
    except ValueError as exc:
        return trap(f"tiergate.log: {exc}")
    outcome: CoreCall = _call.outcome
    if outcome.budget is None:
        outcome.budget = LogBudget.for_worker()
    budget = outcome.budget
    if not budget.left:
        budget.drop(length)
    elif (message := budget.fit(text)) is not None:
        outcome.logs.append([time.time(), "log", message])
    return 0


@ffi.wasmtime_func_callback_t
def _fail(env, caller, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    try:
        text = _guest_bytes(caller, args[0].of.i32, args[1].of.i32).decode(errors="replace")
    except ValueError as exc:
        text = f"tiergate.fail: {exc}"
    _call.outcome.failure = text or "tiergate.fail called with an empty message"
    return trap(_call.outcome.failure)


def define_imports(linker: wasmtime.Linker) -> None:
    """``tiergate.log`` and ``tiergate.fail``, for core modules."""
    for name, callback in ((b"log", _log), (b"fail", _fail)):
        define(linker, name, callback, params=2, results=0)


def define(
    linker: wasmtime.Linker, name: bytes, callback: object, *, params: int, results: int
) -> None:
    """Define ``tiergate.<name>`` taking and returning that many i32s. A fresh ``FuncType`` per
    definition: wasmtime ties a defined type to the first engine it met, and reusing one across
    the plain and fuel engines aborts the process."""
    host_type = wasmtime.FuncType(
        [wasmtime.ValType.i32() for _ in range(params)],
        [wasmtime.ValType.i32() for _ in range(results)],
    )
    error = ffi.wasmtime_linker_define_func(
        linker.ptr(),
        ctypes.create_string_buffer(b"tiergate"),
        8,
        ctypes.create_string_buffer(name),
        len(name),
        host_type.ptr(),
        callback,
        None,
        _NO_FINALIZER,
    )
    if error:
        raise RuntimeError(capi.take_error(error).message)


class CoreCall:
    """What one call produced; ``failure`` is set when the module called ``tiergate.fail``.
    ``output_size`` is the length ``handle`` returned; ``output`` is empty when that is over the
    cap. ``budget`` is made at the first log entry (most calls log nothing). ``logs`` holds the
    entries not sent yet: in a worker, a thread of its own takes them (``take``) while the call
    runs (``log_flusher``); the rest go with the answer."""

    __slots__ = ("budget", "failure", "logs", "output", "output_size")

    def __init__(self) -> None:
        self.logs: list[list[Any]] = []  # [ts, stream, message], ready for the frame
        self.budget: LogBudget | None = None
        self.failure: str | None = None
        self.output: bytes = b""
        self.output_size = 0

    def take(self) -> list[list[Any]]:
        """The entries logged since the last ``take``. Lock-free: ``tiergate.log`` only appends,
        on the call's thread, and the slice and the delete are each atomic, so an entry appended
        between them stays for the next ``take``."""
        logs = self.logs
        count = len(logs)
        taken = logs[:count]
        del logs[:count]
        return taken


class Instance:
    """An instance of a core module in its store, with the exports a call uses, looked up once:
    for one call (a fresh instance), or for many (a warm one, ``limits.isolation: warm``)."""

    __slots__ = ("alloc", "handle", "memory", "store")

    def __init__(self, store: capi.Store, pre_ptr: object) -> None:
        self.store = store
        instance = store.instantiate(pre_ptr)
        self.memory = store.export(instance, b"memory").of.memory
        self.alloc = store.export(instance, b"alloc").of.func
        self.handle = store.export(instance, b"handle").of.func

    def memory_size(self) -> int:
        return self.store.memory(self.memory)[1]

    def call(self, data: bytes, max_output: int, outcome: CoreCall) -> None:
        """Write the input at ``alloc(len)``, call ``handle``, read the output."""
        _call.outcome = outcome
        try:
            store, out = self.store, capi.results(1)
            store.call(self.alloc, capi.i32_args(len(data)), 1, out, 1)
            ptr = out[0].of.i32 & 0xFFFFFFFF
            base, size = store.memory(self.memory)
            if ptr + len(data) > size:
                raise capi.WasmEnded(capi.Trap(f"alloc returned {ptr}, outside memory ({size} B)"))
            ctypes.memmove(base + ptr, data, len(data))
            store.call(self.handle, capi.i32_args(ptr, len(data)), 2, out, 1)
            packed = out[0].of.i64 & 0xFFFFFFFFFFFFFFFF
            start, length = packed >> 32, packed & 0xFFFFFFFF
            base, size = store.memory(self.memory)
            if start + length > size:
                message = f"handle returned ({start}, {length}), outside memory"
                raise capi.WasmEnded(capi.Trap(message))
            outcome.output_size = length
            if length <= max_output:
                outcome.output = ctypes.string_at(base + start, length)
        finally:
            _call.outcome = None


def run(
    store: capi.Store, pre_ptr: object, data: bytes, max_output: int, outcome: CoreCall
) -> None:
    """A call on a fresh instance."""
    _call.outcome = outcome  # instantiating runs the start function, which may log
    try:
        instance = Instance(store, pre_ptr)
    finally:
        _call.outcome = None
    instance.call(data, max_output, outcome)
