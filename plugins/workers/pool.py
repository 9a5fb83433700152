"""Worker pools for one function version: ``static``, ``lazy`` and ``adaptive`` (used by the
python runtime, and by runtime plugins such as the JavaScript example).

Each worker runs one call at a time (handlers may block). A call takes an idle worker; if none is
idle, a pool that may grow starts one with a grant from the tenant's ``WorkerBudget`` (see
``budget``) and the call waits for it; otherwise the call waits in a bounded queue, and a full
queue refuses it (429 ``queue_full``). Workers start in tasks of their own, so a caller that goes
away cannot leave a half-started process behind: the worker serves the next waiting call. A call
past its deadline has its worker killed and fails with a timeout; a worker that dies fails only
the call it held. Replacements start as needed. Whatever its options say, a pool never has more
than the budget's ``per_function`` workers.

* ``static``: ``size`` workers started at load and kept; bounded queue.
* ``lazy``: none at first; grows on demand to ``max_size``; workers idle for ``idle_timeout_s``
  are stopped.
* ``adaptive``: keeps ``min_size``; every second it sizes itself from the measured arrival rate
  and service time (enough workers for the load, +25 %), and stops surplus idle workers.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from plugins.errors import FunctionCrashed, FunctionTimeout, QueueFull

from .budget import WorkerBudget
from .framing import Frame
from .process import Answerer, LogSink, WorkerDied, WorkerProcess, describe_exit

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
    def __init__(
        self, spawn: Spawn, options: PoolOptions, *, budget: WorkerBudget, tenant: str
    ) -> None:
        cap = budget.per_function
        self._spawn = spawn
        self.options = replace(
            options,
            size=min(options.size, cap),
            min_size=min(options.min_size, cap),
            max_size=min(options.max_size, cap),
        )
        self.budget = budget
        self.tenant = tenant
        self._idle: deque[tuple[WorkerProcess, float]] = deque()
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._waiters: deque[asyncio.Future[WorkerProcess]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
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

    @property
    def starved(self) -> bool:
        """Calls are waiting that no starting worker will serve, and the pool may grow."""
        return not self.closed and self.size < self.ceiling and len(self._waiters) > self._starting

    @property
    def idle_since(self) -> float | None:
        """When the least recently used idle worker went idle; None without idle workers."""
        return self._idle[0][1] if self._idle else None

    def stop_idle(self) -> None:
        """Stop the least recently used idle worker; its grant comes back once it has exited."""
        worker, _ = self._idle.popleft()
        self._soon(worker.close())

    async def start(self) -> None:
        """Start the floor's workers, as many as the budget grants now (the tick adds the rest
        later); a worker that fails to start fails the load, and nothing is left running."""
        self.budget.join(self)
        starting: list[asyncio.Task[None]] = []
        while len(starting) < self.floor and self.budget.take(self, evict=False):
            starting.append(self.add_worker())
        try:
            await asyncio.gather(*starting)
        except BaseException:
            await self.close()
            raise
        self._ticker = asyncio.create_task(self._tick())

    def add_worker(self) -> asyncio.Task[None]:
        """Start one worker on a grant already taken; it serves the first waiting call, else
        waits idle. If it cannot start, the first waiting call fails with the reason."""
        self._starting += 1
        task = self._soon(self._start_worker())
        task.add_done_callback(self._started)
        return task

    async def _start_worker(self) -> None:
        try:
            worker = await self._spawn()
        except BaseException as exc:
            self._starting -= 1
            self.budget.give_back(self.tenant)
            if isinstance(exc, WorkerDied):
                raise FunctionCrashed(f"its worker process did not start: {exc}") from None
            raise
        self._starting -= 1
        worker.exited.add_done_callback(lambda _: self.budget.give_back(self.tenant))
        self._release(worker)

    def _started(self, task: asyncio.Task[None]) -> None:
        failure = None if task.cancelled() else task.exception()
        if failure is None:
            return
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(failure)
                return

    def _soon(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in a task kept until it ends (not collected early, awaited at close)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def call(
        self,
        meta: list[Any],
        data: bytes,
        deadline: float,
        answerer: Answerer | None = None,
        context: Any = None,
        on_log: LogSink | None = None,
    ) -> Frame:
        """Run one call on a worker of this pool; ``deadline`` is a ``time.monotonic()`` instant.
        ``answerer`` answers what the worker asks while it runs the call (``child.ask``);
        ``context`` is the worker's ``context`` while it runs the call (for what serves the
        worker beside its pipes: the python runtime's egress proxy counts the call's
        connections in it); ``on_log`` gets the log entries the worker sends as it runs the
        call (``child.log``). A call cancelled while its worker runs it kills that worker: the
        code cannot be stopped any other way, and a worker handed back while still running it
        would make the next call wait until it ended."""
        self._arrivals += 1
        worker = await self._acquire(deadline)
        started = time.monotonic()
        worker.answerer = answerer
        worker.context = context
        try:
            return await self._run(worker, meta, data, deadline, on_log)
        except asyncio.CancelledError:
            worker.kill("its call was cancelled")
            raise
        finally:
            worker.answerer = None
            worker.context = None
            worker.forget_question()
            took = time.monotonic() - started
            self.service_s += SMOOTHING * (took - self.service_s)
            self._release(worker)

    async def _run(
        self,
        worker: WorkerProcess,
        meta: list[Any],
        data: bytes,
        deadline: float,
        on_log: LogSink | None,
    ) -> Frame:
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            worker.kill("the call ran past its deadline")

        timer = loop.call_at(loop.time() + deadline - time.monotonic(), expire)
        try:
            return await worker.call(meta, data, on_log)
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
        self._grow(evict=True)
        return await self._wait(deadline)

    def _grow(self, *, evict: bool) -> None:
        """One more worker for the waiting calls if this pool may grow and the tenant's budget
        grants one; else this pool queues for the next grant that frees."""
        if self.size >= self.ceiling:
            return
        if self.budget.take(self, evict=evict):
            self.add_worker()
        else:
            self.budget.queue(self)

    async def _wait(self, deadline: float) -> WorkerProcess:
        if len(self._waiters) >= self.options.queue_size + self._starting:
            busy = (
                f"all {self.size} workers of this function are busy"
                if self.size >= self.ceiling
                else f"all {self.budget.per_tenant} workers this tenant may have are busy"
            )
            raise QueueFull(f"{busy} and {len(self._waiters)} calls are queued", retry_after=1)
        waiter: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        queued = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                worker = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed over as this call ended: pass it on
            if isinstance(exc, TimeoutError):
                raise FunctionTimeout("waited for a free worker until its deadline") from None
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        wait = time.monotonic() - queued
        self.queue_wait_s += SMOOTHING * (wait - self.queue_wait_s)
        return worker

    def _release(self, worker: WorkerProcess) -> None:
        self._busy.discard(worker)
        if self.closed:
            self._soon(worker.close())
            return
        if not worker.alive:  # its grant comes back once it has exited; replace it if needed
            if self._waiters:
                self._grow(evict=False)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._busy.add(worker)
                waiter.set_result(worker)
                return
        if self.budget.queued_elsewhere(self):
            self._soon(worker.close())  # its grant serves calls waiting in another pool
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
        while self.size < self.floor and self.budget.take(self, evict=False):
            await self.add_worker()

    async def close(self) -> None:
        self.closed = True
        self.budget.leave(self)
        if self._ticker is not None:
            self._ticker.cancel()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(FunctionCrashed("the function was unloaded"))
        for worker in [w for w, _ in self._idle] + list(self._busy):
            self._soon(worker.close())
        self._idle.clear()
        while self._tasks:  # workers still starting are closed as they come in (see _release)
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def workers(self) -> list[WorkerProcess]:
        return [w for w, _ in self._idle] + list(self._busy)
