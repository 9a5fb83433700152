"""Events and their triggers. ``POST /events`` and the gateway's own ``execution.*`` events (an
execution ended — ``execution.completed``, ``execution.failed``, ``execution.timeout`` — or waits
for a person, ``execution.awaiting_human``; data: the execution document) start,
as queued executions with cause ``event``, the latest version of each of the tenant's functions
with a trigger on that type whose ``when`` holds over ``{type, id, data, time}``.

Which triggers a tenant has is read from its functions' latest versions: at every ``POST
/events`` (so a trigger deployed a moment ago on any instance takes part), and for the
``execution.*`` events from a snapshot at most ``SNAPSHOT_S`` old, so an ending checks one
dictionary on the event loop.
An event caused by an execution is one link deeper than it; past ``MAX_DEPTH`` it starts
nothing (a function triggered by its own endings stops there) and the execution records why.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.compose.chains import MAX_DEPTH
from gateway.compose.idempotency import IdempotencyKeys
from gateway.compose.versions import LatestCompositions
from gateway.errors import REPORTED, BadRequest
from gateway.expressions import ExpressionError
from gateway.functions.composition import Trigger
from gateway.functions.registry import FunctionRef
from gateway.ids import new_id
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import InvokeOptions
from storage.errors import StorageUnavailable

if TYPE_CHECKING:
    from gateway.compose.durable import DurableExecutions
    from gateway.compose.followups import Document

log = logging.getLogger("tiergate.events")

EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
SNAPSHOT_S = 1.0


def check_event_type(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_TYPE.match(value):
        raise BadRequest(
            f"type: {value!r} is not an event type: use 1-128 lowercase letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class _Armed:
    """One trigger of one function's latest version."""

    function_id: str
    version: int
    trigger: Trigger


class Events:
    def __init__(
        self,
        latest: LatestCompositions,
        idempotency: IdempotencyKeys,
        durable: DurableExecutions,
        document: Document,
    ) -> None:
        self._latest = latest
        self._idempotency = idempotency
        self._durable = durable
        self._document = document
        # per tenant: when its triggers were read, and them by event type
        self.snapshots: dict[str, tuple[float, dict[str, list[_Armed]]]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def publish(
        self,
        tenant: str,
        kind: str,
        data: Any,
        *,
        idempotency_key: str | None = None,
        depth: int = 0,
        cause: ExecutionRecord | None = None,
    ) -> dict[str, Any]:
        """Start what the event triggers; ``{"event_id", "started"}`` (a repeated idempotency
        key answers with the first event's)."""
        event_id = new_id()
        if idempotency_key is not None:
            first = await self._idempotency.claim(
                tenant, "event", idempotency_key, {"event_id": event_id, "started": []}
            )
            if first is not None:
                return first
        event = {"type": kind, "id": event_id, "data": data, "time": time.time()}
        armed = (await self._refresh(tenant)).get(kind, [])
        started = []
        for item in armed:
            execution_id = await self._start(tenant, item, event, depth, cause)
            if execution_id is not None:
                started.append(execution_id)
        published = {"event_id": event_id, "started": started}
        if idempotency_key is not None:
            await self._idempotency.settle(tenant, "event", idempotency_key, published)
        return published

    # --- the gateway's execution.* events ------------------------------------------------------

    async def follow(self, record: ExecutionRecord) -> None:
        """Publish the ending (or the wait for a person) as ``execution.<status>``
        (``Followups`` saw a trigger on it); what it started goes into ``children``."""
        if record.depth + 1 > MAX_DEPTH:
            record.follow_errors.append(
                {
                    "event": f"execution.{record.status}",
                    "code": "chain_too_deep",
                    "detail": f"events stop starting executions {MAX_DEPTH} links deep",
                }
            )
            return
        await self.publish(
            record.tenant,
            f"execution.{record.status}",
            self._document(record),
            depth=record.depth + 1,
            cause=record,
        )

    # --- triggers ---------------------------------------------------------------------------

    async def _start(
        self,
        tenant: str,
        item: _Armed,
        event: dict[str, Any],
        depth: int,
        cause: ExecutionRecord | None,
    ) -> str | None:
        trigger = item.trigger
        try:
            if trigger.when is not None and not trigger.when.matches(event):
                return None
            body = orjson.dumps(trigger.input.apply(event, event["data"]))
        except ExpressionError as exc:
            log.warning("trigger of %s on %s: %s", item.function_id, event["type"], exc)
            return None
        reason: dict[str, Any] = {"kind": "event", "event_id": event["id"]}
        if cause is not None:
            reason["execution_id"] = cause.execution_id
        try:
            record = await self._durable.accept(
                tenant,
                FunctionRef(item.function_id, item.version),
                body,
                InvokeOptions(
                    trace_id=cause.trace_id if cause is not None else None,
                    traceparent=cause.traceparent if cause is not None else None,
                ),
                cause=reason,
                depth=depth,
            )
        except REPORTED as exc:
            log.warning(
                "event %s could not start %s: %s", event["id"], item.function_id, exc.detail
            )
            return None
        if cause is not None:
            cause.children.append(record.execution_id)
        return record.execution_id

    def refresh_soon(self, tenant: str) -> None:
        if tenant not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh_quietly(tenant))
            self._refreshing[tenant] = task
            task.add_done_callback(lambda _: self._refreshing.pop(tenant, None))

    async def _refresh_quietly(self, tenant: str) -> None:
        try:
            await self._refresh(tenant)
        except StorageUnavailable as exc:
            log.warning("triggers of tenant %s: %s", tenant, exc.detail)

    async def _refresh(self, tenant: str) -> dict[str, list[_Armed]]:
        """The tenant's triggers by event type, read from its functions' latest versions."""
        by_type: dict[str, list[_Armed]] = {}
        for _, function_id, version, composition in await self._latest.of(tenant):
            for trigger in composition.triggers:
                by_type.setdefault(trigger.event, []).append(_Armed(function_id, version, trigger))
        self.snapshots[tenant] = (time.monotonic(), by_type)
        return by_type
