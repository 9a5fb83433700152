"""What follows an execution's end: its callback, its chains, the gateway's ``execution.*``
events and, for a graph node, its run's next step. ``Finisher`` hands every ending here
(``finished``), on the event loop, so an ending that nothing follows costs one look at the
function's composition and the tenant's triggers.
The rest runs in a task of its own; the work queue waits for it (``wait``) before it lets go of
a durable execution's job, so what follows a queued execution is queued before the job is done.

Callbacks are jobs of their own: delivered by whichever process takes them, retried with
exponential backoff for ``CALLBACK_RETRY_S``, their state on the execution
(``callback: {status, attempts, last_error}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from gateway.compose.dispatcher import Later
from gateway.compose.events import SNAPSHOT_S
from gateway.errors import REPORTED
from gateway.functions.composition import Composition
from gateway.invoke.callbacks import Callbacks
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.records import ExecutionRecords
from storage.errors import QueueFull
from storage.queue.base import Job, WorkQueue
from tiers.function import LoadedFunction

if TYPE_CHECKING:
    from gateway.compose.chains import Chains
    from gateway.compose.events import Events
    from gateway.compose.runs import GraphRuns

log = logging.getLogger("tiergate.followups")

CHAINED = frozenset({"completed", "failed", "timeout"})  # endings that chains follow
EVENTS = CHAINED | {"awaiting_human"}  # what the gateway's execution.* events report
GRAPH_NODE = EVENTS | {"cancelled"}  # what a graph run notes about its nodes

CALLBACK = "callback"
CALLBACK_RETRY_S = 330.0  # at least five minutes of retries
CALLBACK_MAX_DELAY_S = 60.0

Document = Callable[[ExecutionRecord], dict[str, Any]]


class Followups:
    def __init__(
        self,
        records: ExecutionRecords,
        queue: WorkQueue,
        callbacks: Callbacks,
        document: Document,
        load: Callable[[ExecutionRecord], Awaitable[LoadedFunction]],
        *,
        wake: Callable[[], None],
    ) -> None:
        self._records = records
        self._queue = queue
        self._callbacks = callbacks
        self._document = document
        self._load = load
        self._wake = wake
        self._chains: Chains | None = None
        self._events: Events | None = None
        self._runs: GraphRuns | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def bind(self, chains: Chains, events: Events, runs: GraphRuns) -> None:
        """Bound once by the app factory (each starts executions through the work queue, which
        hands their endings back here)."""
        self._chains, self._events, self._runs = chains, events, runs

    def finished(self, record: ExecutionRecord, fn: LoadedFunction | None) -> None:
        """Every ending (and every wait for a person) comes here, on the invoke path: decide
        with attribute reads alone."""
        ended = record.status in CHAINED
        chained = False
        if fn is not None and ended:
            composition = fn.extras.get("composition")
            chained = composition is not None and bool(composition.chains)
        event = None
        if record.status in EVENTS and self._events is not None:
            known = self._events.snapshots.get(record.tenant)
            if known is None or time.monotonic() - known[0] > SNAPSHOT_S:
                self._events.refresh_soon(record.tenant)
            if known is not None and f"execution.{record.status}" in known[1]:
                event = f"execution.{record.status}"
        called_back = bool(record.callback_url) and record.status != "awaiting_human"
        node = (
            record.cause is not None
            and record.cause.get("kind") == "graph"
            and record.status in GRAPH_NODE
        )
        if not (chained or event or called_back or node):
            return
        task = asyncio.get_running_loop().create_task(
            self._follow(record, fn, chained, event, called_back, node)
        )
        self._tasks[record.execution_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.execution_id, None))

    async def wait(self, execution_id: str) -> None:
        """Until what follows this execution's end is done (or queued)."""
        task = self._tasks.get(execution_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=5)

    async def follow_again(self, record: ExecutionRecord) -> None:
        """Follow up an ending whose process died before it had (a redelivered job)."""
        try:
            fn: LoadedFunction | None = await self._load(record)
        except REPORTED:
            fn = None  # the function is gone: its chains with it
        self.finished(record, fn)
        await self.wait(record.execution_id)

    async def _follow(
        self,
        record: ExecutionRecord,
        fn: LoadedFunction | None,
        chained: bool,
        event: str | None,
        called_back: bool,
        node: bool,
    ) -> None:
        try:
            if called_back:
                await self._queue_callback(record)
            if node and self._runs is not None:
                await self._runs.node_ended(record)
            if chained and self._chains is not None:
                fn = fn or await self._load(record)
                await self._chains.follow(record, _composition(fn))
            if event and self._events is not None:
                await self._events.follow(record)
            record.followed = record.status
            self._records.save(record)
        except Exception:
            log.exception("following up execution %s failed", record.execution_id)

    async def _queue_callback(self, record: ExecutionRecord) -> None:
        body = {
            "execution_id": record.execution_id,
            "url": record.callback_url,
            "document": self._document(record),
            "first_at": time.time(),
            "attempts": 0,
        }
        try:
            await self._queue.put(CALLBACK, orjson.dumps(body))
        except QueueFull as exc:
            record.callback = {"status": "failed", "attempts": 0, "last_error": exc.detail}
            log.warning("callback of %s not sent: %s", record.execution_id, exc.detail)
            return
        record.callback = {"status": "pending", "attempts": 0, "last_error": None}
        self._wake()

    async def deliver_callback(self, job: Job) -> Later | None:
        """Run one callback job: deliver it, or say when to try again (``None``: done)."""
        work = orjson.loads(job.body)
        error = await self._callbacks.deliver(work["url"], orjson.dumps(work["document"]))
        work["attempts"] += 1
        again = None
        if error is None:
            state = "delivered"
        elif time.time() - work["first_at"] < CALLBACK_RETRY_S:
            state = "retrying"
            again = time.time() + min(CALLBACK_MAX_DELAY_S, 2 ** (work["attempts"] - 1))
        else:
            state = "failed"
        await self._set_callback_state(
            work["execution_id"],
            {"status": state, "attempts": work["attempts"], "last_error": error},
        )
        return None if again is None else Later(again, orjson.dumps(work))

    async def _set_callback_state(self, execution_id: str, state: dict[str, Any]) -> None:
        record = await self._records.get(execution_id)
        if record is not None:
            record.callback = state
            self._records.save(record)


def _composition(fn: LoadedFunction) -> Composition | None:
    composition = fn.extras.get("composition")
    return composition if isinstance(composition, Composition) else None
