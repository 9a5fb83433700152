"""The event transport's interface and the one record it carries.

An ``Event`` is published by one process and delivered to every other process sharing the stores,
at least once and each ``seq`` once per process; never back to the process that published it
(which acted already). On the wire an event is one JSON object: ``seq``, ``kind``, ``at`` and
``origin`` beside the event's own fields — the shape every tiergate version reads — and, for a
fleeting event, ``keep_s`` (a version that does not know it keeps the event as long as any).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

HEADER = ("seq", "kind", "at", "origin")


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    """Unique among the processes sharing the KV; taken before the event is written."""
    kind: str
    """What happened, e.g. ``function.changed``."""
    at: float
    """Unix time of publication (events are kept for a while after, then dropped)."""
    origin: str
    """The publishing process."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The event's own fields (e.g. ``tenant`` and ``function_id``)."""
    keep_s: float | None = None
    """A fleeting event's keep in the log (``EventTransport.publish_fleeting``); None: the
    log's own."""


def encode_event(event: Event) -> bytes:
    header = {"seq": event.seq, "kind": event.kind, "at": event.at, "origin": event.origin}
    if event.keep_s is not None:
        header["keep_s"] = event.keep_s
    return orjson.dumps({**event.data, **header})


def decode_event(raw: bytes | str) -> Event:
    """Raises ``ValueError`` (``orjson.JSONDecodeError`` included) for what is not an event."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not all(k in data for k in HEADER):
        raise ValueError(f"not an event: {str(raw)[:200]}")
    keep_s = data.pop("keep_s", None)
    rest = {k: v for k, v in data.items() if k not in HEADER}
    return Event(
        int(data["seq"]),
        data["kind"],
        float(data["at"]),
        data["origin"],
        rest,
        None if keep_s is None else float(keep_s),
    )


Receiver = Callable[[Event], Awaitable[None]]
"""What a transport hands each event to."""


class EventTransport(Protocol):
    async def start(self, receive: Receiver, on_gap: Callable[[], None]) -> None:
        """Deliver every event published from now on by another process to ``receive``.

        ``on_gap`` is called when events may have been missed (the log was out of reach for
        longer than it keeps events): whoever caches what events announce must drop it all.
        """

    async def publish(self, kind: str, **data: Any) -> None:
        """Tell the other processes; ``StorageUnavailable`` when the log cannot be written."""

    async def publish_fleeting(self, kind: str, keep_s: float, **data: Any) -> None:
        """Tell the other processes something worth knowing for ``keep_s`` seconds only (live
        streams' events): on the channel alone when there is one (one it drops is not worth a
        place in the log every process scans), else in the log, deleted once ``keep_s`` has
        passed. A process that does not hear it in time goes without."""

    async def close(self) -> None:
        """Stop delivering and release connections."""


class EventChannel(Protocol):
    """A fast path beside the log (Redis pub/sub): best effort, the log catches what it drops."""

    async def start(self, deliver: Callable[[bytes], Awaitable[None]]) -> None: ...

    async def publish(self, raw: bytes) -> None: ...

    async def close(self) -> None: ...
