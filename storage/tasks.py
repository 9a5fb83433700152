"""Stopping a background task (a poll loop, a subscription) for good.

One ``cancel`` is not always enough: a client library may catch the ``CancelledError`` raised
inside one of its calls and return as if nothing happened (seen with redis-py: a poll loop went
on to its next sleep and ``close`` waited for it forever). So the cancel is repeated until the
task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

RETRY_S = 0.1


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` until it has ended; what it ended with is not the caller's concern."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_S)
    if not task.cancelled():
        task.exception()  # retrieved: a failure on the way out is no one's answer
