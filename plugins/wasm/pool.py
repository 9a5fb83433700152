"""The parent's side of the wasm workers: start them, route each call, grow when all are busy,
replace any that dies.

A call goes to an idle worker, else it is pipelined onto the least busy worker that holds only
calls of functions known to be quick (their moving-average duration is under ``QUICK_S``): many
short calls share a worker and its wake-ups. A call is never queued behind one that may be long
(a slow computation, a runaway loop waiting for its deadline, a function not timed yet): then
another worker is started, up to ``max_size``. Extra workers stop after ``IDLE_S`` without work.

Wasm calls have no side effects outside their fresh instance (no files, no sockets; their logs
are only sent to the gateway), so a call that was in flight on a worker that died is retried once
on another, with the time it has left: a call with none left is what got its worker killed, and
is not retried. What the first run logged stays, and the second run logs again.

A call of a module that calls other functions (``tiergate.invoke``) is different: its worker
waits on the gateway while the callee runs, and the callee may need a worker itself. So it runs
alone on an idle worker (nothing is pipelined behind it, and the worker's ``answerer`` is its
own) and is never retried (it may have called functions already). Such calls start workers of
their own beyond the others' growth (so callees always find one): up to ``max_size`` for calls
that no function made, past which they wait for one to be free; a call made by a function whose
call waits for it always gets one, so chains of calls never wait on each other (there are at most
as many as the capped calls times the depth cap).

Workers are our code and bound their answers by construction (``executor``); a frame longer than
``MAX_ANSWER`` is a broken worker, which is killed and replaced.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from plugins.logs import EXECUTION_BYTES
from plugins.runtime import MAX_OUTPUT_KB
from plugins.workers import Answerer, Frame, LogSink, WorkerDied, WorkerProcess

GRACE_S = 5.0
SWEEP_S = 1.0
IDLE_S = 60.0
QUICK_S = 0.005
SMOOTHING = 0.2
# The largest output, and capped logs even if every character were escaped (\u0000: 6 bytes)
# with room for the entries' timestamps and the error message.
MAX_ANSWER = MAX_OUTPUT_KB * 1024 + 8 * EXECUTION_BYTES


class WasmWorkers:
    def __init__(self, size: int, max_size: int | None = None) -> None:
        self.size = size
        self.max_size = max(size, max_size or 4 * size)
        self._workers: list[WorkerProcess] = []
        self._lock = asyncio.Lock()
        self._deadlines: dict[int, float] = {}
        self._last_used: dict[int, float] = {}
        self._slow_in_flight: dict[int, int] = {}
        self._average_s: dict[str, float] = {}
        self._calling: set[int] = set()  # pids of workers running a call that calls functions
        self._nested = 0  # of those, the calls that a waiting call made
        self._calling_freed = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def running(self) -> int:
        return sum(w.alive for w in self._workers)

    async def start(self) -> None:
        async with self._lock:
            while len(self._workers) < self.size:
                self._workers.append(await self._spawn())
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    @staticmethod
    async def _spawn() -> WorkerProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return await WorkerProcess.start(
            [sys.executable, "-I", "-m", "plugins.wasm.worker"],
            env=env,
            max_frame=MAX_ANSWER,
            cancellable=True,
        )

    def _ready(self) -> WorkerProcess | None:
        """An idle worker, else the least busy one running only quick calls (a call given up on
        counts as slow until its worker answers it: it may be blocked where nothing stops it)."""
        best = None
        for worker in self._workers:
            if not worker.alive or self._slow_in_flight.get(worker.pid, 0) or worker.abandoned:
                continue
            if worker.load == 0:
                return worker
            if best is None or worker.load < best.load:
                best = worker
        return best

    async def _pick(self) -> WorkerProcess:
        return self._ready() or await self._grow()

    async def _grow(self) -> WorkerProcess:
        async with self._lock:
            ready = self._ready()
            if ready is not None:
                return ready
            if len(self._workers) - len(self._calling) < self.max_size:
                worker = await self._spawn()
                self._workers.append(worker)
                return worker
        alive = [w for w in self._workers if w.alive and w.pid not in self._calling]
        if not alive:
            raise WorkerDied("no wasm worker is running", None)
        return min(alive, key=lambda w: w.load)

    async def _pick_idle(self, deadline: float, nested: bool) -> WorkerProcess:
        """An idle worker for a call that calls functions, started if none is and the call is
        ``nested`` (made by a waiting call) or fewer than ``max_size`` others run; else the first
        to be free (``TimeoutError`` at ``deadline``)."""
        while True:
            async with self._lock:
                for worker in self._workers:
                    if worker.alive and not worker.load and worker.pid not in self._calling:
                        return worker
                if nested or len(self._calling) - self._nested < self.max_size:
                    worker = await self._spawn()
                    self._workers.append(worker)
                    return worker
            self._calling_freed.clear()
            async with asyncio.timeout(deadline - time.monotonic()):
                await self._calling_freed.wait()

    async def call_alone(
        self,
        meta: list[Any],
        data: bytes,
        timeout_s: float,
        answerer: Answerer | None,
        on_log: LogSink,
        *,
        nested: bool,
    ) -> Frame:
        """Run a call of a module that calls functions, alone on a worker whose questions
        ``answerer`` answers; never retried. ``on_log`` takes the log entries the worker sends
        as the call runs. ``nested``: a function's call made it, and waits for it.
        ``TimeoutError`` when no worker was free in time."""
        started = time.monotonic()
        worker = await self._pick_idle(started + timeout_s, nested)
        self._nested += nested
        pid = worker.pid
        left = started + timeout_s - time.monotonic()
        self._last_used[pid] = started
        self._deadlines[pid] = time.monotonic() + left + GRACE_S
        self._calling.add(pid)
        self._slow_in_flight[pid] = self._slow_in_flight.get(pid, 0) + 1
        worker.answerer = answerer
        try:
            return await worker.call([*meta[:4], left, *meta[5:]], data, on_log)
        except asyncio.CancelledError:
            worker.forget_question()  # a worker waiting for an answer to nobody is killed
            raise
        finally:
            worker.answerer = None
            self._slow_in_flight[pid] -= 1
            self._calling.discard(pid)
            self._nested -= nested
            self._calling_freed.set()
            if not worker.load:
                self._deadlines.pop(pid, None)

    async def call(
        self, meta: list[Any], data: bytes, timeout_s: float, on_log: LogSink
    ) -> Frame:
        """Run a call (``meta[4]`` is its seconds left); if its worker dies, once more on another
        with the time left, unless none is: then it ran past its deadline itself (blocked in a
        host call, where epochs cannot stop it), and the sweeper killed its worker. ``on_log``
        takes the log entries the worker sends as the call runs: a call run again logs again,
        after what its first run sent."""
        deadline = time.monotonic() + timeout_s
        try:
            return await self._call_once(meta, data, timeout_s, on_log)
        except WorkerDied:
            await self._replace_dead()
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            return await self._call_once([*meta[:4], left, *meta[5:]], data, left, on_log)

    async def _call_once(
        self, meta: list[Any], data: bytes, timeout_s: float, on_log: LogSink
    ) -> Frame:
        worker = await self._pick()
        key = meta[1]
        pid = worker.pid
        started = time.monotonic()
        self._last_used[pid] = started
        self._deadlines[pid] = max(self._deadlines.get(pid, 0.0), started + timeout_s + GRACE_S)
        quick = self._average_s.get(key, QUICK_S) < QUICK_S
        if not quick:
            self._slow_in_flight[pid] = self._slow_in_flight.get(pid, 0) + 1
        try:
            frame = await worker.call(meta, data, on_log)
        finally:
            if not quick:
                self._slow_in_flight[pid] -= 1
            if not worker.load:  # idle: the deadlines of calls it has answered are not its own
                self._deadlines.pop(pid, None)
        took = frame.meta[-1]
        average = self._average_s.get(key)
        self._average_s[key] = took if average is None else average + SMOOTHING * (took - average)
        return frame

    async def _sweep(self) -> None:
        """Workers end calls by their deadlines (epochs); this is the net under that net: a worker
        still busy well past the latest deadline it was given since it was last idle is killed
        and replaced. Extra workers idle for long are stopped."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for worker in self._workers:
                if worker.alive and worker.load and self._deadlines.get(worker.pid, now) < now:
                    worker.kill("a call ran far past its deadline")
            await self._replace_dead()
            await self._shrink(now)

    async def _shrink(self, now: float) -> None:
        async with self._lock:
            while len(self._workers) > self.size:
                worker = self._workers[-1]
                if worker.load or now - self._last_used.get(worker.pid, 0.0) < IDLE_S:
                    return
                self._workers.pop()
                await worker.close()

    async def _replace_dead(self) -> None:
        async with self._lock:
            for index, worker in enumerate(self._workers):
                if not worker.alive:
                    self._workers[index] = await self._spawn()
                    self.restarts += 1

    def broadcast(self, meta: list[Any]) -> None:
        for worker in self._workers:
            if worker.alive:
                worker.send(meta)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
