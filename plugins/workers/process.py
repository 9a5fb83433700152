"""The parent's handle on one worker process: send a frame, await the answering frame.

Calls are pipelined: several may be in flight on one worker, answered in order. The pipes are
read and written by the event loop through asyncio transports, never by blocking calls. When the
process exits, every call still waiting fails with ``WorkerDied``.

A worker may run hostile code, so nothing it sends is trusted: a frame longer than ``max_frame``
ends the worker before it is buffered, and its stderr never reaches the gateway's own: only the
last ``STDERR_TAIL_BYTES`` are kept, and reported escaped (``repr``) when the worker dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from plugins.logs import ENTRY_OVERHEAD, EXECUTION_BYTES

from .cancels import CANCEL_FD_ENV, FRAME_ID
from .framing import ASK_ID, LOG_ID, MAX_FRAME, READY_ID, Frame, FrameReader, encode

log = logging.getLogger("tiergate.workers")

EXIT_WAIT_S = 1.0
EXIT_WAIT_STEPS = 50
STDERR_TAIL_BYTES = 4096
STDERR_BYTES_PER_S = 256 * 1024
MAX_LOG_ENTRIES = 2 * (EXECUTION_BYTES // ENTRY_OVERHEAD)
MAX_LOG_CHARS = 4 * EXECUTION_BYTES
"""What a worker may send in log frames between two answers: twice what one call's log budget
can keep (``plugins.logs``; an honest worker caps its entries before sending them). Past it the
worker is forging frames (its code can write to the pipe), and it is killed: otherwise it could
keep the gateway's loop decoding log frames for as long as its call runs."""


Answerer = Callable[[Any, bytes], Awaitable[tuple[Any, bytes]]]
"""How the parent answers what a worker asks while it runs a call (``child.ask``)."""

LogSink = Callable[[list[Any]], None]
"""Where the log entries a worker sends while it runs a call go (``child.log``): the raw
entries as the worker sent them, unchecked (the worker may run hostile code)."""


class WorkerDied(Exception):
    """The worker process exited while calls were in flight; ``reason`` says why when the parent
    ended it."""

    def __init__(self, message: str, returncode: int | None, reason: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.reason = reason


class _Reader(asyncio.Protocol):
    def __init__(self, worker: WorkerProcess, max_frame: int) -> None:
        self._worker = worker
        self._frames: FrameReader | None = FrameReader(max_frame)

    def data_received(self, data: bytes) -> None:
        if self._frames is None:
            return  # the worker broke the protocol: nothing more it sends is kept
        try:
            for frame in self._frames.feed(data):
                self._worker._answer(frame)
        except ValueError as exc:
            self._frames = None
            self._worker.kill(f"it broke the frame protocol: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker._lost("the worker closed its pipe")


class _StderrTail(asyncio.Protocol):
    """Keeps the end of what a worker writes to stderr, and how much there was. Reading stops
    for a second once ``STDERR_BYTES_PER_S`` came in, so a worker that floods its stderr blocks
    on a full pipe instead of keeping the event loop busy."""

    def __init__(self) -> None:
        self.tail = bytearray()
        self.total = 0
        self._window = 0
        self._transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        self.tail += data[-STDERR_TAIL_BYTES:]
        del self.tail[:-STDERR_TAIL_BYTES]
        self._window += len(data)
        if self._window > STDERR_BYTES_PER_S and self._transport is not None:
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(1.0, self._resume)

    def _resume(self) -> None:
        self._window = 0
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def text(self) -> str:
        """The kept tail, escaped: it is the worker's text, not the gateway's."""
        if not self.total:
            return ""
        before = self.total - len(self.tail)
        return (f"… ({before} bytes before) " if before else "") + repr(bytes(self.tail))


class WorkerProcess:
    """Start with ``await WorkerProcess.start(argv, ...)``, which returns once the child has said
    it is ready. The child gets two more arguments, the numbers of the fds it reads requests from
    and writes answers to (``child.serve`` reads them). An answer longer than ``max_frame`` is a
    protocol error: the worker is killed, and its calls fail with ``WorkerDied``."""

    def __init__(self, process: subprocess.Popen[bytes], name: str) -> None:
        self.process = process
        self.pid = process.pid
        self.name = name
        self.stderr = _StderrTail()
        self.answerer: Answerer | None = None
        self.context: Any = None  # what the call it runs now was given (``FunctionPool.call``)
        self._asked: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self._log_sinks: dict[int, LogSink] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.WriteTransport | None = None
        self._outbox: list[bytes] = []
        self._dead: WorkerDied | None = None
        self._ending: asyncio.Task[None] | None = None
        self.hello: Any = None
        self._killed_because = ""
        self._cancel_fd: int | None = None  # the cancel pipe's write end (``cancellable``)
        self.abandoned = 0
        """Requests given up on that it has not answered yet: it may still be running one."""
        self._abandoned_ids: set[int] = set()
        self._logged = [0, 0]  # log entries and characters received since the last answer
        self.exited = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None = None,
        pass_fds: Sequence[int] = (),
        max_frame: int = MAX_FRAME,
        name: str = "worker",
        ready_timeout: float = 30.0,
        cancellable: bool = False,
    ) -> WorkerProcess:
        """``pass_fds``: more fds the child inherits (a sandbox's); ``max_frame``: the longest
        answer this worker may send; ``name``: how messages and logs call it; ``cancellable``:
        the child reads the ids of requests given up on from a pipe of their own
        (``plugins.workers.cancels``)."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        cancel_r, cancel_w = os.pipe() if cancellable else (-1, -1)
        extra = (cancel_r,) if cancellable else ()
        try:
            process = subprocess.Popen(
                [*argv, str(to_child_r), str(from_child_w)],
                env={**env, CANCEL_FD_ENV: str(cancel_r)} if cancellable else dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(to_child_r, from_child_w, *extra, *pass_fds),
                close_fds=True,
            )
        except BaseException:
            for fd in (cancel_r, cancel_w) if cancellable else ():
                os.close(fd)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        worker = cls(process, name)
        if cancellable:
            os.close(cancel_r)
            os.set_blocking(cancel_w, False)  # a full pipe drops a cancel; never blocks the loop
            worker._cancel_fd = cancel_w
        loop = asyncio.get_running_loop()
        ready = worker.pending[READY_ID] = loop.create_future()
        read_pipe = os.fdopen(from_child_r, "rb", buffering=0)
        write_pipe = os.fdopen(to_child_w, "wb", buffering=0)
        assert process.stderr is not None
        await loop.connect_read_pipe(lambda: worker.stderr, process.stderr)
        await loop.connect_read_pipe(lambda: _Reader(worker, max_frame), read_pipe)
        worker._writer, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, write_pipe)
        try:
            worker.hello = (await asyncio.wait_for(ready, ready_timeout)).meta
        except TimeoutError:
            worker.kill(f"not ready after {ready_timeout:g} s")
            raise WorkerDied(f"{name} did not start: {worker.stderr.text()}", None) from None
        except WorkerDied as exc:
            raise WorkerDied(f"{exc}; its stderr: {worker.stderr.text()}", exc.returncode) from None
        return worker

    @property
    def alive(self) -> bool:
        return self._dead is None and self._ending is None

    @property
    def load(self) -> int:
        return len(self.pending)


    def send(
        self, meta: Any, data: bytes = b"", on_log: LogSink | None = None
    ) -> asyncio.Future[Frame]:
        """Queue one request; the future resolves with the worker's answer. ``on_log`` gets the
        log entries the worker sends for this request before its answer."""
        if self._dead is not None:
            raise self._dead
        if self._ending is not None:
            raise WorkerDied(f"{self.name} (pid {self.pid}) is exiting", None)
        frame_id = next(self._ids) & 0x7FFFFFFF  # never ASK_ID
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Frame] = loop.create_future()
        self.pending[frame_id] = future
        if on_log is not None:  # dropped with the answer (``_answer``), or before (``_take_logs``)
            self._log_sinks[frame_id] = on_log
        if not self._outbox:
            loop.call_soon(self._flush)
        self._outbox.append(encode(frame_id, meta, data))
        return future

    def _flush(self) -> None:
        """One write per loop iteration for every frame queued in it (fewer syscalls)."""
        frames, self._outbox = self._outbox, []
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(frames))

    async def call(self, meta: Any, data: bytes = b"", on_log: LogSink | None = None) -> Frame:
        """The answer to one request; cancelled, a cancellable worker is told to drop it."""
        future = self.send(meta, data, on_log)
        try:
            return await future
        except asyncio.CancelledError:
            future.cancel()  # (already, when the task awaiting it was cancelled)
            self._give_up(future)
            raise

    def _give_up(self, future: asyncio.Future[Frame]) -> None:
        """Count the request as abandoned until answered; tell a cancellable worker."""
        frame_id = next((i for i, f in self.pending.items() if f is future), None)
        if frame_id is None or self._dead is not None:
            return
        self._abandoned_ids.add(frame_id)
        self.abandoned = len(self._abandoned_ids)
        if self._cancel_fd is not None:
            with contextlib.suppress(OSError):  # full (it has thousands to read) or gone
                os.write(self._cancel_fd, FRAME_ID.pack(frame_id))

    def _answer(self, frame: Frame) -> None:
        if frame.id == ASK_ID:
            self._take_question(frame)
            return
        if frame.id == LOG_ID:
            self._take_logs(frame.meta)
            return
        future = self.pending.pop(frame.id, None)
        if future is None:  # forged by its code, which can write to the pipe (and an answer
            self.kill("it answered a request it was not sent")  # resets the log bound)
            return
        self._log_sinks.pop(frame.id, None)
        self._logged[0] = self._logged[1] = 0
        if self._abandoned_ids:
            self._abandoned_ids.discard(frame.id)
            self.abandoned = len(self._abandoned_ids)
        if not future.done():
            future.set_result(frame)

    def _take_logs(self, meta: Any) -> None:
        """Entries for a request still waiting; for any other (or malformed) they are dropped:
        the answer of a request that ended cannot grow any more. A request whose caller went
        away (cancelled: the worker may run it to its deadline) loses its sink here."""
        if not (isinstance(meta, list) and len(meta) == 2 and isinstance(meta[1], list)):
            return
        logged = self._logged
        logged[0] += len(meta[1])
        logged[1] += sum(len(e[2]) for e in meta[1] if type(e) is list and len(e) > 2
                         and type(e[2]) is str)
        if logged[0] > MAX_LOG_ENTRIES or logged[1] > MAX_LOG_CHARS:
            self.kill("it sent more log entries than a call's log budget allows")
            return
        frame_id = meta[0]
        sink = self._log_sinks.get(frame_id) if isinstance(frame_id, int) else None
        if sink is None:
            return
        future = self.pending.get(frame_id)
        if future is None or future.done():
            del self._log_sinks[frame_id]
            return
        sink(meta[1])

    def _take_question(self, frame: Frame) -> None:
        """The worker asks while it runs a call: at most one question at a time (its code
        blocks on the answer), answered by ``answerer``, which the caller of the running call
        set; without one the answer is an error."""
        if self._asked is not None and not self._asked.done():
            self.kill("it asked a second question before the first was answered")
            return
        self._asked = asyncio.get_running_loop().create_task(self._reply(frame))

    def forget_question(self) -> None:
        """The call ended: a question still unanswered never will be, and the worker that
        waits for it is of no use any more."""
        if self._asked is not None and not self._asked.done():
            self._asked.cancel()
            self.kill("its call ended while it waited for an answer to its question")

    async def _reply(self, frame: Frame) -> None:
        answerer = self.answerer
        if answerer is None:
            meta, data = ["error", "not_supported", "this call cannot ask anything"], b""
        else:
            try:
                meta, data = await answerer(frame.meta, frame.data)
            except Exception:
                log.exception("answering a question of %s failed", self.name)
                meta, data = ["error", "internal_error", "the gateway could not answer"], b""
        if self._dead is None and self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(ASK_ID, meta, data))

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
            f"{self.name} (pid {self.pid}) exited ({describe_exit(returncode)}): {reason}",
            returncode,
            self._killed_because,
        )
        if self._asked is not None:
            self._asked.cancel()
        if self.stderr.total:
            log.info("%s (pid %d) wrote to stderr: %s", self.name, self.pid, self.stderr.text())
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self._dead)
        self.pending.clear()
        self._abandoned_ids.clear()
        self.abandoned = 0
        self._log_sinks.clear()
        if self._writer is not None:
            self._writer.close()
        if self._cancel_fd is not None:
            os.close(self._cancel_fd)
            self._cancel_fd = None
        if not self.exited.done():
            self.exited.set_result(returncode)

    def kill(self, reason: str = "killed") -> None:
        """Stop the worker at once; waiting calls fail with ``WorkerDied`` carrying ``reason``."""
        if self._dead is None:
            self._killed_because = reason
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


async def read_capped(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """Everything ``stream`` says until EOF, of which only the first ``limit`` bytes are kept:
    a child's output is read to its end (so it never blocks on a full pipe) but never buffered
    whole."""
    kept = bytearray()
    if stream is None:
        return b""
    while chunk := await stream.read(65536):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)
