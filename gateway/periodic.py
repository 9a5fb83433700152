"""Background work a service repeats while the gateway runs (flushing records, polling events,
heartbeats, sweeps): one loop, one way to stop it, one way to report its failures. A store that
is away is a warning (the next round retries); anything else is logged with its traceback.

A root module: execution records (``invoke``), review tasks (``review``) and the cluster's
services all repeat work, and none of them may import the others for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from storage.errors import StorageUnavailable
from storage.tasks import stop

log = logging.getLogger("tiergate.periodic")


class Periodic:
    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: list[asyncio.Task[Any]] = []

    def every(
        self, interval: float, work: Callable[[], Awaitable[object]], *, now: bool = False
    ) -> None:
        """Run ``work`` every ``interval`` seconds; the first time at once when ``now``."""
        self._tasks.append(asyncio.create_task(self._repeat(interval, work, now)))

    def keep(self, work: Coroutine[Any, Any, None]) -> None:
        """A long-running task (a subscription) stopped with the others."""
        self._tasks.append(asyncio.create_task(work))

    async def close(self) -> None:
        """Stop every task, for good even if a store client swallowed a cancel (``stop``)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await stop(task)
        self._tasks.clear()

    async def _repeat(
        self, interval: float, work: Callable[[], Awaitable[object]], now: bool
    ) -> None:
        if not now:
            await asyncio.sleep(interval)
        while True:
            try:
                await work()
            except StorageUnavailable as exc:
                log.warning("%s: %s (will retry)", self._name, exc.detail)
            except Exception:
                log.exception("%s failed; trying again", self._name)
            await asyncio.sleep(interval)
