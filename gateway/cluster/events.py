"""What one gateway process tells the others sharing its stores: a function changed (deploy,
rollback, delete), a key was revoked, a rate limit changed, an execution should be cancelled.

Every event is written to the KV under a sequence number (``event/<seq>``) — the durable log every
process polls twice a second, whatever the KV (several ``--workers`` on one SQLite file, or many
instances on Redis). With Redis, events are also published on a channel so other instances act
at once; the log is then the safety net. A process that finds a gap in the sequence (it was away
longer than events are kept) drops everything it caches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.ids import process_id
from gateway.periodic import Periodic
from storage.kv.base import KV

log = logging.getLogger("tiergate.events")

POLL_S = 0.5
KEEP_S = 120.0
CHANNEL = "tiergate:events"
SEQUENCE = "event-seq"

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


class EventBus:
    def __init__(self, kv: KV, redis_url: str | None = None, *, poll_s: float = POLL_S) -> None:
        self._kv = kv
        self._redis_url = redis_url
        self._poll_s = poll_s
        self.origin = process_id()
        self._handlers: dict[str, Handler] = {}
        self._on_gap: Callable[[], None] | None = None
        self._floor = 0
        self._applied: dict[int, float] = {}
        self._caught_up = time.monotonic()
        self._background = Periodic("events")
        self._redis: Any = None

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def on_gap(self, handler: Callable[[], None]) -> None:
        self._on_gap = handler

    async def publish(self, kind: str, **payload: Any) -> None:
        """Tell the other processes; this one has acted already."""
        seq = await self._next_sequence()
        event = {"seq": seq, "kind": kind, "at": time.time(), "origin": self.origin, **payload}
        raw = orjson.dumps(event)
        self._applied[seq] = event["at"]
        await self._kv.set(f"event/{seq:015d}", raw)
        if self._redis is not None:
            from storage.redis_client import guarded

            await guarded(self._redis.publish, CHANNEL, raw)

    async def _next_sequence(self) -> int:
        while True:
            raw = await self._kv.get(SEQUENCE)
            seq = int(raw or b"0") + 1
            if await self._kv.compare_and_set(SEQUENCE, raw, str(seq).encode()):
                return seq

    async def start(self) -> None:
        """Events from before this process started are not for it: its caches are empty."""
        self._floor = int(await self._kv.get(SEQUENCE) or b"0")
        self._caught_up = time.monotonic()
        self._background.every(self._poll_s, self.catch_up)
        if self._redis_url:
            from storage.redis_client import connect

            self._redis = connect(self._redis_url)
            self._background.keep(self._listen(self._redis_url))

    async def close(self) -> None:
        await self._background.close()
        if self._redis_url and self._redis is not None:
            from storage.redis_client import release

            await release(self._redis_url)

    async def catch_up(self) -> None:
        """Apply every logged event not applied yet, then delete the ones past keeping.

        Sequence numbers are taken before events are written, so a later number can land first;
        every event is therefore checked by number, not by a high-water mark. A process that could
        not read the log for longer than events are kept may have missed some: it drops its caches.
        """
        now = time.monotonic()
        if now - self._caught_up > KEEP_S / 2 and self._on_gap:
            log.warning(
                "events: the log was out of reach for %.0f s; dropping every cache",
                now - self._caught_up,
            )
            self._on_gap()
        events = [orjson.loads(raw) async for _, raw in self._kv.scan("event/")]
        for event in events:
            await self._apply(event)
        self._caught_up = time.monotonic()
        cutoff = time.time() - KEEP_S
        for event in events:
            if event["at"] < cutoff:
                await self._kv.delete(f"event/{event['seq']:015d}")
        logged = {event["seq"] for event in events}
        for seq in [s for s, at in self._applied.items() if at < cutoff and s not in logged]:
            del self._applied[seq]

    async def _apply(self, event: dict[str, Any]) -> None:
        seq = event["seq"]
        if seq <= self._floor or seq in self._applied:
            return
        self._applied[seq] = event["at"]
        handler = self._handlers.get(event["kind"])
        if handler is None or event["origin"] == self.origin:
            return
        try:
            result = handler(event)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("events: handling %s failed", event["kind"])

    async def _listen(self, url: str) -> None:
        from storage.redis_client import subscriber

        while True:
            client = subscriber(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._apply(orjson.loads(message["data"]))
            except Exception as exc:  # the log catches up meanwhile
                log.warning("events: subscription lost (%s); retrying", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()
