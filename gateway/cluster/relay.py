"""Live streams across processes: the events of an execution, sent from the process running it
to the processes whose streams follow it.

Watching. A process serving a stream of an execution it does not run, or a follow stream of a
function's logs, holds a *lease* on it: ``watching`` publishes a ``live.watch`` event at the next
tick, renews it every ``RENEW_S`` seconds while a stream holds it (it lapses ``LEASE_S`` seconds
after the last renewal) and publishes ``live.unwatch`` when the last stream closes.

Exporting. Every process keeps the leases it hears of (at most ``MAX_LEASES``) and tells its
``LiveHub`` to export what they name, so the invoke path calls into the hub only while somebody
somewhere follows. The events of an execution running here queue in this relay, bounded in
bytes per execution and per process; every ``FLUSH_S`` seconds at most ``BATCH_BYTES`` of them
go as one fleeting ``live.batch`` event (on the Redis channel alone; without Redis, in the KV's
event log for ``KEEP_S`` seconds). An execution whose events do not fit is not forwarded any
more (its log entries and tokens; its statuses still are): one ``dropped`` item says so, and its
entries come from its record at its end, as for a stream that follows the record alone.

Receiving. A ``live.batch`` reaches every process; the items some subscriber of this one follows
go to the hub's ``relayed``, as if they had happened here. Streams drop what they sent already
(log entries carry their index in the execution's ``logs``) and still take their ``end`` from the
record: a batch that never arrives costs liveness, never an entry.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.invoke.live import ENDED, Followed, LiveEvent, LiveHub
from gateway.periodic import Periodic
from plugins.runtime import LogEntry
from storage.events.base import EventTransport
from tiers.attempt import Attempt

log = logging.getLogger("tiergate.relay")

LEASE_S = 60.0
RENEW_S = 20.0
FLUSH_S = 0.2
KEEP_S = 3.0
BATCH_BYTES = 48 * 1024
EXECUTION_BYTES = 64 * 1024
TOTAL_BYTES = 512 * 1024
MAX_LEASES = 4096
MAX_FORWARDING = 4096
WATCH_PAGE = 256
ITEM_OVERHEAD = 64

Item = list[Any]
"""On the wire: ``[kind, execution_id, [tenant, function_id] | None, body]``; body is ``[index,
ts, stream, message, level]`` (log), a status, an attempt's JSON, ``[tier, text]`` (token), or
None (dropped)."""


@dataclass(slots=True)
class _Forwarding:
    """One execution running here whose events go out: the next log index to send, the bytes
    it has queued, and whether it went past its bounds (then only its statuses go)."""

    next_index: int = 0
    queued: int = 0
    dropped: bool = False


class LiveRelay:
    """``gateway.invoke.live.Exporter`` for the hub, and the three ``live.*`` meanings of
    ``Coherence``."""

    def __init__(
        self,
        transport: EventTransport,
        hub: LiveHub,
        logs_so_far: Callable[[str], list[LogEntry] | None],
        origin: str,
    ) -> None:
        """``logs_so_far(execution_id)``: the entries an execution running here kept so far."""
        self._bus = transport
        self._hub = hub
        self._logs_so_far = logs_so_far
        self._origin = origin
        self._watching: dict[Followed, int] = {}  # what streams here follow -> how many
        self._announce: set[Followed] = set()
        self._release: set[Followed] = set()
        self._renewed = time.monotonic()
        self._leases: dict[Followed, dict[str, float]] = {}  # -> watcher -> lapses at
        self._queue: deque[tuple[Item, int]] = deque()
        self._queued = 0
        self._forwarding: OrderedDict[str, _Forwarding] = OrderedDict()
        self._background = Periodic("live relay")
        hub.export_to(self)

    def meanings(self) -> dict[str, Callable[[Mapping[str, Any]], object]]:
        return {
            "live.watch": self._heard_watch,
            "live.unwatch": self._heard_unwatch,
            "live.batch": self._heard_batch,
        }

    def start(self) -> None:
        self._background.every(FLUSH_S, self._tick)

    async def close(self) -> None:
        await self._background.close()

    # --- watching ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def watching(self, followed: Followed | None) -> Iterator[None]:
        """Hold a lease on ``followed`` while the block runs (None: nothing to follow)."""
        if followed is None:
            yield
            return
        held = self._watching.get(followed, 0)
        self._watching[followed] = held + 1
        if not held:
            self._release.discard(followed)
            self._announce.add(followed)
        try:
            yield
        finally:
            left = self._watching.pop(followed) - 1
            if left:
                self._watching[followed] = left
            else:
                self._announce.discard(followed)
                self._release.add(followed)

    async def _tick(self) -> None:
        now = time.monotonic()
        if self._watching and now - self._renewed >= RENEW_S:
            self._renewed = now
            self._announce.update(self._watching)
        await self._tell("live.watch", self._announce, lease_s=LEASE_S)
        await self._tell("live.unwatch", self._release)
        self._lapse(now)
        await self._flush()

    async def _tell(self, kind: str, followed: set[Followed], **extra: Any) -> None:
        """Publish ``followed`` in pages; what was published leaves the set."""
        while followed:
            page = sorted(followed, key=str)[:WATCH_PAGE]
            wire = [f if isinstance(f, str) else list(f) for f in page]
            await self._bus.publish(kind, watcher=self._origin, followed=wire, **extra)
            followed.difference_update(page)

    # --- leases heard ------------------------------------------------------------------------

    def _heard_watch(self, data: Mapping[str, Any]) -> None:
        watcher = str(data["watcher"])
        lapses = time.monotonic() + min(float(data.get("lease_s", LEASE_S)), LEASE_S)
        for followed in map(_followed, data["followed"][:WATCH_PAGE]):
            holders = self._leases.get(followed)
            if holders is None:
                if len(self._leases) >= MAX_LEASES:
                    log.warning("live relay: %d leases held; ignoring more", MAX_LEASES)
                    return
                holders = self._leases[followed] = {}
                self._hub.export(followed)
            if watcher not in holders and isinstance(followed, str):
                self._resend(followed)  # a new watcher: what it wrote so far, first
            holders[watcher] = lapses

    def _heard_unwatch(self, data: Mapping[str, Any]) -> None:
        watcher = str(data["watcher"])
        for followed in map(_followed, data["followed"][:WATCH_PAGE]):
            holders = self._leases.get(followed)
            if holders is not None:
                holders.pop(watcher, None)
                if not holders:
                    self._drop_lease(followed)

    def _lapse(self, now: float) -> None:
        for followed, holders in list(self._leases.items()):
            for watcher in [w for w, lapses in holders.items() if lapses <= now]:
                del holders[watcher]
            if not holders:
                self._drop_lease(followed)

    def _drop_lease(self, followed: Followed) -> None:
        del self._leases[followed]
        self._hub.unexport(followed)

    # --- exporting (the hub calls ``push`` on the invoke path) -------------------------------

    def push(self, event: LiveEvent, function: tuple[str, str] | None) -> None:
        kind, execution_id, payload = event
        state = self._state(execution_id)
        if kind == "status":
            status = payload[0]
            self._queue_item(["status", execution_id, function, status], state, always=True)
            if status in ENDED:
                self._forwarding.pop(execution_id, None)
        elif state.dropped:
            return
        elif kind == "log":
            index, entry = payload
            if index > state.next_index:  # its first events here since a lease: earlier ones
                earlier = self._logs_so_far(execution_id) or []
                for n in range(state.next_index, min(index, len(earlier))):
                    self._queue_log(execution_id, function, n, earlier[n], state)
            if index >= state.next_index:
                self._queue_log(execution_id, function, index, entry, state)
        elif kind == "attempt":
            body = payload.as_json()
            self._queue_item(["attempt", execution_id, None, body], state, len(body["error"] or ""))
        elif kind == "token":
            tier, text = payload
            self._queue_item(["token", execution_id, None, [tier, text]], state, len(text))

    def _resend(self, execution_id: str) -> None:
        """What an execution running here kept so far, from its first entry (the watcher drops
        what it has)."""
        earlier = self._logs_so_far(execution_id)
        if earlier:
            state = self._state(execution_id)
            for index, entry in enumerate(earlier):
                self._queue_log(execution_id, None, index, entry, state)

    def _queue_log(
        self,
        execution_id: str,
        function: tuple[str, str] | None,
        index: int,
        entry: LogEntry,
        state: _Forwarding,
    ) -> None:
        body = [index, entry.ts, entry.stream, entry.message, entry.level]
        if self._queue_item(["log", execution_id, function, body], state, len(entry.message)):
            state.next_index = max(state.next_index, index + 1)

    def _queue_item(
        self, item: Item, state: _Forwarding, size: int = 0, *, always: bool = False
    ) -> bool:
        """Queue ``item`` within the bounds; past them the execution is no longer forwarded,
        and one ``dropped`` item says so. Statuses (``always``) are tiny and few: they go."""
        size += ITEM_OVERHEAD
        if not always:
            if state.dropped:
                return False
            if state.queued + size > EXECUTION_BYTES or self._queued + size > TOTAL_BYTES:
                state.dropped = True
                item = ["dropped", item[1], item[2], None]
                size = ITEM_OVERHEAD
        self._queue.append((item, size))
        state.queued += size
        self._queued += size
        return not state.dropped

    def _state(self, execution_id: str) -> _Forwarding:
        state = self._forwarding.get(execution_id)
        if state is None:
            state = self._forwarding[execution_id] = _Forwarding()
            if len(self._forwarding) > MAX_FORWARDING:
                self._forwarding.popitem(last=False)
        return state

    async def _flush(self) -> None:
        """One ``live.batch`` of at most ``BATCH_BYTES`` (plus one item); the rest waits for
        the next tick. A batch the transport refuses is lost: streams still get the record."""
        if not self._queue:
            return
        items: list[Item] = []
        size = 0
        while self._queue and size < BATCH_BYTES:
            item, item_size = self._queue.popleft()
            items.append(item)
            size += item_size
            self._queued -= item_size
            state = self._forwarding.get(item[1])
            if state is not None:
                state.queued -= item_size
        await self._bus.publish_fleeting("live.batch", KEEP_S, items=items)

    # --- receiving ---------------------------------------------------------------------------

    def _heard_batch(self, data: Mapping[str, Any]) -> None:
        hub = self._hub
        for kind, execution_id, raw_function, body in data["items"]:
            function = None if raw_function is None else (raw_function[0], raw_function[1])
            if hub.follows(execution_id, function):
                hub.relayed(_event(kind, execution_id, body), function)


def _followed(raw: Any) -> Followed:
    return raw if isinstance(raw, str) else (str(raw[0]), str(raw[1]))


def _event(kind: str, execution_id: str, body: Any) -> LiveEvent:
    """An item as the hub's subscribers take it."""
    if kind == "log":
        index, ts, stream, message, level = body
        return ("log", execution_id, (index, LogEntry(ts, stream, message, level)))
    if kind == "status":
        return ("status", execution_id, (body, None))
    if kind == "attempt":
        return ("attempt", execution_id, Attempt.from_json(body))
    if kind == "token":
        return ("token", execution_id, (body[0], body[1]))
    if kind == "dropped":
        return ("dropped", execution_id, None)
    raise ValueError(f"unknown live item {kind!r}")
