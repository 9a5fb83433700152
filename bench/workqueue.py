"""``make bench``, asynchronous work: the durable work queue, embedded (SQLite) and on Redis.

For each store, three rounds, each alternating the baseline with the queue on the same gateway
and the same function (the core-ABI wasm echo):

- **throughput**: ``ASYNC_CALLS`` ``Prefer: respond-async`` invokes sent by ``CLIENTS`` concurrent
  clients → accepted/s (the last 202 back), completed/s (the last execution ended, read from
  ``/metrics``); the baseline is the same number of synchronous invokes by as many clients
  (answered/s);
- **trigger-to-start**: ``EVENTS`` events sent one after another, each starting one execution
  through a trigger → the time from sending the event to the execution starting to run (its
  ``ended_at`` less its ``duration_ms``), p50/p99; the baseline is a synchronous invoke's whole
  round trip, p50/p99.

    python bench/workqueue.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import EXAMPLES, ROOT, completed_calls

sys.path.insert(0, str(ROOT))
from plugins.testing import TiergateServer, free_port

ASYNC_CALLS = 1000
CLIENTS = 32
EVENTS = 200
BODY = b'{"hello":"world","n":[1,2,3]}'


async def _fire(server: TiergateServer, headers: dict[str, str], calls: int) -> float:
    """``calls`` POSTs by ``CLIENTS`` clients (aiohttp's client: httpx's pool slows down past a
    few concurrent connections here); seconds until the last answer."""
    auth = {"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(server.url, headers=auth, connector=connector) as client:
        queue = iter(range(calls))

        async def worker() -> None:
            for _ in queue:
                async with client.post("/invoke/echo", data=BODY, headers=headers) as answer:
                    await answer.read()
                    if answer.status >= 300 and answer.status != 202:
                        raise RuntimeError(await answer.text())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return time.perf_counter() - started


def throughput(server: TiergateServer) -> dict[str, float]:
    with server.client() as api:
        sync_s = asyncio.run(_fire(server, {}, ASYNC_CALLS))
        before = completed_calls(api)
        started = time.perf_counter()
        accept_s = asyncio.run(_fire(server, {"Prefer": "respond-async"}, ASYNC_CALLS))
        while completed_calls(api) < before + ASYNC_CALLS:
            time.sleep(0.02)
        done_s = time.perf_counter() - started
    return {
        "sync_per_s": ASYNC_CALLS / sync_s,
        "accepted_per_s": ASYNC_CALLS / accept_s,
        "completed_per_s": ASYNC_CALLS / done_s,
    }


def trigger_latency(server: TiergateServer) -> dict[str, float]:
    to_start, round_trip = [], []
    with server.client() as api:
        for _ in range(EVENTS):
            sent = time.time()
            api.post("/invoke/echo", content=BODY)
            round_trip.append((time.time() - sent) * 1000)
        ids = []
        for _ in range(EVENTS):
            sent = time.time()
            answer = api.post("/events", json={"type": "bench.tick", "data": {"n": 1}})
            ids.append((sent, answer.json()["started"][0]))
            time.sleep(0.01)
        for sent, execution_id in ids:
            while (record := api.get(f"/executions/{execution_id}").json())["ended_at"] is None:
                time.sleep(0.02)
            ended = _unix(record["ended_at"])
            to_start.append((ended - record["metrics"]["duration_ms"] / 1000 - sent) * 1000)
    return {
        "trigger_p50_ms": _pct(to_start, 50),
        "trigger_p99_ms": _pct(to_start, 99),
        "sync_p50_ms": _pct(round_trip, 50),
        "sync_p99_ms": _pct(round_trip, 99),
    }


def _unix(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(len(ordered) * pct / 100))]


def _deploy(server: TiergateServer) -> None:
    with server.client() as api:
        code = (EXAMPLES / "echo.wat").read_text()
        answer = api.post(
            "/deploy",
            json={
                "id": "echo",
                "runtime": "wasm",
                "code": code,
                "triggers": [{"event": "bench.tick"}],
            },
        )
        answer.raise_for_status()


def _redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (make test installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def measure(name: str, env: dict[str, str], workdir: Path, rounds: int) -> dict[str, float]:
    server = TiergateServer(workdir / name, env).start()
    try:
        _deploy(server)
        asyncio.run(_fire(server, {}, 200))  # warm
        runs = [{**throughput(server), **trigger_latency(server)} for _ in range(rounds)]
    finally:
        server.stop()
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis, url = _redis(workdir)
        try:
            results = {
                "embedded (SQLite)": measure("embedded", {}, workdir, args.rounds),
                "Redis Streams": measure(
                    "redis",
                    {"TIERGATE_KV": url, "TIERGATE_SECRET_KEY": "bench"},
                    workdir,
                    args.rounds,
                ),
            }
        finally:
            redis.terminate()
            redis.wait()
    print(f"\nasync work through the queue (wasm core echo, {CLIENTS} clients), median of rounds")
    print(
        f"{'store':20} {'sync/s':>8} {'accepted/s':>10} {'x sync':>7} {'completed/s':>11} "
        f"{'x sync':>7} {'trigger p50':>11} {'p99':>7} {'sync p50':>9} {'p99':>7}"
    )
    for name, r in results.items():
        print(
            f"{name:20} {r['sync_per_s']:8.0f} {r['accepted_per_s']:10.0f} "
            f"{r['accepted_per_s'] / r['sync_per_s']:7.2f} {r['completed_per_s']:11.0f} "
            f"{r['completed_per_s'] / r['sync_per_s']:7.2f} {r['trigger_p50_ms']:9.1f}ms "
            f"{r['trigger_p99_ms']:5.1f}ms {r['sync_p50_ms']:7.1f}ms {r['sync_p99_ms']:5.1f}ms"
        )


if __name__ == "__main__":
    main()
