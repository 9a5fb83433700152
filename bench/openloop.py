"""An open-loop load generator (wrk2's idea): requests are *scheduled* at a fixed rate, and each
latency is measured from the moment the request was due to go out — including any wait for a free
connection — so a server that stalls is charged for every request that should have gone out
meanwhile (no coordinated omission, which hides tails when a closed-loop client simply waits).
The one thing not charged is this client's own timer step (the event loop wakes in whole
milliseconds): a request's clock starts when its timer fires.

    python bench/openloop.py URL --rate 2000 --seconds 10 [--connections 32] [--key KEY]

Prints one JSON line: ``{"rate", "sent", "answered", "errors", "p50_ms", "p99_ms", "p999_ms"}``.
HTTP/1.1 keep-alive over raw asyncio connections (uvloop), one request in flight per connection;
a request whose connection is busy waits in the client, and that wait counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

BODY = b'{"hello":"world","n":[1,2,3]}'


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[bool] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        if b"content-length:" in head:
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        if len(self.buffer) < end + 4 + length:
            return
        ok = head.startswith(b"http/1.1 2")
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(ok)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(False)


async def run(url: str, rate: float, seconds: float, connections: int, key: str) -> dict:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        _, protocol = await loop.create_connection(Connection, parts.hostname, parts.port)
        idle.put_nowait(protocol)
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.1  # the loop's clock has millisecond steps under uvloop

    async def one() -> None:
        nonlocal errors
        due = time.perf_counter()
        connection = await idle.get()
        connection.waiter = loop.create_future()
        assert connection.transport is not None
        connection.transport.write(request)
        ok = await connection.waiter
        latencies.append(time.perf_counter() - due)
        errors += not ok
        idle.put_nowait(connection)

    tasks = []
    for number in range(total):
        scheduled = start + number / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "rate": rate,
        "sent": total,
        "answered": len(latencies),
        "errors": errors,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(run(args.url, args.rate, args.seconds, args.connections, args.key))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
