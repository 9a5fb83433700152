"""Execution records in SQLite, in the same database file as the KV (table ``executions``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import orjson

from ..sqlite import SQLiteDatabase
from .base import LIVE_STATUSES, EncodedRecord, Record

T = TypeVar("T")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS executions (execution_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
    "function_id TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, "
    "body BLOB NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS executions_by_function "
    "ON executions (tenant, function_id, execution_id)",
    "CREATE INDEX IF NOT EXISTS executions_by_end ON executions (ended_at)",
)
# One statement per batch: the batch travels as one JSON array and SQLite unpacks it. Python's
# executemany would release and re-take the GIL around every row, and each hand-off costs the
# event-loop thread a context switch under load.
UPSERT = (
    "INSERT INTO executions "
    "(execution_id, tenant, function_id, status, started_at, ended_at, body) "
    "SELECT value ->> '$.execution_id', value ->> '$.tenant', value ->> '$.function_id', "
    "value ->> '$.status', value ->> '$.started_at', value ->> '$.ended_at', value "
    "FROM json_each(?) WHERE true "
    "ON CONFLICT(execution_id) DO UPDATE SET status = excluded.status, "
    "ended_at = excluded.ended_at, body = excluded.body "
    # a finished record is never replaced by an unfinished one (a late flush of another process)
    "WHERE executions.ended_at IS NULL OR excluded.ended_at IS NOT NULL"
)


class SQLiteExecutionStore:
    def __init__(self, path: Path) -> None:
        self._db = SQLiteDatabase.shared(path)
        self._ready = False

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if not self._ready:
            await self._db.run(lambda c: [c.execute(sql) for sql in SCHEMA])
            self._ready = True
        return await self._db.run(work)

    async def put_many(self, records: Sequence[Record]) -> None:
        await self.put_encoded([EncodedRecord.of(record) for record in records])

    async def put_encoded(self, records: Sequence[EncodedRecord]) -> None:
        batch = b"[" + b",".join(record.body for record in records) + b"]"
        text = batch.decode()
        await self._run(lambda c: c.execute(UPSERT, (text,)))

    async def get(self, execution_id: str) -> Record | None:
        def read(conn: sqlite3.Connection) -> Record | None:
            row = conn.execute(
                "SELECT body FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            return None if row is None else orjson.loads(row[0])

        return await self._run(read)

    async def list_for_function(
        self, tenant: str, function_id: str, *, limit: int, before: str | None = None
    ) -> list[Record]:
        sql = "SELECT body FROM executions WHERE tenant = ? AND function_id = ?"
        args: list[object] = [tenant, function_id]
        if before is not None:
            sql += " AND execution_id < ?"
            args.append(before)
        sql += " ORDER BY execution_id DESC LIMIT ?"
        args.append(limit)
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [orjson.loads(body) for (body,) in rows]

    async def delete_for_function(self, tenant: str, function_id: str) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM executions WHERE tenant = ? AND function_id = ?", (tenant, function_id)
            )
            return cursor.rowcount

        return await self._run(delete)

    async def live(self, limit: int) -> list[Record]:
        marks = ", ".join("?" for _ in LIVE_STATUSES)
        sql = (
            f"SELECT body FROM executions WHERE ended_at IS NULL AND status IN ({marks}) "
            "ORDER BY execution_id LIMIT ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (*LIVE_STATUSES, limit)).fetchall())
        return [orjson.loads(body) for (body,) in rows]

    async def purge(self, ended_before: float) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM executions WHERE ended_at IS NOT NULL AND ended_at < ?",
                (ended_before,),
            )
            return cursor.rowcount

        return await self._run(delete)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._db.release()
