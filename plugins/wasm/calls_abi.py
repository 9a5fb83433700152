"""The host imports that let a module call another function of its tenant: ``tiergate.invoke``
and ``tiergate.answer``, for core JSON modules and WASI command modules alike.

``invoke(id_ptr, id_len, input_ptr, input_len) -> i32`` reads the function reference (``id`` or
``id@version``) and the input JSON out of guest memory, asks the gateway over the worker's pipe
(``child.ask``, as a Python worker's ``context.invoke`` does) and blocks until it answers; the
gateway runs the call through its own invoke path with the caller's tenant, depth, call count and
trace, and answers by the caller's deadline at the latest (past it, ``invoke`` traps and the
caller's call ends as a timeout). The result is the answer's length: the callee's output JSON
when it is ``>= 0``; when negative, minus the length of an error object ``{"code", "detail"}``.
``answer(ptr, len) -> i32`` copies at most ``len`` bytes of the last answer to ``ptr`` and
returns how many it copied.

A synchronous host import cannot wait for an event loop running on its own thread, so only wasm
worker processes answer ``invoke`` (``enable``): the gateway never runs a module importing it
inline, and its own executor would answer ``not_supported``.

What a module can make the host hold is bounded: a reference longer than ``MAX_REF_BYTES`` or an
input longer than ``MAX_INPUT_BYTES`` is refused without being read (an error answer), a pointer
outside memory traps, and the answer (at most the callee's ``limits.max_output_kb``) is kept only
until the next ``invoke`` or the end of the call.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import orjson
import wasmtime
from wasmtime import _ffi as ffi

from .core_abi import define, guest_address, trap

MAX_REF_BYTES = 128  # a function id (63) and "@" and a version, with room to spare
MAX_INPUT_BYTES = 6 * 1024 * 1024  # the contract's request body limit

Ask = Callable[[Any, bytes], tuple[Any, bytes]]

_asker: Ask | None = None  # set once in a worker process (``enable``)
_flush: Callable[[], None] | None = None
_call = threading.local()  # ``answer``: the last answer of the running call


def enable(ask: Ask, flush: Callable[[], None]) -> None:
    """Answer ``invoke`` by asking the parent (a wasm worker process, with ``child.ask``),
    having first sent the call's pending log entries (``flush``): what a module logged before it
    waits is with the gateway while it waits, even if the wait ends its call."""
    global _asker, _flush
    _asker, _flush = ask, flush


def forget() -> None:
    """The call ended: drop its last answer."""
    _call.answer = b""


def define_imports(linker: wasmtime.Linker) -> None:
    """``tiergate.invoke`` and ``tiergate.answer``, for modules of either ABI."""
    define(linker, b"invoke", _invoke, params=4, results=1)
    define(linker, b"answer", _answer, params=2, results=1)


def _error(code: str, detail: str) -> tuple[bool, bytes]:
    return False, orjson.dumps({"code": code, "detail": detail})


def _ask(
    caller: object, ref_ptr: int, ref_len: int, in_ptr: int, in_len: int
) -> tuple[bool, bytes]:
    """(succeeded, answer) of one ``invoke``; ``ValueError`` for a span outside memory."""
    ref_address = guest_address(caller, ref_ptr, ref_len)
    in_address = guest_address(caller, in_ptr, in_len)
    if ref_len > MAX_REF_BYTES:
        return _error("invalid_function_id", f"the function id is {ref_len} bytes long")
    if in_len > MAX_INPUT_BYTES:
        detail = f"the input is {in_len} bytes, over the limit of {MAX_INPUT_BYTES} bytes"
        return _error("payload_too_large", detail)
    if _asker is None or _flush is None:
        return _error("not_supported", "calls to functions run only in wasm workers")
    _flush()
    ref = ctypes.string_at(ref_address, ref_len).decode(errors="replace")
    meta, data = _asker(["invoke", ref], ctypes.string_at(in_address, in_len))
    if meta[0] == "ok":
        return True, data
    if meta[0] == "timeout":
        raise TimeoutError("the call's time ran out while it waited for the function it called")
    return _error(str(meta[1]), str(meta[2]))


@ffi.wasmtime_func_callback_t
def _invoke(env, caller, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    spans = [args[i].of.i32 & 0xFFFFFFFF for i in range(4)]
    _call.answer = b""
    try:
        ok, answer = _ask(caller, *spans)
    except (ValueError, TimeoutError) as exc:
        return trap(f"tiergate.invoke: {exc}")
    except Exception as exc:  # a host callback must not raise: the worker lost its parent
        return trap(f"tiergate.invoke: the gateway did not answer ({exc})")
    _call.answer = answer
    results[0].kind = ffi.WASMTIME_I32
    results[0].of.i32 = len(answer) if ok else -len(answer)
    return 0


@ffi.wasmtime_func_callback_t
def _answer(env, caller, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    answer: bytes = getattr(_call, "answer", b"")
    ptr, length = args[0].of.i32 & 0xFFFFFFFF, args[1].of.i32 & 0xFFFFFFFF
    length = min(length, len(answer))
    try:
        address = guest_address(caller, ptr, length)
    except ValueError as exc:
        return trap(f"tiergate.answer: {exc}")
    ctypes.memmove(address, answer, length)
    results[0].kind = ffi.WASMTIME_I32
    results[0].of.i32 = length
    return 0
