"""An async Python function: waits `seconds` (default 0.1) without blocking its worker's loop."""

import asyncio


async def handler(event, context):
    seconds = float((event or {}).get("seconds", 0.1))
    await asyncio.sleep(seconds)
    return {"slept": seconds}
