"""Admission: a global concurrency limit with a bounded queue, and per-function caps.

A call that finds every slot busy waits in the queue; when the queue is full it is refused at
once with 429 ``queue_full`` and ``Retry-After``, before any work is done. A function's own cap is
taken before a global slot, so calls waiting on a capped function never hold global slots.
"""

from __future__ import annotations

import asyncio
import time

from gateway.metrics import Metrics
from plugins.errors import QueueFull
from tiers.function import LoadedFunction


class Admission:
    def __init__(self, concurrency: int, queue_size: int, metrics: Metrics) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_size = queue_size
        self._waiting = 0
        self._metrics = metrics
        self.concurrency = concurrency
        self.in_flight = 0
        metrics.gauge(
            "tiergate_queue_depth", "Invocations waiting for a slot", lambda: self._waiting
        )
        metrics.gauge("tiergate_in_flight", "Invocations running", lambda: self.in_flight)

    @property
    def waiting(self) -> int:
        return self._waiting

    def check(self) -> None:
        """Refuse now if a new call could not even queue (used before accepting async calls)."""
        if self._slots.locked():
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:
        if self._waiting >= self._queue_size:
            raise QueueFull(
                f"the gateway is busy: {self._waiting} calls already queued", retry_after=1
            )

    async def enter(self, fn: LoadedFunction) -> float:
        """Take the function's slot (if capped) and a global slot; returns the wait in ms."""
        own = fn.slots
        if not self._slots.locked() and (own is None or not own.locked()):
            if own is not None:
                await own.acquire()
            await self._slots.acquire()
            self.in_flight += 1
            return 0.0
        started = time.perf_counter()
        if own is not None:
            await self._wait(own)
        try:
            await self._wait(self._slots)
        except BaseException:
            if own is not None:
                own.release()
            raise
        self.in_flight += 1
        return round((time.perf_counter() - started) * 1000, 3)

    def leave(self, fn: LoadedFunction) -> None:
        self.in_flight -= 1
        self._slots.release()
        if fn.slots is not None:
            fn.slots.release()

    async def _wait(self, semaphore: asyncio.Semaphore) -> None:
        if not semaphore.locked():
            await semaphore.acquire()
            return
        self._refuse_if_full()
        self._waiting += 1
        started = time.perf_counter()
        try:
            await semaphore.acquire()
        finally:
            self._waiting -= 1
            self._metrics.queue_wait.observe(time.perf_counter() - started)
