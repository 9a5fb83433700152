"""The parent's side of the wasm workers: start them, route each call, grow when all are busy,
replace any that dies.

A call goes to an idle worker, else it is pipelined onto the least busy worker that holds only
calls of functions known to be quick (their moving-average duration is under ``QUICK_S``): many
short calls share a worker and its wake-ups. A call is never queued behind one that may be long
(a slow computation, a runaway loop waiting for its deadline, a function not timed yet): then
another worker is started, up to ``max_size``. Extra workers stop after ``IDLE_S`` without work.

Wasm calls have no side effects outside their fresh instance (no files, no sockets; logs are only
returned), so a call that was in flight on a worker that died is retried once on another, with
the time it has left: a call with none left is what got its worker killed, and is not retried.

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
from plugins.workers import Frame, WorkerDied, WorkerProcess

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
            [sys.executable, "-I", "-m", "plugins.wasm.worker"], env=env, max_frame=MAX_ANSWER
        )

    def _ready(self) -> WorkerProcess | None:
        """An idle worker, else the least busy one running only quick calls."""
        best = None
        for worker in self._workers:
            if not worker.alive or self._slow_in_flight.get(worker.pid, 0):
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
            if len(self._workers) < self.max_size:
                worker = await self._spawn()
                self._workers.append(worker)
                return worker
        alive = [w for w in self._workers if w.alive]
        if not alive:
            raise WorkerDied("no wasm worker is running", None)
        return min(alive, key=lambda w: w.load)

    async def call(self, meta: list[Any], data: bytes, timeout_s: float) -> Frame:
        """Run a call (``meta[4]`` is its seconds left); if its worker dies, once more on another
        with the time left, unless none is: then it ran past its deadline itself (blocked in a
        host call, where epochs cannot stop it), and the sweeper killed its worker."""
        deadline = time.monotonic() + timeout_s
        try:
            return await self._call_once(meta, data, timeout_s)
        except WorkerDied:
            await self._replace_dead()
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            return await self._call_once([*meta[:4], left, *meta[5:]], data, left)

    async def _call_once(self, meta: list[Any], data: bytes, timeout_s: float) -> Frame:
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
            frame = await worker.call(meta, data)
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
