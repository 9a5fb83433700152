"""How records look on the wire: ISO-8601 times, the API's field names, nothing internal.

A root module, not part of ``http``: the invoker and the orphan sweeper send the same execution
document to callbacks, and key, secret and audit records carry the same times.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from plugins.runtime import LogEntry


@functools.lru_cache(maxsize=256)
def _second(whole: int) -> str:
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds; the date part is cached per second (hot path)."""
    if ts is None:
        return None
    whole = int(ts)
    return f"{_second(whole)}.{int((ts - whole) * 1000):03d}Z"


def render_logs(entries: Iterable[LogEntry]) -> list[dict[str, Any]]:
    """Entries as the API shows them (a flood of entries from one instant formats its time once:
    this runs on the event loop for up to thousands of entries per call)."""
    rendered = []
    last_ts, last_iso = None, None
    for ts, stream, message, level in entries:
        if ts != last_ts:
            last_ts, last_iso = ts, iso(ts)
        item: dict[str, Any] = {"ts": last_iso, "stream": stream, "message": message}
        if level:
            item["level"] = level
        rendered.append(item)
    return rendered


def execution_body(record: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
    """The API's execution document: ``POST /invoke`` 200 (``full=False``: the contract's fields
    only, on the hot path) and ``GET /executions/{id}`` (with input, trace id and times)."""
    body = {
        "execution_id": record["execution_id"],
        "function_id": record["function_id"],
        "version": record["version"],
        "status": record["status"],
        "tier": record["tier"],
        "output": record["output"],
        "attempts": record["attempts"],
        "logs": record["logs"],
        "metrics": {
            "duration_ms": record["duration_ms"],
            "queue_ms": record["queue_ms"],
            "cold_start": record["cold_start"],
            "cache_hit": record["cache_hit"],
        },
    }
    if record.get("error") is not None:
        body["error"] = record["error"]
    if record.get("details"):
        body["details"] = record["details"]
    if not full:
        return body
    for extra in ("trace_id", "input", "review", "task_id"):
        if record.get(extra) is not None:
            body[extra] = record[extra]
    body["started_at"] = iso(record["started_at"])
    body["ended_at"] = iso(record["ended_at"])
    return body


def log_entry_body(record: dict[str, Any]) -> dict[str, Any]:
    """One item of ``GET /functions/{id}/logs``."""
    return {
        "execution_id": record["execution_id"],
        "version": record["version"],
        "status": record["status"],
        "tier": record["tier"],
        "started_at": iso(record["started_at"]),
        "ended_at": iso(record["ended_at"]),
        "duration_ms": record["duration_ms"],
        "error": record.get("error"),
        "logs": record["logs"],
    }


def accepted_body(record: dict[str, Any]) -> dict[str, Any]:
    """The 202 answer for async calls and calls waiting for a human."""
    return {
        "execution_id": record["execution_id"],
        "status": record["status"],
        "status_url": f"/executions/{record['execution_id']}",
    }
