"""The child side: say it is ready, then read frames from the parent's pipe and answer each in
turn, until EOF. Call ``serve`` only once everything slow (imports, engines) is done, so that the
parent's ``start`` returns a worker that answers at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .framing import READY_ID, FrameReader, encode

Handler = Callable[[Any, bytes], tuple[Any, bytes]]


def serve(handler: Handler, hello: Any = None) -> None:
    """Answer frames until the parent closes the pipe. ``handler(meta, data) -> (meta, data)``
    must not raise: a crash ends the process, which the parent reports as a dead worker. ``hello``
    is the meta of the ready frame (the parent reads it as ``WorkerProcess.hello``)."""
    read_fd, write_fd = int(sys.argv[-2]), int(sys.argv[-1])
    _write_all(write_fd, encode(READY_ID, hello if hello is not None else ["ready", os.getpid()]))
    reader = FrameReader()
    while True:
        chunk = os.read(read_fd, 1 << 20)
        if not chunk:
            return
        for frame in reader.feed(chunk):
            _write_all(write_fd, encode(frame.id, *handler(frame.meta, frame.data)))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
