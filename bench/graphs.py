"""``make bench``, dependency graphs: what a graph run costs over plain queued executions.

One ``tiergate serve`` (one process, embedded SQLite storage) serving the core-ABI wasm echo
(``examples/functions/echo.wat``), and two graphs of it:

- **chain**: ``CHAIN`` nodes, ``n0 → n1 → … → n99``, each given the previous node's output, so
  the critical path is every node. Per run: the wall time from the run's ``created_at`` to its
  ``ended_at``, less the sum of the nodes' own run times (``duration_ms`` of each node's
  execution, ``GET /executions/{id}``), divided by the nodes → **overhead per node**; split into
  the *step* (from the node before it ending, or the run starting, to this node's execution being
  accepted: ``started_at`` of its record) and the *queue* (accepted → ended, less its run time).
  Alternated with the **baseline**: ``CHAIN`` ``Prefer: respond-async`` invokes of the same
  function with the same input, one after another, each polled (``GET /executions/{id}``) until it
  ended before the next is sent; its overhead per execution is the same sum (first accepted →
  last ended, less the run times) over the executions, and its queue share the same.
- **wide**: ``WIDE`` independent nodes, ``TIERGATE_GRAPH_PARALLEL`` (8) at once → the run's wall
  time (``created_at`` → ``ended_at``) and nodes/s. Alternated with its baseline: ``WIDE``
  ``respond-async`` invokes sent by ``PARALLEL`` concurrent clients, timed until ``/metrics``
  counts the last one completed. Then, on a second server with ``TIERGATE_GRAPH_PARALLEL=64``,
  one more wide run.

CPU of the gateway process (every thread: the event loop and the SQLite thread), of its event-loop
thread alone and of its worker processes is read from ``/proc`` before and after each run (the
synchronous ``POST /graphs/{id}/runs``, which waits for the run to end) → µs per node. Prints a
table and writes ``bench/results/graphs.json``.

    python bench/graphs.py [--pairs 5] [--wide-runs 3] [--no-wide64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (
    EXAMPLES,
    ROOT,
    completed_calls,
    cpu_snapshot,
    cpu_spent,
    deploy,
    gateway_mains,
    save_result,
)

sys.path.insert(0, str(ROOT))
from plugins.testing import TiergateServer

CHAIN = 100
WIDE = 1000
PARALLEL = 8  # TIERGATE_GRAPH_PARALLEL's default: the wide baseline's concurrent clients
WIDE_PARALLEL = 64  # the comparison run
BODY = {"hello": "world", "n": [1, 2, 3]}
WAIT_MS = 600_000  # a run's synchronous wait (under TIERGATE_MAX_TIMEOUT_MS)
POLL_S = 0.001  # the baseline's pause between two polls of an execution
ASYNC = {"Prefer": "respond-async"}


# --- graphs -------------------------------------------------------------------------------------


def chain_graph() -> dict[str, Any]:
    nodes: dict[str, Any] = {"n0": {"function": "echo"}}
    for i in range(1, CHAIN):
        nodes[f"n{i}"] = {"function": "echo", "needs": [f"n{i - 1}"], "input": f"n{i - 1}"}
    return {"id": "chain", "nodes": nodes}


def wide_graph() -> dict[str, Any]:
    return {"id": "wide", "nodes": {f"w{i}": {"function": "echo"} for i in range(WIDE)}}


def _unix(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _cpu_us(before: Any, after: Any, count: int) -> dict[str, float]:
    main, workers, loop = cpu_spent(before, after)
    return {
        "process_us": main / count * 1e6,
        "loop_us": loop / count * 1e6,
        "workers_us": workers / count * 1e6,
    }


def _records(api: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    return [api.get(f"/executions/{execution_id}").json() for execution_id in ids]


def _queue_share(records: list[dict[str, Any]]) -> float:
    """Mean ms from an execution being accepted to its end, less its own run time."""
    return statistics.fmean(
        (_unix(r["ended_at"]) - _unix(r["started_at"])) * 1000 - r["metrics"]["duration_ms"]
        for r in records
    )


def run_graph(server: TiergateServer, api: httpx.Client, graph_id: str) -> dict[str, Any]:
    """One synchronous run of a graph; its times, CPU and (for its nodes) their records."""
    mains = gateway_mains(server)
    before = cpu_snapshot(mains)
    started = time.perf_counter()
    answer = api.post(
        f"/graphs/{graph_id}/runs",
        params={"timeout_ms": WAIT_MS},
        json=BODY,
        timeout=WAIT_MS / 1000 + 60,
    )
    client_s = time.perf_counter() - started
    after = cpu_snapshot(mains)
    try:
        body = answer.json()
    except ValueError:
        body = {"detail": answer.text[:2000]}
    nodes = body.get("nodes") or {}
    result: dict[str, Any] = {
        "http_status": answer.status_code,
        "status": body.get("status"),
        "error": body.get("error"),
        "client_s": client_s,
        "nodes": len(nodes),
    }
    if answer.status_code != 200 or body.get("status") != "completed":
        statuses: dict[str, int] = {}
        for node in nodes.values():
            statuses[node["status"]] = statuses.get(node["status"], 0) + 1
        result["node_statuses"] = statuses
        result["detail"] = body.get("detail")
        return result
    wall_ms = (_unix(body["ended_at"]) - _unix(body["created_at"])) * 1000
    records = _records(api, [node["execution_id"] for node in nodes.values()])
    run_ms = sum(r["metrics"]["duration_ms"] for r in records)
    result |= {
        "wall_ms": wall_ms,
        "sum_duration_ms": run_ms,
        "overhead_per_node_ms": (wall_ms - run_ms) / len(nodes),
        "queue_per_node_ms": _queue_share(records),
        **_cpu_us(before, after, len(nodes)),
    }
    if graph_id == "wide":
        result["nodes_per_s"] = len(nodes) / wall_ms * 1000
    if graph_id == "chain":
        # from the node before ending (the run starting, for n0) to this node being accepted
        ended = _unix(body["created_at"])
        steps = []
        for record in records:  # in the graph's order, the chain's
            steps.append((_unix(record["started_at"]) - ended) * 1000)
            ended = _unix(record["ended_at"])
        result["step_per_node_ms"] = statistics.fmean(steps)
        result["last_end_to_run_end_ms"] = (_unix(body["ended_at"]) - ended) * 1000
    return result


# --- baselines ----------------------------------------------------------------------------------


def sequential(server: TiergateServer, api: httpx.Client, calls: int) -> dict[str, Any]:
    """``calls`` async invokes one after another, each polled until it ended."""
    mains = gateway_mains(server)
    before = cpu_snapshot(mains)
    started = time.perf_counter()
    records, polls = [], 0
    for _ in range(calls):
        answer = api.post("/invoke/echo", json=BODY, headers=ASYNC)
        if answer.status_code != 202:
            raise RuntimeError(f"async invoke answered {answer.status_code}: {answer.text}")
        execution_id = answer.json()["execution_id"]
        while True:
            record = api.get(f"/executions/{execution_id}").json()
            polls += 1
            if record["ended_at"] is not None:
                break
            time.sleep(POLL_S)
        if record["status"] != "completed":
            raise RuntimeError(f"execution {execution_id} ended {record['status']}: {record}")
        records.append(record)
    client_s = time.perf_counter() - started
    after = cpu_snapshot(mains)
    wall_ms = (_unix(records[-1]["ended_at"]) - _unix(records[0]["started_at"])) * 1000
    run_ms = sum(r["metrics"]["duration_ms"] for r in records)
    return {
        "client_s": client_s,
        "wall_ms": wall_ms,
        "sum_duration_ms": run_ms,
        "overhead_per_node_ms": (wall_ms - run_ms) / calls,
        "queue_per_node_ms": _queue_share(records),
        "polls_per_execution": polls / calls,
        "last_execution_id": records[-1]["execution_id"],
        **_cpu_us(before, after, calls),
    }


async def _fire(server: TiergateServer, calls: int, clients: int) -> None:
    auth = {"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    body = json.dumps(BODY).encode()
    async with aiohttp.ClientSession(server.url, headers=auth, connector=connector) as client:
        todo = iter(range(calls))

        async def worker() -> None:
            for _ in todo:
                async with client.post("/invoke/echo", data=body, headers=ASYNC) as answer:
                    await answer.read()
                    if answer.status != 202:
                        raise RuntimeError(await answer.text())

        await asyncio.gather(*(worker() for _ in range(clients)))


def concurrent(server: TiergateServer, api: httpx.Client, calls: int) -> dict[str, Any]:
    """``calls`` async invokes by ``PARALLEL`` clients, timed until the last one completed."""
    mains = gateway_mains(server)
    done_before = completed_calls(api)
    before = cpu_snapshot(mains)
    started = time.perf_counter()
    asyncio.run(_fire(server, calls, PARALLEL))
    accepted_s = time.perf_counter() - started
    while completed_calls(api) < done_before + calls:
        time.sleep(0.02)
    wall_s = time.perf_counter() - started
    after = cpu_snapshot(mains)
    return {
        "accepted_s": accepted_s,
        "wall_ms": wall_s * 1000,
        "nodes_per_s": calls / wall_s,
        **_cpu_us(before, after, calls),
    }


def get_cost(server: TiergateServer, api: httpx.Client, execution_id: str) -> float:
    """CPU µs of the gateway per ``GET /executions/{id}`` (what one baseline poll costs)."""
    mains = gateway_mains(server)
    before = cpu_snapshot(mains)
    for _ in range(300):
        api.get(f"/executions/{execution_id}").raise_for_status()
    return _cpu_us(before, cpu_snapshot(mains), 300)["process_us"]


# --- the run ------------------------------------------------------------------------------------


def record_bytes(server: TiergateServer) -> dict[str, int]:
    """The largest run record of each graph, as stored (the KV's ``grun/`` keys), in bytes."""
    conn = sqlite3.connect(f"file:{server.data_dir / 'tiergate.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT length(value), value FROM kv WHERE key LIKE 'grun/%'")
        found: dict[str, int] = {}
        for size, value in rows:
            graph_id = json.loads(value)["graph_id"]
            found[graph_id] = max(found.get(graph_id, 0), size)
        return found
    finally:
        conn.close()


def start(workdir: Path, name: str, env: dict[str, str]) -> tuple[TiergateServer, httpx.Client]:
    server = TiergateServer(workdir / name, env).start()
    deploy(server, "echo", EXAMPLES / "echo.wat")  # and one synchronous call
    api = server.client()
    for graph in (chain_graph(), wide_graph()):
        api.post("/graphs", json=graph, timeout=120).raise_for_status()
    return server, api


def log_excerpt(server: TiergateServer) -> list[str]:
    """The server log's warnings and errors (the last 20)."""
    lines = [
        line
        for line in server.log().splitlines()
        if any(word in line for word in ("WARNING", "ERROR", "Traceback", "CRITICAL"))
    ]
    return lines[-20:]


def _say(label: str, result: dict[str, Any]) -> None:
    if "nodes_per_s" in result:
        extra = f"{result['nodes_per_s']:.0f} nodes/s  "
    elif "overhead_per_node_ms" in result:
        extra = f"overhead {result['overhead_per_node_ms']:.2f} ms/node  "
    else:
        extra = f"status {result.get('status')} {result.get('error') or result.get('detail')}  "
    wall = result.get("wall_ms")
    wall_text = f"{wall:9.0f} ms  " if wall is not None else ""
    cpu = result.get("process_us")
    cpu_text = f"CPU {cpu:.0f} us/node" if cpu is not None else ""
    print(f"  {label:24} {wall_text}{extra}{cpu_text}", flush=True)


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"chain": [], "chain_baseline": [], "wide": [], "wide_baseline": []}
    server, api = start(workdir, "parallel8", {})
    try:
        print(f"warm-up: one {CHAIN}-node chain run, {CHAIN} async invokes", flush=True)
        warm = run_graph(server, api, "chain")
        if warm["status"] != "completed":
            raise RuntimeError(f"the warm-up chain run did not complete: {warm}")
        sequential(server, api, CHAIN)
        print(f"chain of {CHAIN} nodes / {CHAIN} sequential async invokes, alternately", flush=True)
        for pair in range(args.pairs):
            chain = run_graph(server, api, "chain")
            baseline = sequential(server, api, CHAIN)
            result["chain"].append(chain)
            result["chain_baseline"].append(baseline)
            _say(f"pair {pair + 1}: chain", chain)
            _say(f"pair {pair + 1}: baseline", baseline)
        some_id = result["chain_baseline"][-1]["last_execution_id"]
        result["get_execution_cpu_us"] = get_cost(server, api, some_id)
        print(
            f"wide graph of {WIDE} nodes / {WIDE} async invokes by {PARALLEL} clients", flush=True
        )
        for pair in range(args.wide_runs):
            wide = run_graph(server, api, "wide")
            baseline = concurrent(server, api, WIDE)
            result["wide"].append(wide)
            result["wide_baseline"].append(baseline)
            _say(f"pair {pair + 1}: wide", wide)
            _say(f"pair {pair + 1}: baseline", baseline)
        result["run_record_bytes"] = record_bytes(server)
        result["log_parallel8"] = log_excerpt(server)
    finally:
        api.close()
        server.stop()
    if args.wide64:
        server, api = start(workdir, "parallel64", {"TIERGATE_GRAPH_PARALLEL": str(WIDE_PARALLEL)})
        try:
            print(
                f"wide graph, TIERGATE_GRAPH_PARALLEL={WIDE_PARALLEL} (a second server)", flush=True
            )
            run_graph(server, api, "chain")  # warm
            result["wide64"] = run_graph(server, api, "wide")
            _say("wide, parallel 64", result["wide64"])
            result["log_parallel64"] = log_excerpt(server)
        finally:
            api.close()
            server.stop()
    return result


def _stats(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float] | None:
    values = [run[key] for run in runs if key in run]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "wall_ms",
        "overhead_per_node_ms",
        "step_per_node_ms",
        "queue_per_node_ms",
        "nodes_per_s",
        "process_us",
        "loop_us",
        "workers_us",
        "polls_per_execution",
        "process_us_less_polls",
    )
    get_us = result.get("get_execution_cpu_us")
    if get_us is not None:
        for run in result["chain_baseline"]:
            run["process_us_less_polls"] = run["process_us"] - run["polls_per_execution"] * get_us
    summary: dict[str, Any] = {}
    for part in ("chain", "chain_baseline", "wide", "wide_baseline"):
        summary[part] = {
            key: stats for key in keys if (stats := _stats(result[part], key)) is not None
        }
        summary[part]["failed_runs"] = sum(
            1 for run in result[part] if run.get("status", "completed") != "completed"
        )
    return summary


def report(result: dict[str, Any]) -> None:
    summary = result["summary"] = summarise(result)

    def cell(part: str, key: str, digits: int = 2) -> str:
        found = summary[part].get(key)
        if found is None:
            return "-"
        p50, low, high = found
        return f"{p50:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"

    def print_rows(*rows: tuple[str, str, str, int]) -> None:
        for label, part, key, digits in rows:
            base = part + "_baseline"
            print(f"{label:34} {cell(part, key, digits):>28} {cell(base, key, digits):>28}")

    print("\ndependency graphs (wasm core echo, embedded SQLite), p50 (min-max) of the runs")
    print(f"{'':34} {'graph':>28} {'baseline':>28}")
    rows = (
        ("chain: overhead ms/node", "chain", "overhead_per_node_ms", 2),
        ("  step ms/node (end → accepted)", "chain", "step_per_node_ms", 2),
        ("  queue ms/node (accepted → end)", "chain", "queue_per_node_ms", 2),
        ("chain: wall ms (100 nodes)", "chain", "wall_ms", 0),
        ("chain: CPU process us/node", "chain", "process_us", 0),
        ("  baseline less its polls", "chain", "process_us_less_polls", 0),
        ("chain: CPU event loop us/node", "chain", "loop_us", 0),
        ("chain: CPU workers us/node", "chain", "workers_us", 0),
    )
    print_rows(*rows)
    polls = summary["chain_baseline"].get("polls_per_execution")
    if polls:
        print(
            f"  (baseline: {polls[0]:.1f} polls per execution; one GET /executions costs "
            f"{result.get('get_execution_cpu_us', float('nan')):.0f} us of CPU)"
        )
    print_rows(
        ("wide: wall ms (1000 nodes)", "wide", "wall_ms", 0),
        ("wide: nodes/s", "wide", "nodes_per_s", 0),
        ("wide: queue ms/node", "wide", "queue_per_node_ms", 2),
        ("wide: CPU process us/node", "wide", "process_us", 0),
        ("wide: CPU event loop us/node", "wide", "loop_us", 0),
        ("wide: CPU workers us/node", "wide", "workers_us", 0),
    )
    for part in ("chain", "wide"):
        if summary[part]["failed_runs"]:
            print(f"{part}: {summary[part]['failed_runs']} run(s) did not complete:")
            for run in result[part]:
                if run.get("status") != "completed":
                    print(f"  {run}")
    wide64 = result.get("wide64")
    if wide64 is not None:
        if wide64.get("status") == "completed":
            print(
                f"wide, TIERGATE_GRAPH_PARALLEL={WIDE_PARALLEL}: {wide64['wall_ms']:.0f} ms, "
                f"{wide64['nodes_per_s']:.0f} nodes/s, CPU {wide64['process_us']:.0f} us/node "
                f"(loop {wide64['loop_us']:.0f})"
            )
        else:
            print(f"wide, TIERGATE_GRAPH_PARALLEL={WIDE_PARALLEL} did not complete: {wide64}")
    print(f"largest run records: {result.get('run_record_bytes')} bytes")
    for key in ("log_parallel8", "log_parallel64"):
        if result.get(key):
            print(f"server log ({key}), warnings and errors:")
            for line in result[key]:
                print(f"  {line}")
    save_result("graphs.json", result)


def _commit() -> str:
    """The commit measured, ``+dirty`` when the gateway's files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "gateway", "storage") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="chain/baseline pairs (>= 5)")
    parser.add_argument("--wide-runs", type=int, default=3, help="wide/baseline pairs (>= 3)")
    parser.add_argument(
        "--no-wide64",
        dest="wide64",
        action="store_false",
        help=f"skip the wide run with TIERGATE_GRAPH_PARALLEL={WIDE_PARALLEL}",
    )
    args = parser.parse_args()
    if args.pairs < 3 or args.wide_runs < 3:
        parser.error("--pairs and --wide-runs are at least 3: one run says nothing here")
    started = time.monotonic()
    commit = _commit()  # what the servers below load
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    result["seconds"] = time.monotonic() - started
    result["commit"] = commit
    report(result)
    print(f"({result['seconds']:.0f} s, commit {result['commit']})")


if __name__ == "__main__":
    main()
