"""WASI command modules: input on stdin, output from stdout, one log entry per stderr line.

stdin is handed over as bytes. stdout and stderr go to two memory files (``memfd``) that each wasm
worker makes once and hands to wasmtime by path (``/proc/self/fd/N``); wasmtime opens them with
``O_TRUNC`` as it sets up each call, so every call starts with both empty, and nothing is left
behind when a worker is killed mid-call. (wasmtime's custom-output callbacks run on its own tokio
threads, cost more, and abort the process if a callback misbehaves.)

Both streams are cut off *during* the call, at the call's output cap: ``RLIMIT_FSIZE`` is set to
the cap + 1 byte around the call (the worker writes no other file meanwhile), and the worker
ignores ``SIGXFSZ`` (``worker.main``), so a write past it stops there and the next fails with
``EFBIG``: wasmtime hands the module WASI errno ``fbig``; a module that keeps writing regardless
ends by its deadline at worst. A stdout longer than the cap fails the call (``output_too_large``);
of stderr, at most the log cap is read back, line by line as the call runs in a worker (its
flusher thread reads the lines completed so far: ``log_flusher``), the rest once it ended. Reading
starts only once wasmtime has emptied the file for this call, so no line of the call before is
ever read again. The environment is exactly what the call carries
(function id, execution id, trace id, the manifest's env, granted secrets); no host environment,
arguments, directories or sockets are passed through.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import time
from collections import deque
from collections.abc import Iterable, Mapping
from ctypes import byref
from typing import Any

from wasmtime import _ffi as ffi

from plugins.logs import EXECUTION_BYTES, LogBudget, cap_entries

from . import capi

KEEP_BYTES = 64 * 1024  # a stream file larger than this after a call is emptied at once
STDERR_TAIL_LINES = 5
_SOFT, _HARD = resource.getrlimit(resource.RLIMIT_FSIZE)


@functools.cache
def _streams() -> tuple[int, int]:
    """This process's stdout and stderr files for WASI calls (made on first use)."""
    return (
        os.memfd_create("tiergate-wasi-stdout", os.MFD_CLOEXEC),
        os.memfd_create("tiergate-wasi-stderr", os.MFD_CLOEXEC),
    )


def _config(data: bytes, env: Mapping[str, str], stdout: int, stderr: int) -> object:
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
    ok = ok and ffi.wasi_config_set_stdout_file(config, f"/proc/self/fd/{stdout}".encode())
    ok = ok and ffi.wasi_config_set_stderr_file(config, f"/proc/self/fd/{stderr}".encode())
    if not ok:
        ffi.wasi_config_delete(config)
        raise capi.WasmEnded(capi.Trap("cannot set up WASI (NUL byte in env, or no /proc)"))
    return config


class WasiCall:
    """What one call produced. ``stdout_size`` is how much it wrote (at most the cap + 1 byte);
    ``stdout`` is empty when that is over the cap. Its stderr becomes one log entry per line,
    within ``budget``: while the call runs, a worker's flusher thread takes the lines completed so
    far (``take``); once it ended, ``finish`` reads the rest. ``stderr_tail`` keeps the last
    lines, which the message of a call that exited with an error quotes."""

    __slots__ = (
        "_partial",
        "_read",
        "budget",
        "exit_status",
        "stderr_fd",
        "stderr_tail",
        "stdout",
        "stdout_size",
    )

    def __init__(self) -> None:
        self.stdout = b""
        self.stdout_size = 0
        self.exit_status = 0
        self.budget = LogBudget.for_worker()
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self.stderr_fd = -1  # set by ``run`` once the file is this call's (emptied)
        self._read = 0  # bytes of the file read so far (at most the log cap)
        self._partial = bytearray()  # read, after the last complete line

    def take(self) -> list[list[Any]]:
        """Entries of the stderr lines completed since the last ``take``."""
        if self.stderr_fd < 0:
            return []
        self._read_more(self.stderr_fd)
        return self._lines(self._partial.rfind(b"\n") + 1)

    def finish(self, more: Iterable[list[Any]] = ()) -> list[list[Any]]:
        """Once the call ended and nothing else reads its stderr: the entries of what no
        ``take`` had (a last line without its newline too), then ``more`` (a trap's backtrace),
        within the budget, and the summary entry if anything was dropped. A large stderr file is
        emptied now rather than at the next call."""
        entries = []
        fd = self.stderr_fd
        if fd >= 0:
            size = self._read_more(fd)
            if size > self._read:
                self.budget.drop(size - self._read)
            entries = self._lines(len(self._partial))
            if size > KEEP_BYTES:
                os.ftruncate(fd, 0)
        return entries + cap_entries(more, self.budget)

    def _read_more(self, fd: int) -> int:
        """Read what was written since, up to the log cap; returns the file's size."""
        size = os.fstat(fd).st_size
        wanted = min(size, EXECUTION_BYTES) - self._read
        if wanted > 0:
            chunk = os.pread(fd, wanted, self._read)
            self._read += len(chunk)
            self._partial += chunk
        return size

    def _lines(self, cut: int) -> list[list[Any]]:
        """Entries of the first ``cut`` bytes read (cut after a newline, or at the end)."""
        if not cut:
            return []
        text = self._partial[:cut].decode(errors="replace")
        del self._partial[:cut]
        now = time.time()
        entries: list[list[Any]] = []
        for line in text.splitlines():
            if line.strip() and (message := self.budget.fit(line)) is not None:
                entries.append([now, "stderr", message])
                self.stderr_tail.append(message)
        return entries


def run(
    store: capi.Store,
    pre_ptr: object,
    data: bytes,
    env: Mapping[str, str],
    max_output: int,
    outcome: WasiCall,
) -> None:
    """Run ``_start``; exit status 0 (returning or ``proc_exit(0)``) is success. The stderr
    lines are the caller's to read (``WasiCall.take``, ``finish``)."""
    stdout, stderr = _streams()
    config = _config(data, env, stdout, stderr)  # both files are empty from here on
    outcome.stderr_fd = stderr
    _limit_files(max_output + 1)
    try:
        error = ffi.wasmtime_context_set_wasi(store.ctx, config)
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
        _limit_files(_SOFT)
        size = outcome.stdout_size = os.fstat(stdout).st_size
        outcome.stdout = _drain(stdout, size, size if size <= max_output else 0)


def _limit_files(size: int) -> None:
    """Files this process writes may grow to ``size`` bytes (never above the hard limit)."""
    if _HARD != resource.RLIM_INFINITY and (size == resource.RLIM_INFINITY or size > _HARD):
        size = _HARD
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, _HARD))


def _drain(fd: int, size: int, wanted: int) -> bytes:
    """The first ``wanted`` bytes of a stream file holding ``size``; a large one is emptied now
    rather than at the next call."""
    data = os.pread(fd, wanted, 0) if wanted else b""
    if size > KEEP_BYTES:
        os.ftruncate(fd, 0)
    return data
