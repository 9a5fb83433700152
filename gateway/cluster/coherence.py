"""What events mean: changes every gateway process must act on, made here, told to the others.

A service calls one method (``function_changed``, ``aliases_changed``, ``key_revoked``,
``rate_changed``); this process drops what it cached at once, and the event transport
(``storage/events/``) carries the change to the other processes, where ``_meanings`` says what
each kind of event drops there (live streams' ``live.*`` events mean what ``relay.py`` says).
When the transport cannot publish, the change itself is stored already: the loader's version
check and the short key and rate-limit cache times bound how long another process can lag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.cluster.relay import LiveRelay
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import Invoker
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.security.auth import KeyStore
from gateway.security.ratelimit import RateLimiter
from storage.errors import StorageUnavailable
from storage.events.base import Event, EventTransport
from storage.executions.base import LIVE_STATUSES

log = logging.getLogger("tiergate.coherence")

CANCEL_WAIT_S = 2.0

Meaning = Callable[[Mapping[str, Any]], object]


class Coherence:
    def __init__(
        self,
        transport: EventTransport,
        loader: Loader,
        keys: KeyStore,
        ratelimit: RateLimiter,
        invoker: Invoker,
        records: ExecutionRecords,
        relay: LiveRelay,
    ) -> None:
        self._bus = transport
        self._loader = loader
        self._keys = keys
        self._ratelimit = ratelimit
        self._invoker = invoker
        self._records = records
        self._meanings: dict[str, Meaning] = {
            "function.changed": lambda e: loader.invalidate(e["tenant"], e["function_id"]),
            "function.aliases_changed": lambda e: loader.forget_pointers(
                e["tenant"], e["function_id"]
            ),
            "key.revoked": lambda e: keys.forget(e["key_id"]),
            "ratelimit.changed": lambda e: ratelimit.forget(e["tenant"]),
            "execution.cancel": lambda e: invoker.stop(e["execution_id"]),
            **relay.meanings(),
        }

    async def start(self) -> None:
        """Act, from now on, on what the other processes announce."""
        await self._bus.start(self._receive, self._forget_everything)

    async def close(self) -> None:
        await self._bus.close()

    async def function_changed(self, tenant: str, function_id: str) -> None:
        self._loader.invalidate(tenant, function_id)
        await self._tell("function.changed", tenant=tenant, function_id=function_id)

    async def aliases_changed(self, tenant: str, function_id: str) -> None:
        """An alias moved: its function's pointers are read again, its loaded versions stay."""
        self._loader.forget_pointers(tenant, function_id)
        await self._tell("function.aliases_changed", tenant=tenant, function_id=function_id)

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

    async def _receive(self, event: Event) -> None:
        meaning = self._meanings.get(event.kind)
        if meaning is not None:
            meaning(event.data)

    def _forget_everything(self) -> None:
        self._loader.invalidate_all()
        self._keys.forget()
        self._ratelimit.forget()
