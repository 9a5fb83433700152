"""Worker pools for one function version: ``static``, ``lazy`` and ``adaptive`` (used by the
python runtime, and by runtime plugins such as the JavaScript example).

Each worker runs one call at a time (handlers may block). A call takes an idle worker;
if none is idle a pool that may grow starts one; otherwise the call waits in a bounded queue, and
a full queue refuses it (429 ``queue_full``). A call past its deadline has its worker killed and
fails with a timeout; a worker that dies fails only the call it held. Replacements start as needed.

* ``static``: ``size`` workers started at load and kept; bounded queue.
* ``lazy``: none at first; grows on demand to ``max_size``; workers idle for ``idle_timeout_s``
  are stopped.
* ``adaptive``: keeps ``min_size``; every second it sizes itself from the measured arrival rate
  and service time (enough workers for the load, +25 %), grows at once when calls queue longer
  than a tenth of a service time, and stops surplus idle workers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.errors import FunctionCrashed, FunctionTimeout, QueueFull

from .framing import Frame
from .process import WorkerDied, WorkerProcess, describe_exit

Spawn = Callable[[], Awaitable[WorkerProcess]]
TICK_S = 1.0
SMOOTHING = 0.2


POOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["static", "lazy", "adaptive"]},
        "size": {"type": "integer", "minimum": 1, "maximum": 256},
        "min_size": {"type": "integer", "minimum": 0, "maximum": 256},
        "max_size": {"type": "integer", "minimum": 1, "maximum": 256},
        "idle_timeout_s": {"type": "number", "minimum": 1},
        "queue_size": {"type": "integer", "minimum": 0, "maximum": 100_000},
    },
}
"""The manifest's ``pool`` field, as a runtime declares it in ``manifest_options``."""


@dataclass(frozen=True)
class PoolOptions:
    kind: str = "lazy"
    size: int = 1
    min_size: int = 0
    max_size: int = 4
    idle_timeout_s: float = 300.0
    queue_size: int = 64


class FunctionPool:
    def __init__(self, spawn: Spawn, options: PoolOptions) -> None:
        self._spawn = spawn
        self.options = options
        self._idle: deque[tuple[WorkerProcess, float]] = deque()
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._waiters: deque[asyncio.Future[WorkerProcess]] = deque()
        self._ticker: asyncio.Task[None] | None = None
        self._arrivals = 0
        self.service_s = 0.0
        self.queue_wait_s = 0.0
        self.closed = False

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    @property
    def floor(self) -> int:
        return {"static": self.options.size, "adaptive": self.options.min_size}.get(
            self.options.kind, self.options.min_size
        )

    @property
    def ceiling(self) -> int:
        return self.options.size if self.options.kind == "static" else self.options.max_size

    async def start(self) -> None:
        await asyncio.gather(*(self._add_idle() for _ in range(self.floor)))
        self._ticker = asyncio.create_task(self._tick())

    async def _add_idle(self) -> None:
        self._starting += 1
        try:
            worker = await self._start_worker()
        finally:
            self._starting -= 1
        self._release(worker)

    async def _start_worker(self) -> WorkerProcess:
        try:
            return await self._spawn()
        except WorkerDied as exc:
            raise FunctionCrashed(f"its worker process did not start: {exc}") from None

    async def call(self, meta: list[Any], data: bytes, deadline: float) -> Frame:
        """Run one call on a worker of this pool; ``deadline`` is a ``time.monotonic()`` instant."""
        self._arrivals += 1
        worker = await self._acquire(deadline)
        started = time.monotonic()
        try:
            return await self._run(worker, meta, data, deadline)
        finally:
            took = time.monotonic() - started
            self.service_s += SMOOTHING * (took - self.service_s)
            self._release(worker)

    async def _run(
        self, worker: WorkerProcess, meta: list[Any], data: bytes, deadline: float
    ) -> Frame:
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            worker.kill("the call ran past its deadline")

        timer = loop.call_at(loop.time() + deadline - time.monotonic(), expire)
        try:
            return await worker.call(meta, data)
        except WorkerDied as exc:
            if expired:
                raise FunctionTimeout("did not finish in time; its worker was stopped") from None
            cause = describe_exit(exc.returncode)
            if exc.reason:
                cause = f"{cause}: {exc.reason}"
            raise FunctionCrashed(f"its worker process died ({cause}); it is replaced") from None
        finally:
            timer.cancel()

    async def _acquire(self, deadline: float) -> WorkerProcess:
        while self._idle:
            worker, _ = self._idle.pop()  # the most recently used one is the warmest
            if worker.alive:
                self._busy.add(worker)
                return worker
        if self.size < self.ceiling:
            self._starting += 1
            try:
                worker = await self._start_worker()
            finally:
                self._starting -= 1
            self._busy.add(worker)
            return worker
        return await self._wait(deadline)

    async def _wait(self, deadline: float) -> WorkerProcess:
        if len(self._waiters) >= self.options.queue_size:
            raise QueueFull(
                f"all {self.size} workers of this function are busy and "
                f"{len(self._waiters)} calls are queued",
                retry_after=1,
            )
        waiter: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        queued = time.monotonic()
        if self.options.kind == "adaptive" and self.size < self.ceiling:
            asyncio.get_running_loop().create_task(self._add_idle())
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                worker = await waiter
        except TimeoutError:
            raise FunctionTimeout("waited for a free worker until its deadline") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        wait = time.monotonic() - queued
        self.queue_wait_s += SMOOTHING * (wait - self.queue_wait_s)
        return worker

    def _release(self, worker: WorkerProcess) -> None:
        self._busy.discard(worker)
        if not worker.alive or self.closed:
            if not worker.alive and self._waiters and not self.closed:
                asyncio.get_running_loop().create_task(self._add_idle())
            if self.closed:
                asyncio.get_running_loop().create_task(worker.close())
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._busy.add(worker)
                waiter.set_result(worker)
                return
        self._idle.append((worker, time.monotonic()))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            rate, self._arrivals = self._arrivals / TICK_S, 0
            await self._resize(rate)

    async def _resize(self, rate: float) -> None:
        now = time.monotonic()
        keep = self.floor
        if self.options.kind == "adaptive":
            wanted = math.ceil(rate * self.service_s * 1.25)
            keep = max(self.floor, min(self.ceiling, wanted))
        limit = self.options.idle_timeout_s if self.options.kind == "lazy" else 5.0
        while self._idle and self.size > keep:
            worker, since = self._idle[0]
            if now - since < limit and worker.alive:
                break
            self._idle.popleft()
            await worker.close()
        while self.size < self.floor:
            await self._add_idle()

    async def close(self) -> None:
        self.closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(FunctionCrashed("the function was unloaded"))
        workers = [w for w, _ in self._idle] + list(self._busy)
        self._idle.clear()
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)

    def workers(self) -> list[WorkerProcess]:
        return [w for w, _ in self._idle] + list(self._busy)
