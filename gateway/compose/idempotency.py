"""``Idempotency-Key`` on ``POST /invoke`` and ``POST /events``: a client that retries a request
(its connection dropped before the answer) gets the first request's execution or event instead
of starting another. Keys are per tenant and per kind of request, kept ``TTL_S``; only a hash of
the key is stored, so a key may be any text the client likes (up to ``MAX_KEY``).

The claim is a compare-and-set in the KV, so two instances answering the same key at once agree
on one winner.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from gateway.errors import BadRequest
from gateway.periodic import Periodic
from storage.kv.base import KV

TTL_S = 24 * 3600
MAX_KEY = 255
PURGE_EVERY_S = 3600


class IdempotencyKeys:
    def __init__(self, kv: KV, ttl_s: float = TTL_S) -> None:
        self._kv = kv
        self._ttl = ttl_s
        self._background = Periodic("idempotency keys")

    def start(self) -> None:
        self._background.every(PURGE_EVERY_S, self.purge)

    async def close(self) -> None:
        await self._background.close()

    async def claim(
        self, tenant: str, kind: str, key: str, value: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Record ``value`` (what the request started) under ``key``; returns what the key
        already holds instead, when it was claimed less than ``TTL_S`` ago."""
        check(key)
        name = _name(tenant, kind, key)
        mine = orjson.dumps({"value": value, "at": time.time()})
        while True:
            current = await self._kv.get(name)
            if current is not None:
                held = orjson.loads(current)
                if time.time() - held["at"] < self._ttl:
                    return dict(held["value"])
            if await self._kv.compare_and_set(name, current, mine):
                return None

    async def settle(self, tenant: str, kind: str, key: str, value: dict[str, Any]) -> None:
        """Replace what a claimed key holds (once the request knows all it started)."""
        name = _name(tenant, kind, key)
        current = await self._kv.get(name)
        at = orjson.loads(current)["at"] if current is not None else time.time()
        await self._kv.set(name, orjson.dumps({"value": value, "at": at}))

    async def purge(self) -> None:
        """Drop expired keys (an expired key is already free to claim: this only keeps the KV
        small)."""
        now = time.time()
        expired = [
            name
            async for name, raw in self._kv.scan("idem/")
            if now - orjson.loads(raw)["at"] >= self._ttl
        ]
        for name in expired:
            await self._kv.delete(name)


def _name(tenant: str, kind: str, key: str) -> str:
    return f"idem/{tenant}/{kind}/{hashlib.sha256(key.encode()).hexdigest()}"


def check(key: str) -> None:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY} printable characters")
