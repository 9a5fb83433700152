"""In a wasm worker: the running call's log entries cross to the gateway while the call runs, so
a call whose answer the gateway never takes (cancelled, or its worker killed while it blocked in a
host call) leaves what it logged on its record, and live streams show it as it comes.

The call's own thread only appends to its outcome (``tiergate.log`` costs what it did); a thread
of this worker sends what is pending every ``FLUSH_S``, one ``child.log`` frame per batch rather
than one per entry (a module may log thousands of entries in a millisecond; the gateway's loop
would pay for every frame). A call shorter than that usually sends nothing this way: its entries
come with its answer, as before. Before a host call that waits on the gateway
(``tiergate.invoke``), pending entries are sent at once.

Entries are capped as they are written (``plugins.logs``: one budget per call), so what crosses
is bounded per call whatever the module does; a full pipe makes the sending thread, and then the
call's end, wait for the gateway rather than buffer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

FLUSH_S = 0.01

Send = Callable[[list[list[Any]]], None]


class Pending(Protocol):
    """A call's outcome, whose entries logged since the last ``take`` go out next."""

    def take(self) -> list[list[Any]]: ...


class LogFlusher:
    """Sends, every ``every_s``, what the followed call has pending. ``follow`` a call as it
    starts and ``unfollow`` it as it ends, before its answer is made: a batch being sent is sent
    whole first, so it precedes the answer on the pipe and nothing goes out twice."""

    def __init__(self, send: Send, every_s: float = FLUSH_S) -> None:
        self._send = send
        self._every_s = every_s
        self._lock = threading.Lock()
        self._following: Pending | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasm-logs", daemon=True)
        self._thread.start()

    def follow(self, call: Pending) -> None:
        self._following = call

    def unfollow(self) -> None:
        with self._lock:
            self._following = None

    def flush(self) -> None:
        """Send what the followed call has pending now (also before it waits on the gateway)."""
        with self._lock:
            call = self._following
            if call is not None and (entries := call.take()):
                self._send(entries)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
