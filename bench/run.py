"""``make bench``: throughput and latency of tiergate against a bare aiohttp handler, one run,
one machine. Every figure is reported as a ratio to the bare handler measured in the same run.

Load: ``wrk -t1 -c64 -d<seconds>s --latency`` POSTing a small JSON body, servers on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.testing import TiergateServer, free_port  # noqa: E402

EXAMPLES = ROOT / "examples" / "functions"
LUA = Path(__file__).with_name("post.lua")
BODY = {"hello": "world", "n": [1, 2, 3]}


@dataclass
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float = 0.0
    p99_ratio: float = 0.0


def wrk(url: str, seconds: int, key: str = "") -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_KEY": key},
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, _latency(out, "50%"), _latency(out, "99%")


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bare(seconds: int, uvloop: bool) -> Row:
    port = free_port()
    args = [sys.executable, str(Path(__file__).with_name("bare.py")), str(port)]
    proc = subprocess.Popen(args + (["--uvloop"] if uvloop else []))
    try:
        _wait(f"http://127.0.0.1:{port}/healthz")
        wrk(f"http://127.0.0.1:{port}/echo", 2)  # warm-up
        return Row(
            "bare aiohttp" + (" + uvloop" if uvloop else ""),
            *wrk(f"http://127.0.0.1:{port}/echo", seconds),
        )
    finally:
        proc.terminate()
        proc.wait()


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


def deploy(server: TiergateServer, fn: str, path: Path) -> None:
    runtime = "python" if path.suffix == ".py" else "wasm"
    with server.client() as api:
        manifest = {"id": fn, "runtime": runtime}
        r = api.post(
            "/deploy",
            files={
                "manifest": (None, json.dumps(manifest)),
                "code": (path.name, path.read_bytes()),
            },
        )
        r.raise_for_status()
        assert api.post(f"/invoke/{fn}", json=BODY).json()["output"] == BODY


def gateway_rows(server: TiergateServer, seconds: int) -> list[Row]:
    cases = [
        ("tiergate wasm core echo (warm)", "echo", EXAMPLES / "echo.wat"),
        ("tiergate wasm WASI echo, .wat (warm)", "wasi-echo", EXAMPLES / "wasi-echo.wat"),
        ("tiergate wasm WASI echo, C (warm)", "c-echo", EXAMPLES / "c" / "echo.wasm"),
        ("tiergate python echo (warm)", "py-echo", EXAMPLES / "py-echo.py"),
    ]
    rows = []
    for name, fn, path in cases:
        deploy(server, fn, path)
        url = f"{server.url}/invoke/{fn}"
        wrk(url, 2, server.admin_key)
        rows.append(Row(name, *wrk(url, seconds, server.admin_key)))
    return rows


def workers_row(data_dir: Path, seconds: int, workers: int) -> Row:
    """The core echo again, served by ``serve --workers N`` (one port, N processes)."""
    server = TiergateServer(data_dir, args=("--workers", str(workers))).start()
    try:
        deadline = time.monotonic() + 60
        while f"{workers} workers)" not in server.log():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not all start:\n{server.log()}")
            time.sleep(0.1)
        deploy(server, "echo", EXAMPLES / "echo.wat")
        url = f"{server.url}/invoke/echo"
        wrk(url, 2, server.admin_key)
        return Row(f"tiergate wasm core echo, --workers {workers}", *wrk(url, seconds,
                                                                          server.admin_key))
    finally:
        server.stop()


def cold_starts(server: TiergateServer, repeats: int) -> dict[str, float]:
    """Median extra latency of the first call after a restart, with and without the artifact."""
    results = {}
    for label, drop_artifact in (("precompiled artifact", False), ("compile from source", True)):
        extra = []
        for _ in range(repeats):
            server.stop()
            if drop_artifact:
                for path in (server.data_dir / "objects").rglob("artifact"):
                    shutil.rmtree(path)
            server.start()
            with server.client() as api:
                api.get("/healthz")  # the connection is open before the clock starts
                first = _timed(api)
                warm = statistics.median(_timed(api) for _ in range(20))
            extra.append(first - warm)
        results[label] = statistics.median(extra)
    return results


def _timed(api: httpx.Client) -> float:
    started = time.perf_counter()
    r = api.post("/invoke/echo", json=BODY)
    elapsed = (time.perf_counter() - started) * 1000
    r.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--cold-repeats", type=int, default=5)
    parser.add_argument("--cold-only", action="store_true", help="only measure cold starts")
    args = parser.parse_args()
    if args.cold_only:
        with tempfile.TemporaryDirectory() as tmp:
            server = TiergateServer(Path(tmp) / "data").start()
            try:
                deploy(server, "echo", EXAMPLES / "echo.wat")
                cold = cold_starts(server, args.cold_repeats)
            finally:
                server.stop()
        print(cold)
        return
    rows = [bare(args.seconds, False), bare(args.seconds, True)]
    with tempfile.TemporaryDirectory() as tmp:
        server = TiergateServer(Path(tmp) / "data").start()
        try:
            rows += gateway_rows(server, args.seconds)
            cold = cold_starts(server, args.cold_repeats)
        finally:
            server.stop()
        rows.append(workers_row(Path(tmp) / "workers", args.seconds, 2))
    report(rows, cold)


def report(rows: list[Row], cold: dict[str, float]) -> None:
    base = rows[0]
    for row in rows:
        row.ratio = row.rps / base.rps
        row.p99_ratio = row.p99_ms / base.p99_ms
    header = ("case", "req/s", "p50 ms", "p99 ms", "x bare", "p99 x bare")
    print("\n{:44} {:>9} {:>8} {:>8} {:>7} {:>10}".format(*header))
    for r in rows:
        cells = (r.name, r.rps, r.p50_ms, r.p99_ms, r.ratio, r.p99_ratio)
        print("{:44} {:9.0f} {:8.2f} {:8.2f} {:7.2f} {:10.2f}".format(*cells))
    print("\ncold start (first call after a restart, minus a warm call), median:")
    for label, ms in cold.items():
        print(f"  {label:24} +{ms:.2f} ms")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "cold_start_extra_ms": cold}, indent=2)
    )


if __name__ == "__main__":
    main()
