"""The audit trail: who did what, when — every admin action and every deploy.

Entries are stored under keys that sort newest first (``audit/<inverted ms>-<id>``), so listing
the latest entries is a plain prefix scan.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.ids import new_id
from gateway.security.auth import Principal
from gateway.times import iso
from storage.kv.base import KV

_FAR_FUTURE_MS = 10**13


class AuditLog:
    def __init__(self, kv: KV) -> None:
        self._kv = kv

    async def record(self, principal: Principal, action: str, target: str, **details: Any) -> None:
        now = time.time()
        entry_id = f"{_FAR_FUTURE_MS - int(now * 1000):013d}-{new_id()}"
        entry = {
            "id": entry_id,
            "at": now,
            "key_id": principal.key_id,
            "key_name": principal.name,
            "tenant": principal.tenant,
            "action": action,
            "target": target,
            "details": details,
        }
        await self._kv.set(f"audit/{entry_id}", orjson.dumps(entry))

    async def list(self, *, limit: int, before: str | None = None) -> list[dict[str, Any]]:
        """Newest first; with ``before``, only entries older than that entry id."""
        entries = []
        async for key, raw in self._kv.scan("audit/"):
            if before is not None and key[len("audit/") :] <= before:
                continue
            entry = orjson.loads(raw)
            entries.append({**entry, "at": iso(entry["at"])})
            if len(entries) >= limit:
                break
        return entries
