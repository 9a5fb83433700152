"""Times as the API writes them: ISO-8601, UTC, milliseconds. A leaf module, so records, views
and services below ``http`` format times the same way."""

from __future__ import annotations

import functools
from datetime import UTC, datetime


@functools.lru_cache(maxsize=256)
def _second(whole: int) -> str:
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with milliseconds; the date part is cached per second (hot path)."""
    if ts is None:
        return None
    whole = int(ts)
    return f"{_second(whole)}.{int((ts - whole) * 1000):03d}Z"
