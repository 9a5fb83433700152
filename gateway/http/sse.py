"""Server-Sent Events: ``EventStream`` writes them, ``ExecutionFollower`` and
``FunctionFollower`` decide what to write (``GET /executions/{id}/events``,
``GET /functions/{id}/logs?follow=true``).

What a stream sees comes two ways. Live, from the ``LiveHub`` of this process: every status
change, log entry, attempt and token the moment it happens when the execution runs here, and a
moment later when another process runs it and forwards them (``gateway.cluster.relay``). And
from the execution record, read every ``poll_s`` seconds, which is how every stream gets the
end; the log entries it did not get live come from the record, just before the end. Log entries
carry their index in the execution's ``logs``, so none is sent twice, whichever way it came.
Every event has an ``id:`` (its number in this stream); a comment line (``: ping``) goes every
``heartbeat_s`` seconds, so proxies and clients see a quiet stream is alive, and one says so when
the process running an execution stopped forwarding its events (``: dropped …``).

Bounds: a subscriber's queue holds at most ``TIERGATE_STREAM_QUEUE_EVENTS`` events (a reader
that falls that far behind gets a last ``error`` event, code ``slow_reader``, and the stream
closes); a write the client does not take within ``WRITE_TIMEOUT_S`` closes the stream; the
socket's send buffer is kept small, so what waits for a slow reader stays in the queue, where it
is counted. A stream's connection closes with it. When the gateway stops, every stream ends.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.http.views import execution_body, log_entry_body
from gateway.ids import process_tag
from gateway.invoke.execution import ExecutionRecord, LogLine, log_lines
from gateway.invoke.live import ENDED, LiveEvent, LiveHub, Subscription
from gateway.invoke.records import ExecutionRecords
from plugins.runtime import LogEntry
from storage.errors import StorageUnavailable

WRITE_TIMEOUT_S = 30.0
SEND_BUFFER_BYTES = 64 * 1024
SEEN_EXECUTIONS = 1024
FORWARD_GRACE_S = 1.5
POLL_PAGE = 20


class StreamClosed(Exception):
    """The client went away, or did not read in time: nothing more can be sent."""


class EventStream:
    """One ``text/event-stream`` response."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events on as they come
                "X-Tiergate-Process": process_tag(),  # which process serves it
            }
        )
        self._last_id = 0

    async def open(self) -> None:
        transport = self._request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:  # a slow reader's backlog waits in the counted queue, not the kernel
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        # The connection ends with the stream: its small send buffer is no good for other answers.
        self._response.force_close()
        await self._response.prepare(self._request)

    async def send(self, event: str, data: Any) -> None:
        self._last_id += 1
        await self._write(
            b"id: %d\nevent: %s\ndata: %s\n\n" % (self._last_id, event.encode(), orjson.dumps(data))
        )

    async def close(self) -> None:
        """End the stream (and its connection)."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._response.write_eof()

    async def comment(self, text: str) -> None:
        """A comment line: clients skip it; people reading the stream see it."""
        await self._write(b": %s\n\n" % text.encode())

    async def _write(self, chunk: bytes) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await self._response.write(chunk)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            raise StreamClosed(str(exc)) from None

    @property
    def response(self) -> web.StreamResponse:
        return self._response


@dataclass
class Pace:
    """When a follower polls the record and sends a heartbeat."""

    poll_s: float
    heartbeat_s: float

    def __post_init__(self) -> None:
        now = time.monotonic()
        self.next_poll = now + self.poll_s
        self.next_ping = now + self.heartbeat_s

    def wait_s(self) -> float:
        return max(0.0, min(self.next_poll, self.next_ping) - time.monotonic())

    def poll_due(self) -> bool:
        if time.monotonic() < self.next_poll:
            return False
        self.next_poll = time.monotonic() + self.poll_s
        return True

    def ping_due(self) -> bool:
        if time.monotonic() < self.next_ping:
            return False
        self.next_ping = time.monotonic() + self.heartbeat_s
        return True

    def poll_now(self) -> None:
        """The next round reads the record (another process said the execution ended)."""
        self.next_poll = time.monotonic()

    def sent(self) -> None:
        """Anything written resets the heartbeat: it is only for quiet streams."""
        self.next_ping = time.monotonic() + self.heartbeat_s


def log_event(execution_id: str, line: LogLine | LogEntry) -> dict[str, Any]:
    if isinstance(line, LogEntry):
        line = log_lines([line])[0]
    return {"execution_id": execution_id, **line}


class Follower(abc.ABC):
    """Writes one subscription's events to one stream: ``begin``, then live events as they
    come and the record's state as polled, until one of them says the stream is done, the
    reader falls behind, or the client goes away."""

    def __init__(
        self, stream: EventStream, sub: Subscription, records: ExecutionRecords, pace: Pace
    ) -> None:
        self.stream = stream
        self.sub = sub
        self.records = records
        self.pace = pace

    async def run(self) -> None:
        if await self.begin():
            return
        while True:
            for event in self.sub.drain():
                if event[0] == "dropped":
                    await self._dropped(event[1])
                elif await self.live(event):
                    return
            if self.sub.overflowed:
                await self.send("error", _slow_reader(self.sub.limit))
                return
            if self.sub.closed:
                return
            if self.pace.poll_due() and await self._polled():
                return
            if self.pace.ping_due():
                await self.stream.comment("ping")
            await self.sub.wait(self.pace.wait_s())

    async def _polled(self) -> bool:
        try:
            return await self.poll()
        except StorageUnavailable:
            return False  # the next poll tries again; live events still come meanwhile

    async def _dropped(self, execution_id: str) -> None:
        await self.stream.comment(
            f"dropped: the process running execution {execution_id} forwards no more of its "
            "log entries and tokens (its bounds); its entries come from its record at its end"
        )
        self.pace.sent()

    @abc.abstractmethod
    async def begin(self) -> bool:
        """What the stream starts with; True when that is all."""

    @abc.abstractmethod
    async def live(self, event: LiveEvent) -> bool:
        """Send one live event; True when the stream is done."""

    @abc.abstractmethod
    async def poll(self) -> bool:
        """Look at the records for what happened elsewhere; True when the stream is done."""

    async def send(self, event: str, data: Any) -> None:
        await self.stream.send(event, data)
        self.pace.sent()


class ExecutionFollower(Follower):
    """One execution's events until its end (``GET /executions/{id}/events``). ``backlog``:
    the entries it kept before the stream opened, when it runs in this process."""

    def __init__(
        self,
        stream: EventStream,
        sub: Subscription,
        records: ExecutionRecords,
        pace: Pace,
        record: ExecutionRecord,
        backlog: list[LogEntry] | None,
    ) -> None:
        super().__init__(stream, sub, records, pace)
        self._record = record
        self._backlog = backlog or []
        self._status: str | None = None
        self._logs_sent = 0
        self._forwarded_end = False
        self._end_read: float | None = None

    async def begin(self) -> bool:
        record = await self.records.get(self._record.execution_id) or self._record
        if await self._status_changed(record.status, record):
            return True
        for entry in self._backlog:
            await self._log(record.execution_id, entry)
        return False

    async def live(self, event: LiveEvent) -> bool:
        kind, execution_id, payload = event
        if kind == "status":
            status, record = payload
            if record is not None:
                return await self._status_changed(status, record)
            if status in ENDED:  # said by another process: the end comes from the record
                self._forwarded_end = True
                self.pace.poll_now()
                return False
            return await self._status_changed(status, self._record)
        if kind == "log":
            index, entry = payload
            if index == self._logs_sent:  # before: sent already; past: after a gap, at the end
                await self._log(execution_id, entry)
        elif kind == "attempt":
            await self.send("attempt", {"execution_id": execution_id, **payload.as_json()})
        else:
            tier, text = payload
            await self.send("token", {"execution_id": execution_id, "tier": tier, "text": text})
        return False

    async def poll(self) -> bool:
        record = await self.records.get(self._record.execution_id)
        if record is None:
            return False
        if record.status in ENDED and self._last_batch_due():
            return False
        return await self._status_changed(record.status, record)

    def _last_batch_due(self) -> bool:
        """Whether to wait a little before the end: another process forwards this execution's
        events, and the batch with its last ones (tokens, say) may still be on its way when
        the record says it ended; at most ``FORWARD_GRACE_S``, in case that batch was lost."""
        if not self.sub.relayed or self._forwarded_end:
            return False
        now = time.monotonic()
        if self._end_read is None:
            self._end_read = now
            self.pace.next_poll = now + FORWARD_GRACE_S
        return now < self._end_read + FORWARD_GRACE_S

    async def _status_changed(self, status: str, record: ExecutionRecord) -> bool:
        """A ``status`` event when ``status`` is new; at an ending, the entries of the record
        not sent yet (it ran elsewhere, or the caps' summary), then the ``end``. True once the
        end is sent."""
        if status != self._status:
            self._status = status
            await self.send("status", {"execution_id": record.execution_id, "status": status})
        if status not in ENDED:
            return False
        for line in record.logs[self._logs_sent :]:
            await self._log(record.execution_id, line)
        await self.send("end", execution_body(record))
        return True

    async def _log(self, execution_id: str, line: LogLine | LogEntry) -> None:
        self._logs_sent += 1
        await self.send("log", log_event(execution_id, line))


class FunctionFollower(Follower):
    """The log entries and endings of one function's executions as they happen, until the
    client goes away (``GET /functions/{id}/logs?follow=true``): ``log`` for each entry,
    ``execution`` (the logs endpoint's item, without its ``logs``) for each ending. Executions
    run by another process show their entries and ending once their record says they ended."""

    def __init__(
        self,
        stream: EventStream,
        sub: Subscription,
        records: ExecutionRecords,
        pace: Pace,
        function: tuple[str, str],
        logs_so_far: Callable[[str], list[LogEntry] | None],
    ) -> None:
        """``logs_so_far(execution_id)``: what an execution running here kept until now."""
        super().__init__(stream, sub, records, pace)
        self._function = function
        self._logs_so_far = logs_so_far
        self._opened = time.time()
        self._logs_sent: OrderedDict[str, int] = OrderedDict()  # execution id -> entries sent
        self._ended: OrderedDict[str, int] = OrderedDict()

    async def begin(self) -> bool:
        return False

    async def live(self, event: LiveEvent) -> bool:
        kind, execution_id, payload = event
        if execution_id in self._ended:  # forwarded late, after its record said it ended
            return False
        if kind == "log":
            index, entry = payload
            if execution_id not in self._logs_sent:  # first seen: what it wrote before, first
                _remember(self._logs_sent, execution_id, 0)
                for line in await self._before(execution_id, index):
                    await self._log(execution_id, line)
            if index == self._logs_sent.get(execution_id, 0):  # else sent, or at the end (a gap)
                await self._log(execution_id, entry)
        elif kind == "status" and payload[0] in ENDED:
            if payload[1] is None:  # said by another process: its record has the ending
                self.pace.poll_now()
            else:
                await self._ending(payload[1])
        return False

    async def poll(self) -> bool:
        """Endings recorded by other processes since the stream opened, oldest first."""
        tenant, function_id = self._function
        page = await self.records.list_for_function(
            tenant, function_id, limit=POLL_PAGE, before=None
        )
        for event in self.sub.drain():  # what ran here first: its entries count as sent
            await self.live(event)
        for record in reversed(page):
            ended_at = record.ended_at
            if ended_at is not None and ended_at >= self._opened and record.status in ENDED:
                await self._ending(record)
        return False

    async def _before(self, execution_id: str, index: int) -> list[LogEntry] | list[LogLine]:
        """The first ``index`` entries of an execution that ran before the stream opened (from
        it while it runs, from its record once it has ended), so that the stream has all of
        them, in order, and its count of what it sent matches the record's ``logs``."""
        if not index:
            return []
        kept = self._logs_so_far(execution_id)
        if kept is not None:
            return kept[:index]
        record = await self.records.get(execution_id)
        return [] if record is None else record.logs[:index]

    async def _log(self, execution_id: str, entry: LogEntry | LogLine) -> None:
        _remember(self._logs_sent, execution_id, self._logs_sent.get(execution_id, 0) + 1)
        await self.send("log", log_event(execution_id, entry))

    async def _ending(self, record: ExecutionRecord) -> None:
        if record.execution_id in self._ended:
            return
        _remember(self._ended, record.execution_id, 0)
        sent = self._logs_sent.pop(record.execution_id, 0)
        for line in record.logs[sent:]:
            await self.send("log", log_event(record.execution_id, line))
        body = log_entry_body(record)
        del body["logs"]
        await self.send("execution", body)


def _slow_reader(limit: int) -> dict[str, Any]:
    return {
        "code": "slow_reader",
        "detail": f"the stream was read too slowly: {limit} events waited unread "
        "(TIERGATE_STREAM_QUEUE_EVENTS); read the rest from the record, or open it again",
    }


def _remember(seen: OrderedDict[str, int], key: str, value: int) -> None:
    """Keep ``key`` among the last ``SEEN_EXECUTIONS`` (a follow stream may last for days)."""
    seen[key] = value
    seen.move_to_end(key)
    while len(seen) > SEEN_EXECUTIONS:
        seen.popitem(last=False)


async def serve(hub: LiveHub, follower: Follower) -> web.StreamResponse:
    """Open the follower's stream and run it until it is done or the client goes away; its
    subscription is given back whatever happens."""
    try:
        await follower.stream.open()
        await follower.run()
        await follower.stream.close()
    except StreamClosed:
        pass
    finally:
        hub.unsubscribe(follower.sub)
    return follower.stream.response
