"""WASI command modules: input on stdin, output from stdout, one log entry per stderr line.

stdin is handed over as bytes. stdout and stderr go to per-call files on tmpfs, read back and
removed after the call: wasmtime's custom-output callbacks run on its own tokio threads, cost more,
and abort the process if a callback misbehaves. The environment is exactly what the call
carries (function id, execution id, trace id, the manifest's env, granted secrets); no host
environment, arguments, directories or sockets are passed through.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import tempfile
from collections.abc import Mapping
from ctypes import byref
from pathlib import Path

from wasmtime import _ffi as ffi

from . import capi

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
_SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
_serial = itertools.count()


def _config(data: bytes, env: Mapping[str, str], stdout: Path, stderr: Path) -> object:
    config = ffi.wasi_config_new()
    names = [k.encode() for k in env]
    values = [v.encode() for v in env.values()]
    arr = ctypes.POINTER(ctypes.c_char) * max(1, len(names))
    name_ptrs = arr(
        *(ctypes.cast(ctypes.c_char_p(n), ctypes.POINTER(ctypes.c_char)) for n in names)
    )
    value_ptrs = arr(
        *(ctypes.cast(ctypes.c_char_p(v), ctypes.POINTER(ctypes.c_char)) for v in values)
    )
    stdin = ffi.wasm_byte_vec_t()
    raw = (ffi.wasm_byte_t * len(data)).from_buffer_copy(data) if data else None
    ffi.wasm_byte_vec_new(byref(stdin), len(data), raw)
    ffi.wasi_config_set_stdin_bytes(config, byref(stdin))
    ok = ffi.wasi_config_set_env(config, len(names), name_ptrs, value_ptrs)
    ok = ok and ffi.wasi_config_set_stdout_file(config, str(stdout).encode())
    ok = ok and ffi.wasi_config_set_stderr_file(config, str(stderr).encode())
    if not ok:
        ffi.wasi_config_delete(config)
        raise capi.WasmEnded(capi.Trap("cannot set up WASI (NUL byte in env, or no scratch dir)"))
    return config


class WasiCall:
    __slots__ = ("exit_status", "stderr", "stdout")

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        self.exit_status = 0


def run(
    store: capi.Store, pre_ptr: object, data: bytes, env: Mapping[str, str], outcome: WasiCall
) -> None:
    """Run ``_start``; exit status 0 (returning or ``proc_exit(0)``) is success."""
    stem = _SCRATCH / f"tiergate-wasi-{os.getpid()}-{next(_serial)}"
    stdout, stderr = stem.with_suffix(".out"), stem.with_suffix(".err")
    try:
        error = ffi.wasmtime_context_set_wasi(store.ctx, _config(data, env, stdout, stderr))
        if error:
            raise capi.WasmEnded(capi.take_error(error))
        instance = store.instantiate(pre_ptr)
        start = store.export(instance, b"_start").of.func
        try:
            store.call(start, capi.results(1), 0, None, 0)
        except capi.WasmEnded as ended:
            if ended.trap.exit_status is None:
                raise
            outcome.exit_status = ended.trap.exit_status
    finally:
        outcome.stdout = _collect(stdout)
        outcome.stderr = _collect(stderr)


def _collect(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_OUTPUT_BYTES)
        path.unlink()
    except FileNotFoundError:
        return b""
    return data
