"""The child side: say it is ready, then read frames from the parent's pipe and answer each in
turn, until EOF. Call ``serve`` only once everything slow (imports, engines) is done, so that the
parent's ``start`` returns a worker that answers at once."""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .cancels import Cancels
from .framing import ASK_ID, LOG_ID, READY_ID, Frame, FrameReader, encode

Handler = Callable[[Any, bytes], tuple[Any, bytes]]


class _Pipes:
    """The child's ends of the pipes and what it read ahead of a question's answer."""

    read_fd = -1
    write_fd = -1
    current = 0  # the id of the request being answered (what ``log`` entries belong to)
    lock = threading.Lock()  # whole frames only: the code's threads may log while it answers
    reader = FrameReader()
    waiting: deque[Frame] = deque()


def ask(meta: Any, data: bytes = b"") -> tuple[Any, bytes]:
    """Ask the parent something while answering a call (a Python function's
    ``context.invoke``), and wait for its answer. Frames that come meanwhile are kept for
    ``serve``."""
    _write_all(_Pipes.write_fd, encode(ASK_ID, meta, data))
    while True:
        chunk = os.read(_Pipes.read_fd, 1 << 20)
        if not chunk:
            raise EOFError("the parent closed the pipe")
        answer = None
        for frame in list(_Pipes.reader.feed(chunk)):  # read to its end: it drops what it gave
            if frame.id == ASK_ID and answer is None:
                answer = frame.meta, frame.data
            else:
                _Pipes.waiting.append(frame)
        if answer is not None:
            return answer


def log(entries: list[Any]) -> None:
    """Send log entries of the call being answered to the parent now, not with the answer: if
    the call never answers (killed at its deadline, cancelled), they are with the parent.
    Entries written while no call runs (module code at start, a thread between calls) belong to
    no call, and are dropped."""
    if not _Pipes.current:
        return
    _write_all(_Pipes.write_fd, encode(LOG_ID, [_Pipes.current, entries]))


def serve(handler: Handler, hello: Any = None, cancels: Cancels | None = None) -> None:
    """Answer frames until the parent closes the pipe. ``handler(meta, data) -> (meta, data)``
    must not raise: a crash ends the process, which the parent reports as a dead worker. ``hello``
    is the meta of the ready frame (the parent reads it as ``WorkerProcess.hello``). With
    ``cancels``, a request the parent gave up on before its turn is not run (nobody waits for
    its answer), and one it gives up on while it runs is interrupted."""
    read_fd, write_fd = _Pipes.read_fd, _Pipes.write_fd = int(sys.argv[-2]), int(sys.argv[-1])
    _write_all(write_fd, encode(READY_ID, hello if hello is not None else ["ready", os.getpid()]))
    if cancels is not None:
        cancels.start()
    waiting = _Pipes.waiting
    while True:
        while waiting:
            frame = waiting.popleft()
            if cancels is not None and cancels.skip(frame.id):
                _write_all(write_fd, encode(frame.id, ["cancelled"]))  # its parent forgets it
                continue
            _Pipes.current = frame.id
            if cancels is None:
                answer = encode(frame.id, *handler(frame.meta, frame.data))
            else:
                with cancels.answering(frame.id):
                    answer = encode(frame.id, *handler(frame.meta, frame.data))
            _Pipes.current = 0
            _write_all(write_fd, answer)
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            return
        waiting.extend(_Pipes.reader.feed(chunk))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with _Pipes.lock:
        while view:
            written = os.write(fd, view)
            view = view[written:]
