"""The work queue's consumer in one gateway process: takes due jobs, runs each by its kind,
renews the leases of what runs long, and acks or releases each when its handler says.

It takes only as many jobs as it has free slots (``TIERGATE_WORK_CONCURRENCY``), so a backlog
waits in the queue, where every process can see it, not in one process's memory. A job put by
this process wakes it at once; others' jobs, and delayed ones, are found by polling, at most
``POLL_S`` apart (sooner when the queue says a job falls due). When the gateway stops, the jobs
it holds go back to the queue, due at once, for another instance or the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gateway.periodic import Periodic
from storage.errors import StorageUnavailable
from storage.queue.base import Job, WorkQueue
from storage.tasks import stop

log = logging.getLogger("tiergate.dispatcher")

POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Later:
    """A handler's answer: deliver the job again at ``due`` (with a new ``body``, if given)."""

    due: float
    body: bytes | None = None


Handler = Callable[[Job], Awaitable[Later | None]]


class Dispatcher:
    def __init__(
        self,
        queue: WorkQueue,
        *,
        consumer: str,
        concurrency: int,
        lease_s: float,
        before_stop: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._consumer = consumer
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._before_stop = before_stop
        self._handlers: dict[str, Handler] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._woken = asyncio.Event()
        self._background = Periodic("work queue")
        self._loop_task: asyncio.Task[None] | None = None

    def handle(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers.update(handlers)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._take_forever())
        self._background.every(self._lease_s / 3, self._renew)

    def wake(self) -> None:
        """A job was put by this process: look at once."""
        self._woken.set()

    async def close(self) -> None:
        self._before_stop()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await stop(self._loop_task)
        await self._background.close()
        held = list(self._running.items())
        for _, task in held:
            task.cancel()
        await asyncio.gather(*(task for _, task in held), return_exceptions=True)
        for job_id, _ in held:  # not done: due again at once, for whoever takes next
            with contextlib.suppress(StorageUnavailable):
                await self._queue.release(job_id, due=time.time())

    async def _take_forever(self) -> None:
        while True:
            taken = 0
            free = self._concurrency - len(self._running)
            if free > 0:
                try:
                    jobs = await self._queue.take(self._consumer, limit=free, lease_s=self._lease_s)
                except StorageUnavailable as exc:
                    log.warning("work queue: %s (will retry)", exc.detail)
                    jobs = []
                for job in jobs:
                    task = asyncio.create_task(self._run(job))
                    self._running[job.job_id] = task
                taken = len(jobs)
            if taken and taken == free:
                await asyncio.sleep(0)  # more may be due: take again after the loop's turn
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        timeout = POLL_S
        with contextlib.suppress(StorageUnavailable):
            due = await self._queue.next_due()
            if due is not None:
                timeout = min(POLL_S, max(0.0, due - time.time()))
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout)

    async def _run(self, job: Job) -> None:
        try:
            handler = self._handlers.get(job.kind)
            if handler is None:
                log.error("work queue: no handler for job kind %r; dropping it", job.kind)
                await self._queue.ack(job.job_id)
                return
            try:
                later = await handler(job)
            except StorageUnavailable as exc:
                log.warning("job %s waits for storage: %s", job.job_id, exc.detail)
                later = Later(time.time() + 5)
            except Exception:
                log.exception("job %s (%s) failed; trying it again later", job.job_id, job.kind)
                later = Later(time.time() + 30)
            if later is None:
                await self._queue.ack(job.job_id)
            else:
                await self._queue.release(job.job_id, due=later.due, body=later.body)
                self.wake()
        except StorageUnavailable as exc:  # its lease runs out: another delivery will do it
            log.warning("job %s: %s", job.job_id, exc.detail)
        finally:
            self._running.pop(job.job_id, None)
            self.wake()

    async def _renew(self) -> None:
        if self._running:
            await self._queue.extend(self._consumer, list(self._running), self._lease_s)
