"""The work queue in SQLite: one table ``queue`` in the database file the KV uses.

The gateway processes of ``serve --workers N`` share the file, so ``put`` and ``take`` each run
in a ``BEGIN IMMEDIATE`` transaction: the write lock is held before they read, and two processes
never lease the same job nor both add the last job under the bound.

``ready_at`` is when a job can next be taken: its ``due`` while no one holds it, the end of its
lease while someone does. One index on it serves both kinds of job: the new ones, and those whose
consumer died. ``consumer`` stays set after a lease runs out, until another consumer takes the job,
so the holder may still renew it late.

``grp`` is the job's group (``NULL`` for none). ``put`` counts the group's jobs in the same
transaction as it adds one, through a partial index that holds only the jobs with a group, so
ungrouped work pays nothing for it. Tables made before groups existed get the column when the
queue is first used (``ALTER TABLE``, in a write transaction so processes starting together do
not both add it); their jobs have no group.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import orjson

from ..sqlite import SQLiteDatabase, transaction
from .base import Job, group_full, new_job_id, queue_full

T = TypeVar("T")
TABLE = (
    "CREATE TABLE IF NOT EXISTS queue (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "body BLOB NOT NULL, due REAL NOT NULL, ready_at REAL NOT NULL, consumer TEXT, "
    "deliveries INTEGER NOT NULL, grp TEXT) WITHOUT ROWID"
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS queue_by_ready ON queue (ready_at)",
    "CREATE INDEX IF NOT EXISTS queue_by_group ON queue (grp) WHERE grp IS NOT NULL",
)
PUT = (
    "INSERT INTO queue (job_id, kind, body, due, ready_at, consumer, deliveries, grp) "
    "SELECT ?1, ?2, ?3, ?4, ?4, NULL, 0, ?6 WHERE (SELECT count(*) FROM queue) < ?5"
)
GROUP_DEPTH = "SELECT count(*) FROM queue WHERE grp = ?"
TAKE = (
    "UPDATE queue SET ready_at = ?3, consumer = ?4, deliveries = deliveries + 1 "
    "WHERE job_id IN (SELECT job_id FROM queue WHERE ready_at <= ?1 "
    "ORDER BY due, job_id LIMIT ?2) "
    "RETURNING job_id, kind, body, deliveries, due"
)
# the ids travel as one JSON array, as executions/sqlite.py does with its batches
EXTEND = (
    "UPDATE queue SET ready_at = ? "
    "WHERE consumer = ? AND job_id IN (SELECT value FROM json_each(?))"
)
RELEASE = (
    "UPDATE queue SET due = ?1, ready_at = ?1, consumer = NULL, deliveries = 0, "
    "body = coalesce(?2, body) WHERE job_id = ?3"
)


class SQLiteWorkQueue:
    def __init__(self, path: Path, *, bound: int) -> None:
        self._db = SQLiteDatabase.shared(path)
        self._bound = bound
        self._ready = False

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if not self._ready:
            await self._db.run(lambda c: transaction(c, _prepare))
            self._ready = True
        return await self._db.run(work)

    async def put(
        self,
        kind: str,
        body: bytes,
        *,
        due: float | None = None,
        group: str | None = None,
        group_bound: int | None = None,
    ) -> str:
        job_id = new_job_id()
        when = time.time() if due is None else due
        args = (job_id, kind, body, when, self._bound, group)

        def add(t: sqlite3.Connection) -> None:
            # the write lock is held from here to the insert: no other process adds meanwhile
            if group is not None and group_bound is not None:
                (held,) = t.execute(GROUP_DEPTH, (group,)).fetchone()
                if held >= group_bound:
                    raise group_full(group, group_bound)
            if not t.execute(PUT, args).rowcount:
                raise queue_full(self._bound)

        await self._run(lambda c: transaction(c, add))
        return job_id

    async def take(self, consumer: str, *, limit: int, lease_s: float) -> list[Job]:
        now = time.time()
        args = (now, limit, now + lease_s, consumer)
        rows = await self._run(lambda c: transaction(c, lambda t: t.execute(TAKE, args).fetchall()))
        jobs = [Job(job_id, kind, bytes(body), n, due) for job_id, kind, body, n, due in rows]
        return sorted(jobs, key=lambda job: (job.due, job.job_id))  # RETURNING has no order

    async def extend(self, consumer: str, job_ids: Sequence[str], lease_s: float) -> None:
        args = (time.time() + lease_s, consumer, orjson.dumps(list(job_ids)).decode())
        await self._run(lambda c: c.execute(EXTEND, args))

    async def ack(self, job_id: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM queue WHERE job_id = ?", (job_id,)))

    async def release(self, job_id: str, *, due: float, body: bytes | None = None) -> None:
        await self._run(lambda c: c.execute(RELEASE, (due, body, job_id)))

    async def depth(self) -> int:
        row = await self._run(lambda c: c.execute("SELECT count(*) FROM queue").fetchone())
        return int(row[0])

    async def group_depth(self, group: str) -> int:
        row = await self._run(lambda c: c.execute(GROUP_DEPTH, (group,)).fetchone())
        return int(row[0])

    async def next_due(self) -> float | None:
        # a job no one holds is ready at its due, and ready_at has the index
        sql = "SELECT min(ready_at) FROM queue WHERE consumer IS NULL"
        row = await self._run(lambda c: c.execute(sql).fetchone())
        return None if row[0] is None else float(row[0])

    async def close(self) -> None:
        await self._db.release()


def _prepare(conn: sqlite3.Connection) -> None:
    """Create the table, or bring one from before groups up to date, then its indexes."""
    conn.execute(TABLE)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(queue)")}
    if "grp" not in columns:
        conn.execute("ALTER TABLE queue ADD COLUMN grp TEXT")
    for sql in INDEXES:
        conn.execute(sql)
