"""The child side: say it is ready, then read frames from the parent's pipe and answer each in
turn, until EOF. Call ``serve`` only once everything slow (imports, engines) is done, so that the
parent's ``start`` returns a worker that answers at once."""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from .framing import ASK_ID, READY_ID, Frame, FrameReader, encode

Handler = Callable[[Any, bytes], tuple[Any, bytes]]


class _Pipes:
    """The child's ends of the pipes and what it read ahead of a question's answer."""

    read_fd = -1
    write_fd = -1
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


def serve(handler: Handler, hello: Any = None) -> None:
    """Answer frames until the parent closes the pipe. ``handler(meta, data) -> (meta, data)``
    must not raise: a crash ends the process, which the parent reports as a dead worker. ``hello``
    is the meta of the ready frame (the parent reads it as ``WorkerProcess.hello``)."""
    read_fd, write_fd = _Pipes.read_fd, _Pipes.write_fd = int(sys.argv[-2]), int(sys.argv[-1])
    _write_all(write_fd, encode(READY_ID, hello if hello is not None else ["ready", os.getpid()]))
    waiting = _Pipes.waiting
    while True:
        while waiting:
            frame = waiting.popleft()
            _write_all(write_fd, encode(frame.id, *handler(frame.meta, frame.data)))
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            return
        waiting.extend(_Pipes.reader.feed(chunk))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
