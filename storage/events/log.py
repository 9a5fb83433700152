"""The event log in the KV: every process writes events under a sequence number and polls.

Every event is written under ``event/<seq>`` — the durable log every process polls twice a second,
whatever the KV (several ``--workers`` on one SQLite file, or many instances on Redis). With a
channel (Redis pub/sub) each event is also sent at once, and the log is the safety net for what
the channel drops. Events are kept for ``KEEP_S`` seconds; a process that could not read the log
for half that long may have missed some and is told so (``on_gap``). A fleeting event
(``publish_fleeting``) goes on the channel alone, or, without one, is kept for its own few
seconds: a chatty sender cannot fill the log every process scans twice a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from storage.errors import StorageUnavailable

from ..kv.base import KV
from ..tasks import stop
from .base import Event, EventChannel, Receiver, decode_event, encode_event

log = logging.getLogger("tiergate.events")

POLL_S = 0.5
KEEP_S = 120.0
SEQUENCE = "event-seq"
PREFIX = "event/"


class KVEventLog:
    """An ``EventTransport`` over any KV, with an optional ``EventChannel`` beside it."""

    def __init__(
        self,
        kv: KV,
        origin: str,
        *,
        channel: EventChannel | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self._kv = kv
        self.origin = origin
        self._channel = channel
        self._poll_s = poll_s
        self._receive: Receiver | None = None
        self._on_gap: Callable[[], None] | None = None
        self._floor = 0
        self._applied: dict[int, float] = {}  # seq -> at, for every event seen and still logged
        self._caught_up = time.monotonic()
        self._poller: asyncio.Task[None] | None = None

    async def start(self, receive: Receiver, on_gap: Callable[[], None]) -> None:
        """Events from before this process started are not for it: its caches are empty."""
        self._receive, self._on_gap = receive, on_gap
        self._floor = int(await self._kv.get(SEQUENCE) or b"0")
        self._caught_up = time.monotonic()
        self._poller = asyncio.create_task(self._poll())
        if self._channel is not None:
            await self._channel.start(self._deliver_raw)

    async def close(self) -> None:
        if self._poller is not None:
            await stop(self._poller)
            self._poller = None
        if self._channel is not None:
            await self._channel.close()

    async def publish(self, kind: str, **data: Any) -> None:
        seq, raw = await self._stamped(kind, data, None)
        await self._kv.set(f"{PREFIX}{seq:015d}", raw)
        if self._channel is not None:
            await self._channel.publish(raw)

    async def publish_fleeting(self, kind: str, keep_s: float, **data: Any) -> None:
        seq, raw = await self._stamped(kind, data, keep_s)
        if self._channel is not None:
            await self._channel.publish(raw)
        else:
            await self._kv.set(f"{PREFIX}{seq:015d}", raw)

    async def _stamped(
        self, kind: str, data: dict[str, Any], keep_s: float | None
    ) -> tuple[int, bytes]:
        """The event as sent, under a new sequence number this process will not deliver."""
        seq = await self._next_sequence()
        event = Event(seq, kind, time.time(), self.origin, data, keep_s)
        self._applied[seq] = event.at
        return seq, encode_event(event)

    async def _next_sequence(self) -> int:
        while True:
            raw = await self._kv.get(SEQUENCE)
            seq = int(raw or b"0") + 1
            if await self._kv.compare_and_set(SEQUENCE, raw, str(seq).encode()):
                return seq

    async def catch_up(self) -> None:
        """Deliver every logged event not delivered yet, then delete the ones past keeping.

        Sequence numbers are taken before events are written, so a later number can land first;
        every event is therefore checked by number, not by a high-water mark. A process that could
        not read the log for longer than events are kept may have missed some: it is told.
        """
        now = time.monotonic()
        if now - self._caught_up > KEEP_S / 2 and self._on_gap is not None:
            log.warning(
                "events: the log was out of reach for %.0f s; dropping every cache",
                now - self._caught_up,
            )
            self._on_gap()
        events = [event async for event in self._logged()]
        for event in events:
            await self._deliver(event)
        self._caught_up = time.monotonic()
        now_s = time.time()
        cutoff = now_s - KEEP_S
        for event in events:
            if event.at < (cutoff if event.keep_s is None else now_s - event.keep_s):
                await self._kv.delete(f"{PREFIX}{event.seq:015d}")
        logged = {event.seq for event in events}
        for seq in [s for s, at in self._applied.items() if at < cutoff and s not in logged]:
            del self._applied[seq]

    async def _logged(self) -> AsyncIterator[Event]:
        async for key, raw in self._kv.scan(PREFIX):
            try:
                yield decode_event(raw)
            except ValueError:
                log.error("events: skipping unreadable entry %s", key)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self.catch_up()
            except StorageUnavailable as exc:
                log.warning("events: %s (will retry)", exc.detail)
            except Exception:
                log.exception("events failed; trying again")

    async def _deliver_raw(self, raw: bytes) -> None:
        try:
            event = decode_event(raw)
        except ValueError:
            log.error("events: skipping an unreadable message on the channel")
            return
        await self._deliver(event)

    async def _deliver(self, event: Event) -> None:
        """Hand an event over once, unless it is older than this process or its own."""
        if event.seq <= self._floor or event.seq in self._applied:
            return
        self._applied[event.seq] = event.at
        if event.origin == self.origin or self._receive is None:
            return
        try:
            await self._receive(event)
        except Exception:
            log.exception("events: handling %s failed", event.kind)
