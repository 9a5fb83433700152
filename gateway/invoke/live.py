"""``LiveHub``: what the executions running in this process do, handed to whoever follows them.

An execution's live events — a status change, a log entry as its code writes it, an attempt's
end, a model tier's tokens as they arrive — reach every ``Subscription`` to it the moment they
happen (``GET /executions/{id}/events``, ``GET /functions/{id}/logs?follow=true``). Nothing is
kept for an execution nobody follows, and while no stream is open in this process nothing calls
the hub at all (``followers`` is 0: the hot path reads one attribute).

Each subscriber has a bounded queue of events. Its entries are references to what the execution
keeps anyway (log entries are capped per execution, attempts and records are the execution's),
so a bound on the *number* of queued events bounds a subscriber's memory; a subscriber whose
queue is full has read too slowly: it is marked ``overflowed`` and gets nothing more, and its
stream ends saying so. How many subscriptions one tenant holds at once is bounded too
(``TooManyStreams``).

Other processes' streams get these events through an ``Exporter`` (``gateway/cluster/relay.py``):
for each execution or function one of them follows (``export``), the hub hands the exporter what
happens to it here, and counts it among ``followers`` meanwhile; what another process forwards
comes back in through ``relayed``, to this process's own subscribers only (never exported again).
The end of a stream still comes from the execution record (see ``gateway/http/sse.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.errors import TooManyStreams
from gateway.invoke.execution import ExecutionRecord
from plugins.runtime import LogEntry
from tiers.attempt import Attempt

ENDED = frozenset({"completed", "failed", "timeout", "cancelled"})
"""The statuses an execution ends with: a stream of it ends when its record shows one."""

EventKind = Literal["status", "log", "attempt", "token", "dropped"]
LiveEvent = tuple[EventKind, str, Any]
"""``(kind, execution_id, payload)``: payload is ``(status, ExecutionRecord | None)`` (the status
as it was saved: the record changes on; None when another process saved it), ``(index,
LogEntry)`` (its place in the execution's logs), an ``Attempt``, ``(tier, text)`` (token), or
None (``dropped``: the process running it forwards no more of its entries and tokens, past its
bounds)."""

Followed = str | tuple[str, str]
"""What another process follows: an execution id, or a function as ``(tenant, function_id)``."""


class Exporter(Protocol):
    """Takes what happens here to what other processes follow (``LiveHub.export``)."""

    def push(self, event: LiveEvent, function: tuple[str, str] | None) -> None:
        """Called on the invoke path: must not block or raise."""


@dataclass(eq=False)
class Subscription:
    """One follower: of one execution (``execution_id``) or of every execution of one function
    (``function``: ``(tenant, function_id)``)."""

    tenant: str
    limit: int
    execution_id: str | None = None
    function: tuple[str, str] | None = None
    events: deque[LiveEvent] = field(default_factory=deque)
    overflowed: bool = False
    closed: bool = False  # the gateway is stopping: the stream ends, the client may reconnect
    relayed: bool = False  # another process forwarded some of this execution's events to it
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, event: LiveEvent) -> None:
        if self.overflowed:
            return
        if len(self.events) >= self.limit:
            self.overflowed = True
            self.events.clear()  # nothing more is sent: the stream ends saying it fell behind
        else:
            self.events.append(event)
        self.wake.set()

    def drain(self) -> Iterator[LiveEvent]:
        while self.events:
            yield self.events.popleft()

    async def wait(self, timeout: float) -> None:
        """Until an event comes, or ``timeout`` seconds."""
        self.wake.clear()
        if self.events or self.overflowed or self.closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)


class LiveHub:
    """``tiers.ports.LiveEvents`` for the tiers, and ``RecordWatcher`` for the execution
    records (``ExecutionRecords.watch``): status changes come from the records saved."""

    def __init__(self, *, queue_events: int, max_streams_per_tenant: int) -> None:
        self._queue_events = queue_events
        self._max_per_tenant = max_streams_per_tenant
        self._by_execution: dict[str, set[Subscription]] = {}
        self._by_function: dict[tuple[str, str], set[Subscription]] = {}
        self._per_tenant: dict[str, int] = {}
        self._exporter: Exporter | None = None
        self._exported: set[Followed] = set()
        self.followers = 0

    # --- subscribing -----------------------------------------------------------------------

    def subscribe(
        self,
        tenant: str,
        *,
        execution_id: str | None = None,
        function: tuple[str, str] | None = None,
    ) -> Subscription:
        """A new follower; ``TooManyStreams`` when the tenant holds as many as it may."""
        held = self._per_tenant.get(tenant, 0)
        if held >= self._max_per_tenant:
            raise TooManyStreams(
                f"this tenant has {held} live streams open on this gateway process, as many as "
                f"it may (TIERGATE_MAX_STREAMS_PER_TENANT); close one, or poll",
                retry_after=5,
            )
        self._per_tenant[tenant] = held + 1
        self.followers += 1
        sub = Subscription(tenant, self._queue_events, execution_id, function)
        if execution_id is not None:
            self._by_execution.setdefault(execution_id, set()).add(sub)
        if function is not None:
            self._by_function.setdefault(function, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.execution_id is not None:
            _discard(self._by_execution, sub.execution_id, sub)
        if sub.function is not None:
            _discard(self._by_function, sub.function, sub)
        self.followers -= 1
        left = self._per_tenant.get(sub.tenant, 1) - 1
        if left:
            self._per_tenant[sub.tenant] = left
        else:
            self._per_tenant.pop(sub.tenant, None)

    def close(self) -> None:
        """The gateway is stopping: every stream ends now rather than hold the shutdown up
        (its client reconnects, to another instance if it likes)."""
        for subs in (*self._by_execution.values(), *self._by_function.values()):
            for sub in subs:
                sub.closed = True
                sub.wake.set()

    # --- other processes' followers ----------------------------------------------------------

    def export_to(self, exporter: Exporter) -> None:
        """Bound once at start-up: where events of what ``export`` names go."""
        self._exporter = exporter

    def export(self, followed: Followed) -> None:
        """Another process follows ``followed``: its events go to the exporter from now on."""
        if followed not in self._exported:
            self._exported.add(followed)
            self.followers += 1

    def unexport(self, followed: Followed) -> None:
        if followed in self._exported:
            self._exported.discard(followed)
            self.followers -= 1

    def follows(self, execution_id: str, function: tuple[str, str] | None) -> bool:
        """Whether a subscriber of this process follows the execution or its function."""
        return execution_id in self._by_execution or (
            function is not None and function in self._by_function
        )

    def relayed(self, event: LiveEvent, function: tuple[str, str] | None) -> None:
        """An event another process forwarded: to this process's subscribers, as if it had
        happened here (followers drop what they have already)."""
        for sub in self._by_execution.get(event[1], ()):
            sub.relayed = True
        self._deliver(event, function)

    # --- events ------------------------------------------------------------------------------

    def saved(self, record: ExecutionRecord) -> None:
        """Every record saved in this process: followers see its status (they drop repeats)."""
        key = (record.tenant, record.function_id)
        self._send(("status", record.execution_id, (record.status, record)), key)

    def log(
        self, execution_id: str, function: tuple[str, str], index: int, entry: LogEntry
    ) -> None:
        self._send(("log", execution_id, (index, entry)), function)

    def attempt(self, execution_id: str, attempt: Attempt) -> None:
        self._send(("attempt", execution_id, attempt), None)

    def token(self, execution_id: str, tier: str, text: str) -> None:
        self._send(("token", execution_id, (tier, text)), None)

    def _send(self, event: LiveEvent, function: tuple[str, str] | None) -> None:
        self._deliver(event, function)
        exported = self._exported
        if exported and (event[1] in exported or (function is not None and function in exported)):
            assert self._exporter is not None
            self._exporter.push(event, function)

    def _deliver(self, event: LiveEvent, function: tuple[str, str] | None) -> None:
        subs = self._by_execution.get(event[1])
        if subs:
            for sub in subs:
                sub.push(event)
        if function is not None and self._by_function:
            for sub in self._by_function.get(function, ()):
                sub.push(event)


def _discard(index: dict[Any, set[Subscription]], key: Any, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]
