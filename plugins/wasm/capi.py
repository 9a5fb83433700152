"""The hot path through wasmtime's C API (``wasmtime._bindings``), which skips the Python wrapper's
per-call type lookups: a fresh store + instance + two calls costs ~28 µs this way against ~87 µs
through the public API (measured on the dev machine). The bindings are private, so the project pins
``wasmtime>=50,<51`` and ``tests/wasm/test_bindings.py`` fails loudly if they change.

Everything here runs on a wasm worker thread; nothing touches the event loop.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from dataclasses import dataclass
from typing import Any

from wasmtime import _ffi as ffi

_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


def _keeping_gil(*names: str) -> Any:
    """The same C functions through a ``PyDLL`` handle, which does not release the GIL: for calls
    that run no guest code and take microseconds, two GIL hand-offs per call cost more than the
    call (and let the event-loop thread and wasm threads ping-pong). Calls that run guest code
    (instantiate, func_call) keep releasing it."""
    library = ctypes.PyDLL(ffi.dll._name)
    table = type("Bound", (), {})()
    for name in names:
        source = getattr(ffi.dll, name)
        fn = getattr(library, name)
        fn.argtypes, fn.restype = source.argtypes, source.restype
        setattr(table, name, fn)
    return table


_fast = _keeping_gil(
    "wasmtime_store_new",
    "wasmtime_store_context",
    "wasmtime_context_set_epoch_deadline",
    "wasmtime_store_limiter",
    "wasmtime_context_set_fuel",
    "wasmtime_instance_export_get",
    "wasmtime_memory_data",
    "wasmtime_memory_data_size",
    "wasmtime_store_delete",
)
TABLE_ELEMENTS = 1 << 20  # per table: 8 MiB of function references
TABLES = 4
INTERRUPT = ffi.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_INTERRUPT.value
OUT_OF_FUEL = ffi.wasmtime_trap_code_enum.WASMTIME_TRAP_CODE_OUT_OF_FUEL.value


@dataclass(frozen=True, slots=True)
class Trap:
    """How a call ended abnormally: a trap (``code`` set for known kinds) or an error."""

    message: str
    code: int | None = None
    exit_status: int | None = None


class WasmEnded(Exception):
    def __init__(self, trap: Trap) -> None:
        super().__init__(trap.message)
        self.trap = trap


def _vec_text(vec: ffi.wasm_byte_vec_t) -> str:
    text = ctypes.string_at(vec.data, vec.size).decode(errors="replace").rstrip("\0")
    ffi.wasm_byte_vec_delete(byref(vec))
    return text


def take_trap(trap: ctypes._Pointer) -> Trap:  # type: ignore[type-arg]
    code = ffi.wasmtime_trap_code_t()
    known = ffi.wasmtime_trap_code(trap, byref(code))
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_trap_message(trap, byref(vec))
    message = _vec_text(vec)
    ffi.wasm_trap_delete(trap)
    return Trap(message, code.value if known else None)


def take_error(error: ctypes._Pointer) -> Trap:  # type: ignore[type-arg]
    status = ctypes.c_int()
    exited = ffi.wasmtime_error_exit_status(error, byref(status))
    vec = ffi.wasm_byte_vec_t()
    ffi.wasmtime_error_message(error, byref(vec))
    message = _vec_text(vec)
    ffi.wasmtime_error_delete(error)
    return Trap(message, exit_status=status.value if exited else None)


def check(error: ctypes._Pointer, trap: ctypes._Pointer) -> None:  # type: ignore[type-arg]
    if error:
        raise WasmEnded(take_error(error))
    if trap:
        raise WasmEnded(take_trap(trap))


class Store:
    """A store for exactly one call; ``close`` frees it (and its instance) in C. It holds one
    instance with at most one linear memory of ``memory_bytes`` and ``TABLES`` tables of
    ``TABLE_ELEMENTS`` (memory limits apply per memory, so a second one would double them)."""

    __slots__ = ("ctx", "ptr")

    def __init__(self, engine_ptr: object, ticks: int, memory_bytes: int, fuel: int | None) -> None:
        self.ptr = _fast.wasmtime_store_new(engine_ptr, None, _NO_FINALIZER)
        self.ctx = _fast.wasmtime_store_context(self.ptr)
        _fast.wasmtime_context_set_epoch_deadline(self.ctx, ticks)
        _fast.wasmtime_store_limiter(self.ptr, memory_bytes, TABLE_ELEMENTS, 1, TABLES, 1)
        if fuel is not None:
            error = _fast.wasmtime_context_set_fuel(self.ctx, fuel)
            if error:
                raise WasmEnded(take_error(error))

    def close(self) -> None:
        _fast.wasmtime_store_delete(self.ptr)

    def deadline(self, ticks: int) -> None:
        """The next call ends ``ticks`` epochs from now (a reused store's new call)."""
        _fast.wasmtime_context_set_epoch_deadline(self.ctx, ticks)

    def instantiate(self, pre_ptr: object) -> ffi.wasmtime_instance_t:
        instance = ffi.wasmtime_instance_t()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_instance_pre_instantiate(
            pre_ptr, self.ctx, byref(instance), byref(trap)
        )
        if error or trap:
            check(error, trap)
        return instance

    def export(self, instance: ffi.wasmtime_instance_t, name: bytes) -> ffi.wasmtime_extern_t:
        item = ffi.wasmtime_extern_t()  # a fresh struct each time: fields are views into it
        if not _fast.wasmtime_instance_export_get(
            self.ctx, byref(instance), name, len(name), byref(item)
        ):
            raise WasmEnded(Trap(f"export {name.decode()!r} not found"))
        return item

    def call(
        self,
        func: ffi.wasmtime_func_t,
        args: ctypes.Array[ffi.wasmtime_val_t],
        nargs: int,
        results: ctypes.Array[ffi.wasmtime_val_t] | None,
        nresults: int,
    ) -> None:
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            self.ctx, byref(func), args, nargs, results, nresults, byref(trap)
        )
        if error or trap:
            check(error, trap)

    def memory(self, memory: ffi.wasmtime_memory_t) -> tuple[int, int]:
        """(base address, size in bytes) — valid until the next call into wasm."""
        base = _fast.wasmtime_memory_data(self.ctx, byref(memory))
        size = _fast.wasmtime_memory_data_size(self.ctx, byref(memory))
        return ctypes.addressof(base.contents), size


def i32_args(*values: int) -> ctypes.Array[ffi.wasmtime_val_t]:
    args = (ffi.wasmtime_val_t * max(1, len(values)))()
    for slot, value in zip(args, values, strict=False):
        slot.kind = ffi.WASMTIME_I32
        slot.of.i32 = value
    return args


def results(n: int) -> ctypes.Array[ffi.wasmtime_val_t]:
    return (ffi.wasmtime_val_t * n)()
