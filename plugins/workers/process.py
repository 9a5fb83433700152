"""The parent's handle on one worker process: send a frame, await the answering frame.

Calls are pipelined: several may be in flight on one worker, answered in order. The pipes are
read and written by the event loop through asyncio transports, never by blocking calls. When the
process exits, every call still waiting fails with ``WorkerDied``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from .framing import MAX_FRAME, READY_ID, Frame, FrameReader, encode

EXIT_WAIT_S = 1.0
EXIT_WAIT_STEPS = 50


class WorkerDied(Exception):
    """The worker process exited while calls were in flight."""

    def __init__(self, message: str, returncode: int | None) -> None:
        super().__init__(message)
        self.returncode = returncode


class _Reader(asyncio.Protocol):
    def __init__(self, worker: WorkerProcess, max_frame: int) -> None:
        self._worker = worker
        self._frames = FrameReader(max_frame)

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self._frames.feed(data):
                self._worker._answer(frame)
        except ValueError as exc:
            self._worker._lost(f"protocol error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker._lost("the worker closed its pipe")


class WorkerProcess:
    """Start with ``await WorkerProcess.start(argv, ...)``, which returns once the child has said
    it is ready. The child gets two more arguments, the numbers of the fds it reads requests from
    and writes answers to (``child.serve`` reads them). An answer longer than ``max_frame`` is a
    protocol error: the worker is killed, and its calls fail with ``WorkerDied``."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid = process.pid
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.WriteTransport | None = None
        self._outbox: list[bytes] = []
        self._dead: WorkerDied | None = None
        self._ending: asyncio.Task[None] | None = None
        self.hello: Any = None
        self.exited = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        stderr: int | None = None,
        preexec_fn: Any = None,
        ready_timeout: float = 30.0,
        max_frame: int = MAX_FRAME,
    ) -> WorkerProcess:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            process = subprocess.Popen(
                [*argv, str(to_child_r), str(from_child_w)],
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(to_child_r, from_child_w),
                preexec_fn=preexec_fn,
                close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        worker = cls(process)
        loop = asyncio.get_running_loop()
        ready = worker.pending[READY_ID] = loop.create_future()
        read_pipe = os.fdopen(from_child_r, "rb", buffering=0)
        write_pipe = os.fdopen(to_child_w, "wb", buffering=0)
        await loop.connect_read_pipe(lambda: _Reader(worker, max_frame), read_pipe)
        worker._writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, write_pipe)
        try:
            worker.hello = (await asyncio.wait_for(ready, ready_timeout)).meta
        except TimeoutError:
            worker.kill(f"not ready after {ready_timeout:g} s")
            raise WorkerDied(f"worker {worker.pid} did not start", None) from None
        return worker

    @property
    def alive(self) -> bool:
        return self._dead is None and self._ending is None

    @property
    def load(self) -> int:
        return len(self.pending)

    def send(self, meta: Any, data: bytes = b"") -> asyncio.Future[Frame]:
        """Queue one request; the future resolves with the worker's answer."""
        if self._dead is not None:
            raise self._dead
        if self._ending is not None:
            raise WorkerDied(f"worker {self.pid} is exiting", None)
        frame_id = next(self._ids) & 0xFFFFFFFF
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Frame] = loop.create_future()
        self.pending[frame_id] = future
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(encode(frame_id, meta, data))
        return future

    def _flush(self) -> None:
        """One write per loop iteration for every frame queued in it (fewer syscalls)."""
        frames, self._outbox = self._outbox, []
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(frames))

    async def call(self, meta: Any, data: bytes = b"") -> Frame:
        future = self.send(meta, data)
        try:
            return await future
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _answer(self, frame: Frame) -> None:
        future = self.pending.pop(frame.id, None)
        if future is not None and not future.done():
            future.set_result(frame)

    def _lost(self, reason: str) -> None:
        """The pipe closed: the worker is gone or going. Its exit status (how it ended is what
        callers need to hear) is collected without blocking the loop."""
        if self._dead is not None or self._ending is not None:
            return
        self._ending = asyncio.get_running_loop().create_task(self._reap(reason))

    async def _reap(self, reason: str) -> None:
        for _ in range(EXIT_WAIT_STEPS):
            if self.process.poll() is not None:
                break
            await asyncio.sleep(EXIT_WAIT_S / EXIT_WAIT_STEPS)
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self._dead is not None:
            return
        returncode = self.process.poll()
        if returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            returncode = self.process.wait()
        self._dead = WorkerDied(
            f"worker {self.pid} exited ({describe_exit(returncode)}): {reason}", returncode
        )
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self._dead)
        self.pending.clear()
        if self._writer is not None:
            self._writer.close()
        if not self.exited.done():
            self.exited.set_result(returncode)

    def kill(self, reason: str = "killed") -> None:
        """Stop the worker at once; waiting calls fail with ``WorkerDied``."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self._finish(reason)

    async def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish (its input pipe closes), then make sure it is gone."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except TimeoutError:
            self.kill("did not exit after its pipe closed")


def describe_exit(returncode: int | None) -> str:
    """``exit status 3``, ``killed by SIGKILL``: how a worker process ended, for messages."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
