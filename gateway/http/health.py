"""Whether the stores answer and the runtimes can run code: for ``/readyz``, and once at start-up
so that a wrong bucket name or an unreachable Redis is in the log before the first request
fails."""

from __future__ import annotations

import asyncio

from gateway.services import Services
from plugins.errors import RuntimeUnavailable
from storage.errors import StorageUnavailable

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


def runtime_checks(svc: Services) -> dict[str, str]:
    """``ok`` per runtime, or why it cannot run code here (e.g. no sandbox can be made). A
    runtime that cannot run code does not make the gateway unready: the others still serve."""
    checks = {}
    for name in svc.runtimes.active():
        try:
            svc.runtimes.get(name)
            checks[name] = "ok"
        except RuntimeUnavailable as exc:
            checks[name] = f"unavailable: {exc.detail}"
    return checks
