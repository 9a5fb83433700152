"""Whether the stores answer: for ``/readyz``, and once at start-up so that a wrong bucket name or
an unreachable Redis is in the log before the first request fails."""

from __future__ import annotations

import asyncio

from .errors import StorageUnavailable
from .services import Services

PING_TIMEOUT_S = 2.0


async def store_checks(svc: Services) -> dict[str, str]:
    """``ok`` per store, or what is wrong with it."""
    checks = {}
    for name, store in (("object_store", svc.objects), ("kv", svc.kv)):
        try:
            await asyncio.wait_for(store.ping(), PING_TIMEOUT_S)
            checks[name] = "ok"
        except (StorageUnavailable, TimeoutError) as exc:
            checks[name] = getattr(exc, "detail", None) or "no answer in time"
    return checks
