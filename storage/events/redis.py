"""Redis pub/sub beside the event log: other instances hear of an event within milliseconds.

Best effort by design: a message published while a subscriber reconnects is lost to it, and the
log (``log.py``) delivers it at the next poll instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..redis_client import connect, guarded, release, subscriber
from ..tasks import stop

log = logging.getLogger("tiergate.events")

CHANNEL = "tiergate:events"
RETRY_S = 1.0


class RedisEventChannel:
    """An ``EventChannel`` on the Redis server behind the KV."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self, deliver: Callable[[bytes], Awaitable[None]]) -> None:
        self._client = connect(self._url)
        self._listener = asyncio.create_task(self._listen(deliver))

    async def publish(self, raw: bytes) -> None:
        await guarded(self._client.publish, CHANNEL, raw)

    async def close(self) -> None:
        if self._listener is not None:
            await stop(self._listener)
            self._listener = None
        if self._client is not None:
            self._client = None
            await release(self._url)

    async def _listen(self, deliver: Callable[[bytes], Awaitable[None]]) -> None:
        while True:
            client = subscriber(self._url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await deliver(message["data"])
            except Exception as exc:  # the log catches up meanwhile
                log.warning("events: subscription lost (%s); retrying", exc)
                await asyncio.sleep(RETRY_S)
            finally:
                await client.aclose()
