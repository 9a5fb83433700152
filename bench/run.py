"""``make bench``: tiergate against a bare aiohttp + orjson echo, in one run on one machine.

For each case the bare handler and the gateway are measured **alternately** (``--pairs``, at
least 3), so slow spells of a noisy machine fall on both; figures are ratios to the bare handler
of the same pairs (the median ratio), beside **CPU µs per request** read from ``/proc`` (the
gateway process, its event-loop thread, and its worker processes apart), which is steadier than
req/s here.

- closed loop: ``wrk -t1 -c64`` POSTing a small JSON body → req/s, and CPU per request;
- unloaded: ``wrk -t1 -c1`` → p50;
- open loop at a fixed rate, half the gateway's capacity (``openloop.py``, latency from the
  scheduled send time, wrk2-style) → p50 / p99 / p99.9 for both;
- the Python echo runs its pairs one after another (a pool that wedges after a burst fails the
  next run), then ``serve --workers auto`` (one process per core) against the bare handler in
  as many processes;
- cold starts after a restart.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.settings import cores  # noqa: E402
from plugins.testing import TiergateServer, free_port  # noqa: E402

EXAMPLES = ROOT / "examples" / "functions"
LUA = Path(__file__).with_name("post.lua")
BODY = {"hello": "world", "n": [1, 2, 3]}
TICK = os.sysconf("SC_CLK_TCK")
CASES = (
    ("wasm core echo", "echo", EXAMPLES / "echo.wat"),
    ("wasm WASI echo, .wat", "wasi-echo", EXAMPLES / "wasi-echo.wat"),
    ("wasm WASI echo, C", "c-echo", EXAMPLES / "c" / "echo.wasm"),
    ("python echo", "py-echo", EXAMPLES / "py-echo.py"),
)


@dataclass
class Load:
    """One closed-loop run against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    main_us: float  # CPU of the serving process(es) per request, every thread
    workers_us: float  # CPU of their worker processes per request
    loop_us: float  # CPU of the serving process(es)' main thread (the event loop) per request


@dataclass
class Case:
    name: str
    bare: list[Load] = field(default_factory=list)
    gateway: list[Load] = field(default_factory=list)
    unloaded_p50_ms: dict[str, float] = field(default_factory=dict)
    open_loop: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return statistics.median(
            g.rps / b.rps for b, g in zip(self.bare, self.gateway, strict=True)
        )


@dataclass
class Target:
    """A running server: its URL, key, and the pids whose CPU counts as 'main'."""

    url: str
    key: str
    mains: list[int]


# --- CPU from /proc ---------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found.setdefault(parent, []).append(int(entry.name))
    return found


def _cpu(stat: str) -> float:
    try:
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


# pid -> (whether it is a main pid, CPU seconds of the process, of its main thread)
Snapshot = dict[int, tuple[bool, float, float]]


def cpu_snapshot(mains: list[int]) -> Snapshot:
    """CPU seconds of the main pids (and of their event-loop threads) and of every process below
    them (workers)."""
    tree = _children()
    seen: Snapshot = {
        pid: (True, _cpu(f"/proc/{pid}/stat"), _cpu(f"/proc/{pid}/task/{pid}/stat"))
        for pid in mains
    }
    todo = list(mains)
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in seen:
                seen[child] = (False, _cpu(f"/proc/{child}/stat"), 0.0)
                todo.append(child)
    return seen


def cpu_spent(before: Snapshot, after: Snapshot) -> tuple[float, float, float]:
    """CPU seconds spent between two snapshots: by the main pids, by their workers, and by the
    main pids' event-loop threads."""
    main = workers = loop = 0.0
    for pid, (is_main, seconds, loop_seconds) in after.items():
        _, seconds_before, loop_before = before.get(pid, (is_main, 0.0, 0.0))
        if is_main:
            main += seconds - seconds_before
            loop += loop_seconds - loop_before
        else:
            workers += seconds - seconds_before
    return main, workers, loop


# --- load ---------------------------------------------------------------------------------------


def wrk(target: Target, seconds: int, connections: int = 64) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(LUA),
            target.url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_KEY": target.key},
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors from {target.url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, _latency(out, "50%"), _latency(out, "99%"), total


def _latency(out: str, pct: str) -> float:
    value, unit = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def closed_loop(target: Target, seconds: int) -> Load:
    before = cpu_snapshot(target.mains)
    rps, p50, p99, total = wrk(target, seconds)
    main, workers, loop = cpu_spent(before, cpu_snapshot(target.mains))
    return Load(rps, p50, p99, main / total * 1e6, workers / total * 1e6, loop / total * 1e6)


def open_loop(target: Target, rate: float, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("openloop.py")),
            target.url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--key",
            target.key,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    if result["errors"]:
        raise RuntimeError(f"errors from {target.url}: {result}")
    return result


# --- servers ------------------------------------------------------------------------------------


def _wait(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


@contextmanager
def bare_server(processes: int = 1) -> Iterator[Target]:
    port = free_port()
    script = str(Path(__file__).with_name("bare.py"))
    procs = [
        subprocess.Popen([sys.executable, script, str(port), "--uvloop"]) for _ in range(processes)
    ]
    try:
        _wait(f"http://127.0.0.1:{port}/healthz")
        yield Target(f"http://127.0.0.1:{port}/echo", "", [p.pid for p in procs])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


@contextmanager
def gateway_server(data_dir: Path, args: tuple[str, ...] = ()) -> Iterator[TiergateServer]:
    server = TiergateServer(data_dir, args=args).start()
    try:
        yield server
    finally:
        server.stop()


def deploy(server: TiergateServer, fn: str, path: Path) -> None:
    runtime = "python" if path.suffix == ".py" else "wasm"
    with server.client() as api:
        r = api.post(
            "/deploy",
            files={
                "manifest": (None, json.dumps({"id": fn, "runtime": runtime})),
                "code": (path.name, path.read_bytes()),
            },
        )
        r.raise_for_status()
        assert api.post(f"/invoke/{fn}", json=BODY).json()["output"] == BODY


def all_serving(server: TiergateServer) -> None:
    """Wait for the banner, which ``serve --workers N`` prints once all N processes serve."""
    deadline = time.monotonic() + 60
    while "tiergate serving on" not in server.log():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not all start:\n{server.log()}")
        time.sleep(0.1)


def gateway_mains(server: TiergateServer) -> list[int]:
    """The serving processes: ``serve`` itself, or its ``--workers`` children (started with
    multiprocessing's spawn; the resource tracker is not one)."""
    assert server.process is not None
    pid = server.process.pid
    children = [
        c
        for c in _children().get(pid, [])
        if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]
    return children or [pid]


# --- the run ------------------------------------------------------------------------------------


def measure_case(name: str, bare: Target, gateway: Target, args: argparse.Namespace) -> Case:
    case = Case(name)
    wrk(bare, 1)
    wrk(gateway, 1)  # warm both
    for _ in range(args.pairs):
        case.bare.append(closed_loop(bare, args.seconds))
        case.gateway.append(closed_loop(gateway, args.seconds))
    for label, target in (("bare", bare), ("gateway", gateway)):
        case.unloaded_p50_ms[label] = wrk(target, args.seconds, connections=1)[1]
    rate = round(statistics.median(g.rps for g in case.gateway) / 2)
    for _ in range(args.pairs):
        for label, target in (("bare", bare), ("gateway", gateway)):
            result = open_loop(target, rate, args.seconds)
            case.open_loop.setdefault(
                label, {"rate": rate, "p50_ms": [], "p99_ms": [], "p999_ms": []}
            )
            for key in ("p50_ms", "p99_ms", "p999_ms"):
                case.open_loop[label][key].append(result[key])
    for runs in case.open_loop.values():
        for key in ("p50_ms", "p99_ms", "p999_ms"):
            runs[key] = statistics.median(runs[key])
    print(summary_line(case), flush=True)
    return case


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


def run(args: argparse.Namespace) -> dict:
    cases = []
    with tempfile.TemporaryDirectory() as tmp, bare_server() as bare:
        with gateway_server(Path(tmp) / "one") as server:
            mains = gateway_mains(server)
            for name, fn, path in CASES:
                deploy(server, fn, path)
                target = Target(f"{server.url}/invoke/{fn}", server.admin_key, mains)
                cases.append(measure_case(f"{name}, 1 process", bare, target, args))
            cold = cold_starts(server, args.cold_repeats)
        processes = cores()  # what serve --workers auto runs
        with (
            bare_server(processes) as many,
            gateway_server(Path(tmp) / "many", ("--workers", "auto")) as server,
        ):
            all_serving(server)
            deploy(server, "echo", EXAMPLES / "echo.wat")
            target = Target(f"{server.url}/invoke/echo", server.admin_key, gateway_mains(server))
            cases.append(
                measure_case(f"wasm core echo, --workers auto ({processes})", many, target, args)
            )
    return {"cases": [asdict(c) | {"ratio": c.ratio} for c in cases], "cold_start_extra_ms": cold}


def summary_line(case: Case) -> str:
    g = case.gateway
    return (
        f"{case.name:38} {statistics.median(x.rps for x in g):7.0f} req/s  "
        f"{case.ratio:4.2f}x bare  process {statistics.median(x.main_us for x in g):5.0f} us/req  "
        f"loop thread {statistics.median(x.loop_us for x in g):5.0f}  "
        f"workers {statistics.median(x.workers_us for x in g):5.0f} us/req  "
        f"(bare {statistics.median(x.main_us for x in case.bare):4.0f} us/req)"
    )


def report(result: dict) -> None:
    print("\nclosed loop (wrk -c64), median of the pairs; CPU per request from /proc")
    print(
        f"{'case':40} {'gw req/s':>9} {'bare':>7} {'x bare':>6} {'pairs (x bare)':>22} "
        f"{'proc us':>8} {'loop us':>8} {'workers us':>10} {'bare us':>8}"
    )
    for c in result["cases"]:
        gw, bare = c["gateway"], c["bare"]
        pairs = " ".join(f"{g['rps'] / b['rps']:.2f}" for b, g in zip(bare, gw, strict=True))
        print(
            f"{c['name']:40} {statistics.median(x['rps'] for x in gw):9.0f} "
            f"{statistics.median(x['rps'] for x in bare):7.0f} {c['ratio']:6.2f} {pairs:>22} "
            f"{statistics.median(x['main_us'] for x in gw):8.0f} "
            f"{statistics.median(x['loop_us'] for x in gw):8.0f} "
            f"{statistics.median(x['workers_us'] for x in gw):10.0f} "
            f"{statistics.median(x['main_us'] for x in bare):8.0f}"
        )
    print("\nlatency: unloaded (wrk -c1) p50; open loop at half the gateway's capacity")
    print(
        f"{'case':40} {'c=1 gw':>7} {'bare':>6} {'rate':>6} {'p50':>6} {'p99':>7} "
        f"{'p99.9':>7} {'bare p99':>8} {'p99 x bare':>10}"
    )
    for c in result["cases"]:
        o, ob = c["open_loop"]["gateway"], c["open_loop"]["bare"]
        print(
            f"{c['name']:40} {c['unloaded_p50_ms']['gateway']:7.2f} "
            f"{c['unloaded_p50_ms']['bare']:6.2f} {o['rate']:6.0f} {o['p50_ms']:6.2f} "
            f"{o['p99_ms']:7.2f} {o['p999_ms']:7.2f} {ob['p99_ms']:8.2f} "
            f"{o['p99_ms'] / ob['p99_ms']:10.2f}"
        )
    print("\ncold start (first call after a restart, minus a warm call), median:")
    for label, ms in result["cold_start_extra_ms"].items():
        print(f"  {label:24} +{ms:.2f} ms")
    save_result("latest.json", result)


def save_result(name: str, result: dict[str, object]) -> None:
    """Under ``bench/results/`` (not committed)."""
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(result, indent=2))


def completed_calls(api: httpx.Client, function: str = "echo") -> float:
    """How many calls of ``function`` ended ``completed``, from ``/metrics``."""
    for line in api.get("/metrics").text.splitlines():
        if (
            line.startswith("tiergate_invocations_total{")
            and f'function="{function}"' in line
            and 'status="completed"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each run")
    parser.add_argument("--pairs", type=int, default=3, help="bare/gateway pairs per case (>= 3)")
    parser.add_argument("--cold-repeats", type=int, default=5)
    args = parser.parse_args()
    if args.pairs < 3:
        parser.error("--pairs must be at least 3: one pair says nothing on a noisy machine")
    report(run(args))


if __name__ == "__main__":
    main()
