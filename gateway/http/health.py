"""Whether the stores answer and the runtimes can run code: for ``/readyz`` (and ``/runtimes``),
and once at start-up so that a wrong bucket name or an unreachable Redis is in the log before the
first request fails."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.services import Services
from plugins.manager import RuntimeState
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
    return {
        state.name: "ok" if state.ready else state.label()
        for state in svc.runtimes.states()
        if state.declared
    }


def runtime_document(state: RuntimeState) -> dict[str, Any]:
    """One runtime as ``GET /runtimes`` shows it; ``reason`` only when it is not ready."""
    document: dict[str, Any] = {
        "name": state.name,
        "description": state.description,
        "suffixes": list(state.suffixes),
        "status": state.status,
        "ready": state.ready,
    }
    if state.reason:
        document["reason"] = state.reason
    return document
