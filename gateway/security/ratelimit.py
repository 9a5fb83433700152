"""Per-key token buckets, checked in the auth middleware before a request does any work.

The default rate and burst come from settings (``TIERGATE_RATE_LIMIT_RPS`` and
``TIERGATE_RATE_LIMIT_BURST``; a rate of 0 means unlimited); a tenant may have its own, set by an
admin and kept in the KV. Buckets live in this process's memory, in the KV when several
processes share an embedded store, or on Redis when the KV is Redis, so that every process
serving a key spends from one bucket (``storage/buckets.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from gateway.errors import BadRequest, RateLimited
from storage.buckets import Buckets
from storage.kv.base import KV

OVERRIDE_CACHE_S = 5.0
MAX_RATE = 1_000_000.0  # past these a limit limits nothing; bounded so they stay JSON integers
MAX_BURST = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    rate: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @classmethod
    def parse(cls, body: object) -> Rate:
        if not isinstance(body, dict):
            raise BadRequest('send {"rate": <requests per second>, "burst": <requests>}')
        rate, burst = body.get("rate"), body.get("burst", None)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= MAX_RATE:
            raise BadRequest(
                f"rate must be a number of requests per second up to {MAX_RATE:g}, 0 for unlimited"
            )
        if burst is None:
            burst = max(1, int(rate))
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
            raise BadRequest(f"burst must be a whole number of requests from 1 to {MAX_BURST}")
        return cls(float(rate), burst)


class RateLimiter:
    def __init__(self, kv: KV, default: Rate, buckets: Buckets) -> None:
        self._kv = kv
        self._default = default
        self._buckets = buckets
        self._overrides: dict[str, tuple[Rate | None, float]] = {}

    async def take(self, key_id: str, tenant: str) -> None:
        """Spend one token of this key's bucket, or raise 429 ``rate_limited``."""
        now = time.monotonic()
        cached = self._overrides.get(tenant)
        if cached is not None and cached[1] >= now:
            rate = cached[0] or self._default
        else:
            rate = await self.rate_for(tenant)
        if rate.unlimited:
            return
        wait = await self._buckets.take(key_id, rate.rate, rate.burst)
        if not wait:
            return
        raise RateLimited(
            f"rate limit of {rate.rate:g} requests/s (burst {rate.burst}) reached for this key",
            retry_after=wait,
            limit=rate.rate,
            burst=rate.burst,
        )

    async def rate_for(self, tenant: str) -> Rate:
        cached = self._overrides.get(tenant)
        now = time.monotonic()
        if cached is None or cached[1] < now:
            raw = await self._kv.get(f"ratelimit/{tenant}")
            override = None if raw is None else Rate(**orjson.loads(raw))
            cached = (override, now + OVERRIDE_CACHE_S)
            self._overrides[tenant] = cached
        return cached[0] or self._default

    async def set_override(self, tenant: str, rate: Rate | None) -> None:
        if rate is None:
            await self._kv.delete(f"ratelimit/{tenant}")
        else:
            await self._kv.set(
                f"ratelimit/{tenant}", orjson.dumps({"rate": rate.rate, "burst": rate.burst})
            )

    def forget(self, tenant: str | None = None) -> None:
        """Drop the cached override of one tenant (or all), and the buckets shaped by it."""
        if tenant is None:
            self._overrides.clear()
        else:
            self._overrides.pop(tenant, None)
        self._buckets.clear()

    async def override(self, tenant: str) -> Rate | None:
        raw = await self._kv.get(f"ratelimit/{tenant}")
        return None if raw is None else Rate(**orjson.loads(raw))

    @property
    def default(self) -> Rate:
        return self._default
