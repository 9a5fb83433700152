"""Dead letters: asynchronous executions whose retries are spent (or whose ``max_age_s`` passed),
kept in the KV under ``dead/<tenant>/<execution_id>`` with their whole input, so an operator can
see why they failed and run them again (``redrive``) once the cause is fixed.

A letter is written before its work leaves the queue, so a gateway that dies in between writes it
again (the same key): at least once, never lost. Letters are kept as long as execution records
(``TIERGATE_RETENTION_DAYS``), so a tenant whose calls keep failing cannot fill the KV with them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from gateway.invoke.execution import ExecutionRecord
from gateway.periodic import Periodic
from storage.kv.base import KV

LIST_LIMIT = 1000


@dataclass(slots=True)
class DeadLetter:
    execution_id: str
    tenant: str
    function_id: str
    version: int
    error: str | None
    attempts: list[dict[str, Any]]
    failed_at: float
    input: str  # the execution's input, JSON text
    cause: dict[str, Any] = field(default_factory=lambda: {"kind": "invoke"})
    overrides: dict[str, Any] = field(default_factory=dict)
    retries: int = 0

    @classmethod
    def of(cls, record: ExecutionRecord, body: str, overrides: dict[str, Any]) -> DeadLetter:
        return cls(
            execution_id=record.execution_id,
            tenant=record.tenant,
            function_id=record.function_id,
            version=record.version,
            error=record.error,
            attempts=[a.as_json() for a in record.attempts],
            failed_at=record.ended_at or time.time(),
            input=body,
            cause=record.cause or {"kind": "invoke"},
            overrides=overrides,
            retries=record.retries,
        )


class DeadLetters:
    def __init__(self, kv: KV, *, retention_s: float, purge_interval: float) -> None:
        self._kv = kv
        self._retention_s = retention_s
        self._background = Periodic("dead letters")
        self._purge_interval = purge_interval

    def start(self) -> None:
        self._background.every(self._purge_interval, self.purge)

    async def close(self) -> None:
        await self._background.close()

    async def purge(self) -> None:
        """Drop the letters older than the retention."""
        oldest = time.time() - self._retention_s
        letters = self._kv.scan("dead/")
        expired = [key async for key, raw in letters if orjson.loads(raw)["failed_at"] < oldest]
        for key in expired:
            await self._kv.delete(key)

    async def add(self, letter: DeadLetter) -> None:
        await self._kv.set(_key(letter.tenant, letter.execution_id), orjson.dumps(asdict(letter)))

    async def get(self, tenant: str, execution_id: str) -> DeadLetter | None:
        raw = await self._kv.get(_key(tenant, execution_id))
        return None if raw is None else DeadLetter(**orjson.loads(raw))

    async def list(self, tenant: str, function_id: str | None = None) -> list[DeadLetter]:
        """The tenant's letters, oldest execution first (ids sort by time), at most
        ``LIST_LIMIT``."""
        found: list[DeadLetter] = []
        async for _, raw in self._kv.scan(f"dead/{tenant}/"):
            letter = DeadLetter(**orjson.loads(raw))
            if function_id is None or letter.function_id == function_id:
                found.append(letter)
                if len(found) >= LIST_LIMIT:
                    break
        return found

    async def remove(self, tenant: str, execution_id: str) -> bool:
        """Delete a letter; False when there is none."""
        key = _key(tenant, execution_id)
        if await self._kv.get(key) is None:
            return False
        await self._kv.delete(key)
        return True


def _key(tenant: str, execution_id: str) -> str:
    return f"dead/{tenant}/{execution_id}"
