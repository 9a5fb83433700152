"""Executions whose gateway process died — killed, out of memory, its pod evicted — would stay
``pending`` or ``running`` forever, and their callers would poll forever. Every process therefore
writes a heartbeat (``alive/<process id>`` in the KV) and every process sweeps for live executions
whose owner's heartbeat is older than ``orphan_after_s``, ending them ``failed`` with a reason
through ``Finisher.finish`` (recorded, counted and called back like any ending). A process that
stops cleanly records its executions itself. Durable executions (async work delivered by the work
queue) are left alone: the queue delivers them again once their lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
import time

import orjson

from gateway.invoke.finish import Finisher
from gateway.invoke.records import ExecutionRecords
from gateway.periodic import Periodic
from storage.errors import StorageUnavailable
from storage.kv.base import KV

log = logging.getLogger("tiergate.orphans")

SWEEP_BATCH = 500
REASON = "the gateway process running this execution stopped before it finished"


class OrphanSweeper:
    def __init__(
        self,
        kv: KV,
        records: ExecutionRecords,
        finisher: Finisher,
        owner: str,
        *,
        orphan_after_s: float,
    ) -> None:
        self._kv = kv
        self._records = records
        self._finisher = finisher
        self._owner = owner
        self._after = orphan_after_s
        self._background = Periodic("orphan sweep")

    def start(self) -> None:
        self._background.every(self._after / 6, self.beat, now=True)
        self._background.every(self._after / 3, self.sweep, now=True)

    async def close(self) -> None:
        await self._background.close()
        with contextlib.suppress(StorageUnavailable):
            await self._kv.delete(_alive(self._owner))

    async def beat(self) -> None:
        await self._kv.set(_alive(self._owner), orjson.dumps(time.time()))

    async def sweep(self) -> int:
        """End the live executions of dead processes; returns how many."""
        now = time.time()
        verdicts: dict[str, bool] = {self._owner: True}
        ended = 0
        for record in await self._records.live(SWEEP_BATCH):
            if record.durable:
                continue
            owner = record.owner
            if owner not in verdicts:
                raw = await self._kv.get(_alive(owner)) if owner else None
                verdicts[owner] = raw is not None and now - orjson.loads(raw) < self._after
            if verdicts[owner]:
                continue
            self._finisher.finish(record, "failed", error=REASON)
            ended += 1
        if ended:
            log.warning("ended %d execution(s) whose gateway process had stopped", ended)
        return ended


def _alive(owner: str) -> str:
    return f"alive/{owner}"
