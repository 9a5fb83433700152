"""Schedules: a function version's ``schedules`` (a cron expression in a time zone, or
``every_s``) start its latest version, as queued executions with cause ``schedule``.

One firing per tick across every instance that shares the KV: each schedule's last fired tick
is kept at ``sched/<tenant>/<function>/<index>``, and a firing first moves it forward with a
compare-and-set, so of several instances looking at once exactly one wins the tick. The first
time a schedule is seen it starts counting from the latest tick, without firing for the past;
after a restart (or an outage) the latest tick missed fires once, so nothing is lost across a
stop shorter than the period, and a long one does not fire a backlog.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.compose.versions import LatestCompositions
from gateway.errors import REPORTED
from gateway.functions.composition import Schedule
from gateway.functions.registry import FunctionRef
from gateway.invoke.invoker import InvokeOptions
from gateway.periodic import Periodic
from storage.kv.base import KV

if TYPE_CHECKING:
    from gateway.compose.durable import DurableExecutions

log = logging.getLogger("tiergate.schedules")

TICK_S = 1.0
FUNCTIONS_S = 2.0  # how long a listing of every function's schedules is used (a new
# schedule starts within this)


@dataclass(frozen=True, slots=True)
class _Armed:
    tenant: str
    function_id: str
    index: int
    schedule: Schedule

    @property
    def key(self) -> str:
        return f"sched/{self.tenant}/{self.function_id}/{self.index}"

    @property
    def spec(self) -> str:
        """What its ticks depend on: a redeploy that changes it starts counting anew."""
        return self.schedule.key


class Scheduler:
    def __init__(self, latest: LatestCompositions, kv: KV, durable: DurableExecutions) -> None:
        self._latest = latest
        self._kv = kv
        self._durable = durable
        self._background = Periodic("schedules")
        self._armed: list[_Armed] = []
        self._listed_at = 0.0

    def start(self) -> None:
        self._background.every(TICK_S, self.tick, now=True)

    async def close(self) -> None:
        await self._background.close()

    async def tick(self) -> None:
        now = time.time()
        for armed in await self._schedules():
            await self._fire_if_due(armed, now)

    async def _fire_if_due(self, armed: _Armed, now: float) -> None:
        raw = await self._kv.get(armed.key)
        held = orjson.loads(raw) if raw is not None else None
        if held is None or held.get("spec") != armed.spec:
            latest = armed.schedule.last_at_or_before(now)
            await self._kv.compare_and_set(armed.key, raw, _state(armed, latest))
            return
        tick = armed.schedule.next_after(held["tick"])
        if tick > now:
            return
        tick = armed.schedule.last_at_or_before(now)
        if not await self._kv.compare_and_set(armed.key, raw, _state(armed, tick)):
            return  # another instance fired this tick
        try:
            await self._durable.accept(
                armed.tenant,
                FunctionRef(armed.function_id),
                orjson.dumps(armed.schedule.input),
                InvokeOptions(),
                cause={"kind": "schedule", "schedule": armed.index, "tick": tick},
            )
        except REPORTED as exc:
            log.warning(
                "schedule %d of %s/%s could not start it: %s",
                armed.index,
                armed.tenant,
                armed.function_id,
                exc.detail,
            )

    async def _schedules(self) -> list[_Armed]:
        if time.monotonic() - self._listed_at < FUNCTIONS_S:
            return self._armed
        armed = [
            _Armed(tenant, function_id, index, schedule)
            for tenant, function_id, _, composition in await self._latest.of(None)
            for index, schedule in enumerate(composition.schedules)
        ]
        self._armed, self._listed_at = armed, time.monotonic()
        return armed


def _state(armed: _Armed, tick: float) -> bytes:
    state: dict[str, Any] = {"tick": tick, "spec": armed.spec}
    return orjson.dumps(state)
