"""One Redis connection pool per URL (and event loop), shared by the KV, the execution store and
the event channel of a process; Redis errors become ``StorageUnavailable`` here and nowhere else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis import exceptions as redis_errors

from storage.errors import StorageUnavailable

T = TypeVar("T")
NAMESPACE = "tiergate:"

_pools: dict[tuple[str, int], tuple[aioredis.Redis, int]] = {}


def _slot(url: str) -> tuple[str, int]:
    return url, id(asyncio.get_running_loop())


def connect(url: str) -> aioredis.Redis:
    slot = _slot(url)
    client, users = _pools.get(slot, (None, 0))
    if client is None:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=10,
            retry_on_timeout=True,
        )
    _pools[slot] = (client, users + 1)
    return client


def subscriber(url: str) -> aioredis.Redis:
    """A client of its own for a subscription, which waits on its socket with no timeout."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=3, health_check_interval=10)


async def release(url: str) -> None:
    slot = _slot(url)
    client, users = _pools.get(slot, (None, 0))
    if client is None:
        return
    if users <= 1:
        del _pools[slot]
        await client.aclose()
    else:
        _pools[slot] = (client, users - 1)


async def guarded(call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    try:
        return await call(*args, **kwargs)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StorageUnavailable(f"redis: {exc}") from None
    except redis_errors.RedisError as exc:
        raise StorageUnavailable(f"redis: {type(exc).__name__}: {exc}") from None
