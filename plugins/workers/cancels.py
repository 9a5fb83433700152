"""Requests a worker's parent gave up on (its caller was cancelled, or disconnected).

A worker answers its requests one after another, on its main thread, so it reads nothing from the
parent while it answers one: a request the parent cancels would run to its own deadline, and every
request queued behind it would wait that long. A worker started with ``cancellable=True``
(``WorkerProcess.start``) gets a second pipe for this alone: the parent writes the id of each
request it gave up on (``FRAME_ID``, 4 bytes), and a daemon thread here (``Cancels``) reads them.
A request not started yet is skipped when its turn comes; the request being answered is stopped
by the runtime's ``interrupt`` (the wasm runtime ends the running instance through its engines'
epochs, the one way to stop wasm from another thread).

``turn`` serialises the switch from one request to the next with the interrupt, so that an
interrupt meant for a request that just ended never reaches the one after it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Callable, Iterator

CANCEL_FD_ENV = "TIERGATE_CANCEL_FD"
"""The environment variable a cancellable worker finds its cancel pipe's fd in."""
FRAME_ID = struct.Struct("<I")
MAX_REMEMBERED = 4096
"""Cancelled requests not started yet that are remembered (a cancel that comes after its request
ended is dropped)."""


class Cancels:
    """Start with ``start()``; ``skip(id)`` before a request's turn, ``answering(id)`` around
    it. ``interrupt`` is called from the reading thread, with the turn held."""

    def __init__(self, fd: int, interrupt: Callable[[], None]) -> None:
        self._fd = fd
        self._interrupt = interrupt
        self._turn = threading.Lock()
        self._current = 0
        self._last = 0  # ids grow: a cancel for one at or below this came after it ended
        self._cancelled: set[int] = set()
        self._interrupted = False

    @classmethod
    def from_environment(cls, interrupt: Callable[[], None]) -> Cancels | None:
        raw = os.environ.get(CANCEL_FD_ENV)
        return cls(int(raw), interrupt) if raw and raw.isdigit() else None

    def start(self) -> None:
        threading.Thread(target=self._read, name="tiergate-cancels", daemon=True).start()

    def skip(self, frame_id: int) -> bool:
        """Whether the parent cancelled this request before its turn (then it is not run)."""
        with self._turn:
            if frame_id in self._cancelled:
                self._cancelled.discard(frame_id)
                return True
            return False

    @contextlib.contextmanager
    def answering(self, frame_id: int) -> Iterator[None]:
        with self._turn:
            self._current = self._last = frame_id
            self._interrupted = False
        try:
            yield
        finally:
            with self._turn:
                self._current = 0

    def given_up(self) -> bool:
        """Whether the request being answered was given up on (it was interrupted)."""
        return self._interrupted

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self._fd, 4096):
            pending += chunk
            whole = len(pending) - len(pending) % FRAME_ID.size
            for (frame_id,) in FRAME_ID.iter_unpack(pending[:whole]):
                self._cancel(frame_id)
            pending = pending[whole:]

    def _cancel(self, frame_id: int) -> None:
        with self._turn:
            if frame_id == self._current:
                self._interrupted = True
                self._interrupt()
            elif frame_id > self._last and len(self._cancelled) < MAX_REMEMBERED:
                self._cancelled.add(frame_id)
