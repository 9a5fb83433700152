"""The KV on SQLite (WAL). Scans use key ranges, not LIKE, so ``%`` and ``_`` in keys are safe."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from ..sqlite import SQLiteDatabase, transaction

T = TypeVar("T")
SCHEMA = "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
SCAN_PAGE = 500


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return None


class SQLiteKV:
    def __init__(self, path: Path) -> None:
        self._db = SQLiteDatabase.shared(path)
        self._ready = False

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if not self._ready:
            await self._db.run(lambda c: c.execute(SCHEMA))
            self._ready = True
        return await self._db.run(work)

    async def get(self, key: str) -> bytes | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(read)

    async def set(self, key: str, value: bytes) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        )

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        def swap(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            current = None if row is None else bytes(row[0])
            if current != expected:
                return False
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value",
                (key, value),
            )
            return True

        return await self._run(lambda c: transaction(c, swap))

    async def delete(self, key: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        start, end = prefix, prefix_end(prefix)
        first = True
        while True:
            page = await self._run(functools.partial(_page, start=start, end=end, inclusive=first))
            for key, value in page:
                yield key, value
            if len(page) < SCAN_PAGE:
                return
            start, first = page[-1][0], False

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        await self._db.release()


def _page(
    conn: sqlite3.Connection, start: str, end: str | None, inclusive: bool
) -> list[tuple[str, bytes]]:
    op = ">=" if inclusive else ">"
    if end is None:
        sql = f"SELECT key, value FROM kv WHERE key {op} ? ORDER BY key LIMIT ?"
        rows = conn.execute(sql, (start, SCAN_PAGE))
    else:
        sql = f"SELECT key, value FROM kv WHERE key {op} ? AND key < ? ORDER BY key LIMIT ?"
        rows = conn.execute(sql, (start, end, SCAN_PAGE))
    return [(k, bytes(v)) for k, v in rows]
