"""Token buckets for rate limits: in this process's memory; in the KV (compare-and-set) when
several processes share an embedded store (``serve --workers N``); or on Redis, where every
gateway instance spends from the same bucket in one script call.

``take`` spends one token and answers 0.0, or answers how many seconds until a token is due.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import orjson

from .kv.base import KV
from .redis_client import NAMESPACE, connect, guarded, release


class Buckets(Protocol):
    async def take(self, key: str, rate: float, burst: int) -> float: ...

    def clear(self) -> None: ...

    async def close(self) -> None: ...


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, stamp]

    async def take(self, key: str, rate: float, burst: int) -> float:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(burst), now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0.0
        bucket[0] = tokens
        return (1 - tokens) / rate

    def clear(self) -> None:
        """Buckets shaped by an old rate start again full."""
        self._buckets.clear()

    async def close(self) -> None:
        self._buckets.clear()


class KVBuckets:
    """Buckets as KV records, changed with compare-and-set: exact across the processes of one
    machine at the price of a KV write per request (only when a limit is set)."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv

    async def take(self, key: str, rate: float, burst: int) -> float:
        name = f"bucket/{key}"
        while True:
            raw = await self._kv.get(name)
            now = time.time()
            tokens, stamp = orjson.loads(raw) if raw else (float(burst), now)
            tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            left = tokens - 1 if tokens >= 1 else tokens
            if await self._kv.compare_and_set(name, raw, orjson.dumps([left, now])):
                return wait

    def clear(self) -> None:
        """Shared buckets clamp themselves to a new burst on their next take."""

    async def close(self) -> None:
        """The KV is closed by its owner."""


# KEYS[1] bucket; ARGV[1] rate per second; ARGV[2] burst. The server's clock, so that instances
# with drifting clocks still agree. Returns the wait in seconds as a string (0 = taken).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = math.min(burst, (tonumber(b[1]) or burst) + (now - (tonumber(b[2]) or now)) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
"""


class RedisBuckets:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = connect(url)
        self._take = self._redis.register_script(TAKE)

    async def take(self, key: str, rate: float, burst: int) -> float:
        # A bucket left alone until it is full again holds nothing worth keeping.
        ttl = max(1, math.ceil(burst / rate) + 1)
        wait = await guarded(
            self._take, keys=[f"{NAMESPACE}bucket:{key}"], args=[repr(rate), burst, ttl]
        )
        return float(wait)

    def clear(self) -> None:
        """Shared buckets clamp themselves to a new burst on their next take."""

    async def close(self) -> None:
        await release(self._url)
