"""One SQLite database file shared by the KV and the execution records, driven from one thread.

A single connection used from a single dedicated thread serialises writes without lock
contention; WAL lets readers in other processes (``--workers``) proceed while it writes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from storage.errors import StorageUnavailable

from .threads import Offload

T = TypeVar("T")

_OPEN: dict[Path, SQLiteDatabase] = {}
_OPEN_LOCK = threading.Lock()


class SQLiteDatabase:
    """Reference-counted: the KV and the execution store of one process share it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._io = Offload(f"sqlite-{path.name}", 1)
        self._conn: sqlite3.Connection | None = None
        self._users = 0

    @classmethod
    def shared(cls, path: Path) -> SQLiteDatabase:
        path = path.resolve()
        with _OPEN_LOCK:
            db = _OPEN.get(path)
            if db is None:
                db = _OPEN[path] = cls(path)
            db._users += 1
            return db

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._conn = conn
        return self._conn

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the database thread; SQLite faults become 503s."""

        def call() -> T:
            try:
                return work(self._connect())
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"sqlite {self.path.name}: {exc}") from None
            except OSError as exc:
                raise StorageUnavailable(
                    f"sqlite {self.path.name}: {exc.strerror or exc}"
                ) from None

        return await self._io.run(call)

    async def release(self) -> None:
        with _OPEN_LOCK:
            self._users -= 1
            if self._users > 0:
                return
            _OPEN.pop(self.path, None)
        await self._io.run(self._close)
        self._io.shutdown()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
