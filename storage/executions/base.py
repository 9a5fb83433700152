"""The execution-record interface.

A record is a JSON object with at least ``execution_id`` (time-ordered, so ids sort by start),
``tenant``, ``function_id``, ``status`` and ``started_at``; the rest is the API's execution body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Record = dict[str, Any]
# Statuses of an execution some gateway process is working on (``awaiting_human`` waits on a
# durable task instead, and the others are final).
LIVE_STATUSES = ("pending", "running")


class ExecutionStore(Protocol):
    async def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace records by ``execution_id`` (one transaction where possible)."""

    async def get(self, execution_id: str) -> Record | None:
        """One record, or ``None``."""

    async def list_for_function(
        self, tenant: str, function_id: str, *, limit: int, before: str | None = None
    ) -> list[Record]:
        """Newest first; only ids lower than ``before`` when given."""

    async def delete_for_function(self, tenant: str, function_id: str) -> int:
        """Remove every record of a function; returns how many."""

    async def live(self, limit: int) -> list[Record]:
        """Up to ``limit`` records whose status is one of ``LIVE_STATUSES``, oldest first."""

    async def purge(self, ended_before: float) -> int:
        """Remove finished records that ended before this Unix time; returns how many."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
