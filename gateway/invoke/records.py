"""Execution records: written behind the hot path in batches, readable at once.

``save`` only puts the record in a pending map (no I/O, so it is safe even while the calling task
is being cancelled); a background task flushes pending records in one transaction every few
milliseconds. Reads look at the pending map first, so a record is visible the moment it is saved.

This is the storage boundary of ``ExecutionRecord``: orjson encodes the dataclass as it stands
when a batch is written (no dict is built for it), and what the store returns is read back with
``ExecutionRecord.from_json``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import orjson

from gateway.invoke.execution import ExecutionRecord
from gateway.periodic import Periodic
from plugins.logs import ENTRY_OVERHEAD
from storage.errors import StorageUnavailable
from storage.executions.base import EncodedRecord, ExecutionStore, Record

log = logging.getLogger("tiergate.records")

MAX_PENDING = 10_000
LOG_PAGE_BYTES = 4 * 1024 * 1024
LOG_PAGE_BATCH = 4


class RecordWatcher(Protocol):
    """Who sees records as they are saved (``gateway.invoke.live.LiveHub``): ``saved`` is
    called only while ``followers`` is not 0, and must not block or raise."""

    followers: int

    def saved(self, record: ExecutionRecord) -> None: ...


class ExecutionRecords:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        flush_interval: float = 0.05,
        retention_s: float = 7 * 86400,
        purge_interval: float = 3600,
        on_written: Callable[[Iterable[ExecutionRecord], int], None] | None = None,
    ) -> None:
        """``on_written(records, started_ns)`` learns of each write once it succeeded (the
        tracing's ``execution_record write`` spans)."""
        self._store = store
        self._on_written = on_written
        self._pending: dict[str, ExecutionRecord] = {}
        self._writing: dict[str, ExecutionRecord] = {}
        self._flush_interval = flush_interval
        self._retention_s = retention_s
        self._purge_interval = purge_interval
        self._background = Periodic("execution records")
        self._lock = asyncio.Lock()
        self._watcher: RecordWatcher | None = None

    def save(self, record: ExecutionRecord) -> None:
        self._pending[record.execution_id] = record
        watcher = self._watcher
        if watcher is not None and watcher.followers:
            watcher.saved(record)

    def watch(self, watcher: RecordWatcher) -> None:
        """Bound once by the app factory: while ``watcher`` has followers, it sees every record
        as it is saved (live streams follow status changes through it)."""
        self._watcher = watcher

    def unsaved(self) -> int:
        """Records not in the store yet: pending, and the batch being written (which, while the
        store is away, may take seconds to fail)."""
        return len(self._pending) + len(self._writing)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        record = self._pending.get(execution_id) or self._writing.get(execution_id)
        if record is not None:
            return record
        return _read(await self._store.get(execution_id))

    async def persist(self, record: ExecutionRecord) -> None:
        """Write one record now, around the batch; raises (and keeps nothing) if the store is
        down. For a record another instance may be asked for before the next flush."""
        started = time.time_ns()
        await self._store.put_encoded(_encoded([record]))
        if self._on_written is not None:
            self._on_written((record,), started)

    async def flush_soon(self) -> None:
        """Flush now; if the store is down the records stay pending for the next try."""
        try:
            await self.flush()
        except StorageUnavailable as exc:
            log.warning("execution records: %s (will retry)", exc.detail)

    async def live(self, limit: int) -> list[ExecutionRecord]:
        """Pending and running executions of every process (this one's saved first)."""
        await self.flush()
        return [ExecutionRecord.from_json(r) for r in await self._store.live(limit)]

    async def list_for_function(
        self, tenant: str, function_id: str, *, limit: int, before: str | None
    ) -> list[ExecutionRecord]:
        await self.flush()
        found = await self._store.list_for_function(tenant, function_id, limit=limit, before=before)
        return [ExecutionRecord.from_json(r) for r in found]

    async def log_page(
        self, tenant: str, function_id: str, *, limit: int, before: str | None
    ) -> list[ExecutionRecord]:
        """Newest first, at most ``limit`` records, ending early once their logs pass
        ``LOG_PAGE_BYTES`` (a record may hold 1 MiB of logs, and ``limit`` may be 1000); read a
        few records at a time, so a page never holds more than it answers."""
        page: list[ExecutionRecord] = []
        size = 0
        while len(page) < limit:
            wanted = min(LOG_PAGE_BATCH, limit - len(page))
            batch = await self.list_for_function(tenant, function_id, limit=wanted, before=before)
            for record in batch:
                page.append(record)
                size += sum(len(entry["message"]) + ENTRY_OVERHEAD for entry in record.logs)
                if size >= LOG_PAGE_BYTES:
                    return page
            if len(batch) < wanted:
                break
            before = batch[-1].execution_id
        return page

    async def delete_for_function(self, tenant: str, function_id: str) -> None:
        await self.flush()
        await self._store.delete_for_function(tenant, function_id)

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            batch = self._writing = self._pending
            self._pending = {}
            started = time.time_ns()
            try:
                await self._store.put_encoded(_encoded(batch.values()))
            except BaseException:
                self._pending = {**batch, **self._pending}  # keep them for the next try
                self._shed()
                raise
            finally:
                self._writing = {}
            if self._on_written is not None:
                self._on_written(batch.values(), started)

    def _shed(self) -> None:
        """While the store is down, keep the newest ``MAX_PENDING`` records, not all of them:
        a long outage must not grow this process without bound."""
        excess = len(self._pending) - MAX_PENDING
        if excess <= 0:
            return
        for execution_id in list(self._pending)[:excess]:
            del self._pending[execution_id]
        log.error("execution store unreachable: dropped %d unsaved execution records", excess)

    async def purge(self) -> int:
        return await self._store.purge(time.time() - self._retention_s)

    def start(self) -> None:
        self._background.every(self._flush_interval, self.flush)
        self._background.every(self._purge_interval, self.purge)

    async def close(self) -> None:
        await self._background.close()
        await self.flush()


def _encoded(records: Iterable[ExecutionRecord]) -> list[EncodedRecord]:
    """What the store writes: orjson encodes each dataclass as it stands."""
    return [
        EncodedRecord(
            r.execution_id, r.tenant, r.function_id, r.status, r.ended_at, orjson.dumps(r)
        )
        for r in records
    ]


def _read(stored: Record | None) -> ExecutionRecord | None:
    return None if stored is None else ExecutionRecord.from_json(stored)
