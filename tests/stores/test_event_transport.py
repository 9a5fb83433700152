"""The event transport contract (``storage/events``), on the embedded KV (the log, polled) and on
Redis (the log, plus pub/sub): another process hears each event once; its publisher never does."""

from __future__ import annotations

import asyncio

import pytest
from conftest import run

from storage.events.log import KVEventLog
from storage.events.redis import RedisEventChannel

POLL_S = 0.05  # the log's poll, quick for the test


class Process:
    """One gateway process's side: a KV client of its own and the transport over it."""

    def __init__(self, redis_url, make_kv, origin):
        self.kv = make_kv()
        channel = RedisEventChannel(redis_url) if redis_url else None
        self.events = KVEventLog(self.kv, origin, channel=channel, poll_s=POLL_S)
        self.heard = []

    async def start(self):
        async def receive(event):
            self.heard.append((event.kind, dict(event.data), event.origin))

        await self.events.start(receive, on_gap=lambda: None)
        return self

    async def close(self):
        await self.events.close()
        await self.kv.close()


@pytest.fixture(params=["sqlite", "redis"])
def process(request):
    """Processes sharing one KV, as gateways sharing it do."""
    redis_url = None if request.param == "sqlite" else request.getfixturevalue("redis_server")
    make_kv = request.getfixturevalue(f"{request.param}_kv")
    return lambda origin: Process(redis_url, make_kv, origin)


async def _heard_once(process):
    """What ``process`` heard, once a few polls more have passed (anything twice would show)."""
    deadline = asyncio.get_running_loop().time() + 5
    while not process.heard:
        assert asyncio.get_running_loop().time() < deadline, "no event arrived in time"
        await asyncio.sleep(0.01)
    await asyncio.sleep(POLL_S * 4)
    return process.heard


def test_an_event_reaches_the_other_process_once_and_not_its_publisher(process):
    async def scenario():
        a, b = await process("a").start(), await process("b").start()
        await a.events.publish("function.changed", tenant="t", function_id="f")
        changed = ("function.changed", {"tenant": "t", "function_id": "f"}, "a")
        assert await _heard_once(b) == [changed]
        assert a.heard == []
        await a.close()
        await b.close()

    run(scenario())


def test_events_from_before_a_process_started_are_not_for_it(process):
    async def scenario():
        a = await process("a").start()
        await a.events.publish("key.revoked", key_id="k1")
        late = await process("late").start()
        await a.events.publish("key.revoked", key_id="k2")
        assert await _heard_once(late) == [("key.revoked", {"key_id": "k2"}, "a")]
        await a.close()
        await late.close()

    run(scenario())


def test_a_fleeting_event_is_heard_and_leaves_the_log_soon(process):
    """Live streams' batches: on Redis the channel alone carries them; on the embedded KV the
    log does, for their own few seconds rather than the log's two minutes."""

    async def scenario():
        a, b = await process("a").start(), await process("b").start()
        batch = {"items": [["log", "x", None, 1]]}
        for _ in range(50):  # until b's subscription to the channel is up (the log has none)
            await a.events.publish_fleeting("live.batch", 0.3, **batch)
            await asyncio.sleep(POLL_S * 2)
            if b.heard:
                break
        await asyncio.sleep(POLL_S * 4)
        assert b.heard and all(heard == ("live.batch", batch, "a") for heard in b.heard)
        assert a.heard == []
        await asyncio.sleep(0.3)
        await b.events.catch_up()
        assert [key async for key, _ in a.kv.scan("event/")] == []
        await a.close()
        await b.close()

    run(scenario())
