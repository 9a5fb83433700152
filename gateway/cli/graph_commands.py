"""Client commands for dependency graphs: ``graph deploy|list|show|delete`` and runs,
``graph run|watch|status|cancel``. A run is always started asynchronously and then followed by
polling, one line per node as it ends, so the run id is known (and printed) first."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson

from gateway.cli.client import Client, ClientError
from gateway.cli.commands import (
    client_for,
    connection_options,
    input_data,
    json_option,
    pretty_json,
    read_file,
    render_table,
    short_time,
)

POLL_S = 0.2
RUN_FINAL = frozenset({"completed", "failed", "cancelled"})
NODE_SHOWN = frozenset({"completed", "failed", "skipped", "reused", "awaiting_human"})
STATUS_WIDTH = len("completed")


@click.group()
def graph() -> None:
    """Dependency graphs: deploy them, run them, follow their runs (docs/graphs.md)."""


# ---- definitions ---------------------------------------------------------------------------


@graph.command("deploy")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@json_option
@connection_options
def deploy_graph(path: Path, as_json: bool, url: str | None, key: str | None) -> None:
    """Deploy the graph document in FILE (JSON) as the graph's next version."""
    try:
        document = orjson.loads(read_file(path))
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"error: {path} is not valid JSON: {exc}") from None
    result = client_for(url, key).call("POST", "/graphs", json=document)
    if as_json:
        click.echo(pretty_json(result))
        return
    nodes = result.get("nodes") or []
    click.echo(
        f"deployed graph {result['id']} version {result['version']} "
        f"({len(nodes)} node{'' if len(nodes) == 1 else 's'}: {', '.join(nodes)})"
    )


@graph.command("list")
@json_option
@connection_options
def list_graphs(as_json: bool, url: str | None, key: str | None) -> None:
    """List deployed graphs."""
    graphs = client_for(url, key).call("GET", "/graphs")["graphs"]
    if as_json:
        click.echo(pretty_json(graphs))
        return
    if not graphs:
        click.echo(
            "no graphs deployed yet (try: tiergate graph deploy examples/graphs/order-graph.json)"
        )
        return
    rows = [("ID", "LATEST", "VERSIONS", "UPDATED", "DESCRIPTION")]
    for head in sorted(graphs, key=lambda g: g["id"]):
        rows.append(
            (
                head["id"],
                str(head["version"]),
                str(len(head.get("versions") or [])),
                short_time(head.get("updated_at")),
                (head.get("description") or "")[:60],
            )
        )
    click.echo(render_table(rows))


@graph.command("show")
@click.argument("graph_id", metavar="ID")
@click.option("--version", type=click.IntRange(1), help="This version (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print it whole, as JSON.")
@connection_options
def show_graph(
    graph_id: str, version: int | None, as_json: bool, url: str | None, key: str | None
) -> None:
    """Show a graph: its nodes in the order they can run, with what each needs."""
    params = {"version": str(version)} if version is not None else None
    body = client_for(url, key).call("GET", f"/graphs/{graph_id}", params=params)
    if as_json:
        click.echo(pretty_json(body))
        return
    versions = ", ".join(map(str, body.get("versions") or []))
    click.echo(
        f"graph {body['id']} version {body['version']} (latest {body['latest']}; "
        f"versions {versions}), deployed {short_time(body.get('created_at'))}"
    )
    if body.get("description"):
        click.echo(body["description"])
    nodes: dict[str, Any] = body["nodes"]
    rows = [("NODE", "FUNCTION", "NEEDS", "INPUT")]
    for name in body.get("order") or list(nodes):
        spec = nodes[name]
        mapping = spec.get("input")
        rows.append(
            (
                name,
                spec["function"],
                ", ".join(spec.get("needs") or []) or "-",
                "(the run input)" if mapping is None else _short_json(mapping, 60),
            )
        )
    click.echo(render_table(rows))
    if body.get("output") is not None:
        click.echo(f"output: {_short_json(body['output'], 200)}")
    else:
        needed = {need for spec in nodes.values() for need in spec.get("needs") or []}
        sinks = [name for name in body.get("order") or nodes if name not in needed]
        click.echo(f"output: the outputs of {', '.join(sinks)}, by name")


@graph.command("delete")
@click.argument("graph_id", metavar="ID")
@connection_options
def delete_graph(graph_id: str, url: str | None, key: str | None) -> None:
    """Delete a graph (runs already started go on with their version)."""
    client_for(url, key).call("DELETE", f"/graphs/{graph_id}")
    click.echo(f"deleted graph {graph_id}")


# ---- runs ----------------------------------------------------------------------------------


@graph.command("run")
@click.argument("graph_id", metavar="ID")
@click.option("--data", "-d", default=None, help="The run's input (JSON), or @FILE.")
@click.option(
    "--base",
    "base_run",
    metavar="RUN_ID",
    help="An earlier run of this graph: nodes whose function version and input are unchanged "
    "reuse its outputs instead of running.",
)
@click.option("--async", "run_async", is_flag=True, help="Print the run id alone and return.")
@click.option(
    "--no-wait-human",
    is_flag=True,
    help="Return (exit 0) once the run waits for a person, instead of following it on.",
)
@connection_options
def run_graph(
    graph_id: str,
    data: str | None,
    base_run: str | None,
    run_async: bool,
    no_wait_human: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Run the latest version of graph ID with --data as input, printing a line per node as it
    ends; exits 1 when the run fails or is cancelled."""
    body = input_data(data)
    client = client_for(url, key)
    headers = {"Content-Type": "application/json", "Prefer": "respond-async"}
    params = {"base_run": base_run} if base_run else None
    run = client.call("POST", f"/graphs/{graph_id}/runs", data=body, headers=headers, params=params)
    if run_async:
        click.echo(run["run_id"])
        return
    click.echo(_header(run))
    _follow(client, run, no_wait_human)


@graph.command("watch")
@click.argument("graph_id", metavar="ID")
@click.argument("run_id")
@click.option(
    "--no-wait-human",
    is_flag=True,
    help="Return (exit 0) once the run waits for a person, instead of following it on.",
)
@connection_options
def watch_run(
    graph_id: str, run_id: str, no_wait_human: bool, url: str | None, key: str | None
) -> None:
    """Follow a run already started (say with --async) as `graph run` does."""
    client = client_for(url, key)
    run = client.call("GET", f"/graphs/{graph_id}/runs/{run_id}")
    click.echo(_header(run))
    _follow(client, run, no_wait_human)


@graph.command("status")
@click.argument("graph_id", metavar="ID")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run whole, as JSON.")
@connection_options
def run_status(graph_id: str, run_id: str, as_json: bool, url: str | None, key: str | None) -> None:
    """Show a run as it is now: its status and a table of its nodes."""
    run = client_for(url, key).call("GET", f"/graphs/{graph_id}/runs/{run_id}")
    if as_json:
        click.echo(pretty_json(run))
        return
    ended = f", ended {short_time(run['ended_at'])}" if run.get("ended_at") else ""
    click.echo(
        f"{_header(run)}: {run['status']} (started {short_time(run.get('created_at'))}{ended})"
    )
    rows = [("NODE", "STATUS", "FUNCTION", "TOOK", "EXECUTION", "WHY")]
    for name, node in run["nodes"].items():
        version = node.get("function_version")
        rows.append(
            (
                name,
                node["status"],
                f"{node['function']}@{version}" if version is not None else node["function"],
                _took(node),
                node.get("execution_id") or "-",
                _one_line(node.get("error") or node.get("reason") or "")[:80],
            )
        )
    click.echo(render_table(rows))
    if run["status"] == "completed":
        click.echo(f"output: {_json(run.get('output'))}")
    elif run.get("error"):
        click.echo(f"{run['status']}: {_one_line(run['error'])}")


@graph.command("cancel")
@click.argument("graph_id", metavar="ID")
@click.argument("run_id")
@connection_options
def cancel_run(graph_id: str, run_id: str, url: str | None, key: str | None) -> None:
    """Cancel a run: nodes not started are skipped, running ones cancelled."""
    client = client_for(url, key)
    path = f"/graphs/{graph_id}/runs/{run_id}"
    run = client.call("GET", path)
    if run["status"] not in RUN_FINAL:
        run = client.call("DELETE", path)
        if run["status"] == "cancelled":
            click.echo(f"run {run['run_id']} cancelled")
            return
    click.echo(f"run {run['run_id']} had already ended: {run['status']}")


# ---- following a run -----------------------------------------------------------------------


def _follow(client: Client, run: dict[str, Any], no_wait_human: bool) -> None:
    """Poll the run until it ends, printing each node once it reaches a state worth a line;
    exit 1 when it fails or is cancelled."""
    path = f"/graphs/{run['graph_id']}/runs/{run['run_id']}"
    width = max(len(name) for name in run["nodes"])
    shown: dict[str, str] = {}
    told_waiting = False
    while True:
        for name, node in run["nodes"].items():
            status = node["status"]
            if status in NODE_SHOWN and shown.get(name) != status:
                shown[name] = status
                click.echo(_node_line(client, name, node, width))
        if run["status"] in RUN_FINAL:
            break
        if run["status"] == "awaiting_human":
            if no_wait_human:
                click.echo(
                    f"run {run['run_id']} waits for a person; follow it with: "
                    f"tiergate graph watch {run['graph_id']} {run['run_id']}"
                )
                return
            if not told_waiting:
                click.echo(
                    f"waiting for a person (tiergate tasks, or {client.url}/ui/) "
                    "- Ctrl-C stops watching, not the run"
                )
                told_waiting = True
        time.sleep(POLL_S)
        run = client.call("GET", path)
    if run["status"] != "completed":
        raise ClientError(f"error: run {run['run_id']} {run['status']}: {_one_line(run['error'])}")
    nodes = list(run["nodes"].values())
    ran = sum(1 for node in nodes if node["status"] == "completed")
    reused = sum(1 for node in nodes if node["status"] == "reused")
    took = _seconds(run.get("created_at"), run.get("ended_at"))
    spent = f" in {took:.2f} s" if took is not None else ""
    click.echo(f"completed{spent} (ran {ran}, reused {reused}): {_json(run.get('output'))}")


def _header(run: dict[str, Any]) -> str:
    base = f", base run {run['base_run']}" if run.get("base_run") else ""
    return f"run {run['run_id']} of graph {run['graph_id']} version {run['version']}{base}"


def _node_line(client: Client, name: str, node: dict[str, Any], width: int) -> str:
    status = node["status"]
    head = f"  {name.ljust(width)}  {status.ljust(STATUS_WIDTH)}"
    if status == "awaiting_human":
        return f"{head}  {_waiting_for(client, node)}"
    why = node.get("error") if status == "failed" else node.get("reason")
    return f"{head}  {_took(node).ljust(6)}  ({_one_line(why or status)})"


def _waiting_for(client: Client, node: dict[str, Any]) -> str:
    """Which task a node waits on: its execution names it (when this key may read it)."""
    execution_id = node.get("execution_id")
    status, body, _ = client.request("GET", f"/executions/{execution_id}")
    task = body.get("task_id") if status == 200 and isinstance(body, dict) else None
    if task:
        return f"task {task} (execution {execution_id}) waits for a person"
    return f"execution {execution_id} waits for a person"


def _took(node: dict[str, Any]) -> str:
    if node["status"] in ("completed", "failed"):
        seconds = _seconds(node.get("started_at"), node.get("ended_at"))
        if seconds is not None:
            return f"{seconds:.2f} s"
    return "-"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return max(0.0, (_when(end) - _when(start)).total_seconds())
    except ValueError:
        return None


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _short_json(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else _json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


COMMANDS = (graph,)
