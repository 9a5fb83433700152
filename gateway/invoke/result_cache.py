"""The result cache: a function version deployed with ``cache: {"ttl_s": N}`` answers a call
whose input it has seen within ``N`` seconds with that earlier call's output, and runs no tier.

Entries live in the KV, so every instance sharing it shares them:
``rcache/<tenant>/<function_id>/<version>/<sha256>`` (the SHA-256 of the input re-encoded as
JSON with sorted keys) → ``{"output", "tier", "execution_id", "stored_at", "expires_at",
"generation"}``. ``generation`` is when the version was deployed: a function deleted and
deployed again starts again at version 1, and must not answer from the first one's results.
Only what the code tier produced is kept; the invoker decides that (``invoker.py``).

A tenant cannot fill the KV with it: an entry lives at most ``ttl_s`` (at most a day), an entry
above ``MAX_ENTRY_BYTES`` is not kept, and one version keeps at most ``MAX_ENTRIES`` entries and
``MAX_VERSION_BYTES`` in all — past that, new results are not kept until old ones expire. Stores
are counted per version in ``rcount/<tenant>/<function_id>/<version>``; a store that finds the
count at a bound counts the version's live entries again (dropping the expired ones), at most
once a minute. Expired entries are never answered from, and are purged hourly, with the counts.

The cache is best effort: when the KV does not answer, a lookup is a miss and a store is
skipped (with a warning), never a failed call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.invoke.execution import ExecutionRecord
from gateway.periodic import Periodic
from storage.errors import StorageUnavailable
from storage.kv.base import KV
from tiers.function import LoadedFunction, ResultCachePolicy

log = logging.getLogger("tiergate.result_cache")

KEY_PREFIX = "rcache/"
COUNT_PREFIX = "rcount/"
MAX_ENTRIES = 10_000
MAX_ENTRY_BYTES = 256 * 1024
MAX_VERSION_BYTES = 64 * 1024 * 1024
RECOUNT_EVERY_S = 60.0
PURGE_EVERY_S = 3600


@dataclass(frozen=True, slots=True)
class CachedResult:
    """A fresh entry: the output, the tier that produced it, and the execution that ran it."""

    output: Any
    tier: str
    execution_id: str
    stored_at: float


def cache_key(fn: LoadedFunction, value: Any) -> str:
    """Where the result of calling ``fn`` (this version, this tenant) with ``value`` is kept."""
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{KEY_PREFIX}{fn.tenant}/{fn.function_id}/{fn.version}/{digest}"


@dataclass(slots=True)
class _Count:
    """``rcount/…``: entries stored for one version (and their bytes) since they were last
    counted, and, once at a bound, when to count them again."""

    entries: int = 0
    size: int = 0
    full_until: float = 0.0

    @classmethod
    def decode(cls, raw: bytes | None) -> _Count:
        if raw is None:
            return cls()
        try:
            return cls(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError):
            return cls()  # unreadable: counted again when it reaches a bound

    def encode(self) -> bytes:
        return orjson.dumps(
            {"entries": self.entries, "size": self.size, "full_until": self.full_until}
        )


class ResultCache:
    def __init__(
        self,
        kv: KV,
        *,
        max_entries: int = MAX_ENTRIES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        max_version_bytes: int = MAX_VERSION_BYTES,
    ) -> None:
        self._kv = kv
        self._max_entries = max_entries
        self._max_entry = max_entry_bytes
        self._max_version = max_version_bytes
        self._background = Periodic("result cache")

    def start(self) -> None:
        self._background.every(PURGE_EVERY_S, self.purge)

    async def close(self) -> None:
        await self._background.close()

    async def get(self, key: str, policy: ResultCachePolicy) -> CachedResult | None:
        """The fresh entry under ``key``; None when there is none (or the KV does not answer)."""
        try:
            raw = await self._kv.get(key)
        except StorageUnavailable as exc:
            log.warning("result cache: lookup skipped: %s", exc.detail)
            return None
        if raw is None:
            return None
        try:
            entry = orjson.loads(raw)
            if entry["expires_at"] <= time.time() or entry["generation"] != policy.generation:
                return None
            return CachedResult(
                entry["output"], entry["tier"], entry["execution_id"], entry["stored_at"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    async def put(self, key: str, policy: ResultCachePolicy, record: ExecutionRecord) -> bool:
        """Keep a completed execution's output under ``key`` for ``policy.ttl_s``; False when it
        is not kept (too large, the version at a bound, or the KV away)."""
        now = time.time()
        entry = orjson.dumps(
            {
                "output": record.output,
                "tier": record.tier,
                "execution_id": record.execution_id,
                "stored_at": now,
                "expires_at": now + policy.ttl_s,
                "generation": policy.generation,
            }
        )
        if len(entry) > self._max_entry:
            return False
        try:
            if not await self._reserve(key, len(entry), now):
                return False
            await self._kv.set(key, entry)
        except StorageUnavailable as exc:
            log.warning("result cache: result not kept: %s", exc.detail)
            return False
        return True

    async def _reserve(self, key: str, size: int, now: float) -> bool:
        """Count one more entry of ``size`` bytes for the key's version; False at a bound."""
        version = key[: key.rindex("/") + 1]
        counter = COUNT_PREFIX + version[len(KEY_PREFIX) : -1]
        while True:
            raw = await self._kv.get(counter)
            count = _Count.decode(raw)
            if self._full(count, size):
                if now < count.full_until:
                    return False
                count = await self._count_live(version, now)
                if self._full(count, size):
                    count.full_until = max(count.full_until, now + RECOUNT_EVERY_S)
                    await self._kv.compare_and_set(counter, raw, count.encode())
                    return False
            mine = _Count(count.entries + 1, count.size + size)
            if await self._kv.compare_and_set(counter, raw, mine.encode()):
                return True

    def _full(self, count: _Count, size: int) -> bool:
        return count.entries >= self._max_entries or count.size + size > self._max_version

    async def _count_live(self, version: str, now: float) -> _Count:
        """The version's live entries, their bytes and the soonest expiry among them; the
        expired ones are deleted on the way."""
        count, expired = _Count(full_until=float("inf")), []
        async for key, raw in self._kv.scan(version):
            expires_at = _expires_at(raw)
            if expires_at <= now:
                expired.append(key)
                continue
            count.entries += 1
            count.size += len(raw)
            count.full_until = min(count.full_until, expires_at)
        for key in expired:
            await self._kv.delete(key)
        return count

    async def purge(self) -> None:
        """Drop expired entries (they are never answered from: this keeps the KV small) and
        set each version's count to what is left."""
        now = time.time()
        expired: list[str] = []
        entries: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        async for key, raw in self._kv.scan(KEY_PREFIX):
            if _expires_at(raw) <= now:
                expired.append(key)
            else:
                version = key[len(KEY_PREFIX) : key.rindex("/")]
                entries[version] += 1
                sizes[version] += len(raw)
        for key in expired:
            await self._kv.delete(key)
        counters = [item async for item in self._kv.scan(COUNT_PREFIX)]
        for counter, raw in counters:
            version = counter[len(COUNT_PREFIX) :]
            if version not in entries:
                await self._kv.delete(counter)
            else:
                left = _Count(entries[version], sizes[version])
                await self._kv.compare_and_set(counter, raw, left.encode())


def _expires_at(raw: bytes) -> float:
    """An entry's expiry; an unreadable entry has expired."""
    try:
        return float(orjson.loads(raw)["expires_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0.0
