"""The execution-record interface.

A record is a JSON object with at least ``execution_id`` (time-ordered, so ids sort by start),
``tenant``, ``function_id``, ``status``, ``started_at`` and ``ended_at``; the rest is the API's
execution body. Writers that already hold the JSON (the gateway: orjson writes its typed records
directly) hand over ``EncodedRecord`` rows, so nothing is built twice on the way to the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import orjson

Record = dict[str, Any]
# Statuses of an execution some gateway process is working on (``awaiting_human`` waits on a
# durable task instead, and the others are final).
LIVE_STATUSES = ("pending", "running")


class EncodedRecord(NamedTuple):
    """One record ready to write: ``body`` is its JSON object; the other fields repeat what the
    stores index, so they need not parse ``body`` again."""

    execution_id: str
    tenant: str
    function_id: str
    status: str
    ended_at: float | None
    body: bytes

    @classmethod
    def of(cls, record: Record) -> EncodedRecord:
        return cls(
            record["execution_id"],
            record["tenant"],
            record["function_id"],
            record["status"],
            record.get("ended_at"),
            orjson.dumps(record),
        )


class ExecutionStore(Protocol):
    async def put_many(self, records: Sequence[Record]) -> None:
        """Insert or replace records by ``execution_id`` (one transaction where possible)."""

    async def put_encoded(self, records: Sequence[EncodedRecord]) -> None:
        """``put_many`` for records already encoded. Either way a finished record is never
        replaced by an unfinished one (a late write from another process)."""

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
