"""Changes that every gateway process must act on: made here, then told to the others.

A route calls one method; this process drops what it cached at once and the event bus carries
the change to the other processes, whose handlers (registered here too) do the same. When the
bus cannot publish, the change itself is stored already: the loader's version check and the short
key and rate-limit cache times bound how long another process can lag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from gateway.cluster.events import EventBus
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import Invoker
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.security.auth import KeyStore
from gateway.security.ratelimit import RateLimiter
from storage.errors import StorageUnavailable
from storage.executions.base import LIVE_STATUSES

log = logging.getLogger("tiergate.coherence")

CANCEL_WAIT_S = 2.0


class Coherence:
    def __init__(
        self,
        bus: EventBus,
        loader: Loader,
        keys: KeyStore,
        ratelimit: RateLimiter,
        invoker: Invoker,
        records: ExecutionRecords,
    ) -> None:
        self._bus = bus
        self._loader = loader
        self._keys = keys
        self._ratelimit = ratelimit
        self._invoker = invoker
        self._records = records
        bus.on("function.changed", lambda e: loader.invalidate(e["tenant"], e["function_id"]))
        bus.on("key.revoked", lambda e: keys.forget(e["key_id"]))
        bus.on("ratelimit.changed", lambda e: ratelimit.forget(e["tenant"]))
        bus.on("execution.cancel", lambda e: invoker.stop(e["execution_id"]))
        bus.on_gap(self._forget_everything)

    async def function_changed(self, tenant: str, function_id: str) -> None:
        self._loader.invalidate(tenant, function_id)
        await self._tell("function.changed", tenant=tenant, function_id=function_id)

    async def key_revoked(self, key_id: str) -> None:
        self._keys.forget(key_id)
        await self._tell("key.revoked", key_id=key_id)

    async def rate_changed(self, tenant: str) -> None:
        self._ratelimit.forget(tenant)
        await self._tell("ratelimit.changed", tenant=tenant)

    async def cancel_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Cancel an execution wherever it runs; its record afterwards (or as it was, if the
        process running it did not answer within ``CANCEL_WAIT_S``)."""
        if not await self._invoker.cancel(execution_id):
            record = await self._records.get(execution_id)
            if record is None or record.status not in LIVE_STATUSES:
                return record  # finished, or waiting for a person: nothing runs to stop
            await self._bus.publish("execution.cancel", execution_id=execution_id)
            deadline = time.monotonic() + CANCEL_WAIT_S
            while time.monotonic() < deadline:
                record = await self._records.get(execution_id)
                if record is None or record.status not in LIVE_STATUSES:
                    return record
                await asyncio.sleep(0.05)
        return await self._records.get(execution_id)

    async def _tell(self, kind: str, **payload: Any) -> None:
        try:
            await self._bus.publish(kind, **payload)
        except StorageUnavailable as exc:
            log.warning("could not tell other processes of %s %s: %s", kind, payload, exc.detail)

    def _forget_everything(self) -> None:
        self._loader.invalidate_all()
        self._keys.forget()
        self._ratelimit.forget()
