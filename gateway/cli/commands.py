"""Client commands: ``deploy``, ``invoke``, ``functions``, ``logs``, ``tasks``. Each takes
``--url`` and ``--key``; errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from gateway import sdk
from gateway.cli.client import EXIT_CODES, Client, ClientError, environ, sdk_error
from gateway.sdk.operations import runtime_of

F = Callable[..., Any]

TASK_STATUSES = ["pending", "completed", "rejected", "expired", "cancelled", "all"]


def connection_options(fn: F) -> F:
    fn = click.option("--key", help="API key (else TIERGATE_KEY, else <data-dir>/admin.key).")(fn)
    return click.option(
        "--url", help="Gateway URL (else TIERGATE_URL, else http://127.0.0.1:8080)."
    )(fn)


def client_for(url: str | None, key: str | None) -> Client:
    return Client.resolve(url, key, environ())


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--id", "function_id", help="Function id (default: from the file name).")
@click.option("--runtime", help="Runtime (default: from the file suffix).")
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(path_type=Path),
    help="A JSON manifest with the other fields (schemas, limits, tiers, …).",
)
@connection_options
def deploy(
    path: Path,
    function_id: str | None,
    runtime: str | None,
    manifest_file: Path | None,
    url: str | None,
    key: str | None,
) -> None:
    """Deploy the code at PATH (a file, a directory sent as a zip, or a manifest .json) as a
    new version."""
    manifest = _load_json(manifest_file) if manifest_file else None
    code_given = path.is_dir() or path.suffix != ".json" or manifest is not None
    if code_given and not (runtime or (manifest or {}).get("runtime")):
        runtime = runtime_of(path, manifest or {})
        if runtime is None:
            raise ClientError(
                f"error: cannot tell the runtime of {path.name}; pass --runtime "
                "(a directory holds handler.py, or its --manifest names an entry)",
                EXIT_CODES["usage"],
            )
    connection = client_for(url, key)
    try:
        with sdk.Client(connection.url, connection.key) as client:
            deployed = client.deploy(path, id=function_id, runtime=runtime, manifest=manifest)
    except sdk.TiergateError as exc:
        raise sdk_error(exc) from None
    except ValueError as exc:  # the runtime cannot be told, a manifest file not an object
        raise ClientError(f"error: {exc}", EXIT_CODES["usage"]) from None
    except OSError as exc:
        raise ClientError(f"error: cannot read {path}: {exc.strerror or exc}") from None
    result = deployed.raw
    size = f", {result['code_size']} bytes" if result.get("code_size") else ""
    pre = ", precompiled" if result.get("precompiled") else ""
    click.echo(
        f"deployed {result['id']} version {result['version']} "
        f"({result.get('runtime') or 'tiers only'}{size}{pre})"
    )


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(read_file(path))
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"error: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ClientError(f"error: {path} must hold a JSON object")
    return data


def input_data(data: str | None) -> bytes:
    """``--data``: JSON as given, ``@FILE`` read from a file, ``@-`` from stdin; ``null`` when
    absent. Checked to be JSON here, so a typo is one clear line, not a server's 400."""
    body: bytes
    if data == "@-":
        body = sys.stdin.buffer.read()
    elif data and data.startswith("@"):
        body = read_file(Path(data[1:]))
    else:
        body = (data or "null").encode()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"error: --data is not valid JSON: {exc}", EXIT_CODES["usage"]) from None
    return body


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(f"error: cannot read {path}: {exc.strerror}") from None


@click.command()
@click.argument("ref")
@click.option(
    "--data", "-d", default=None, help="Input JSON, @FILE to read it from a file, @- from stdin."
)
@click.option("--async", "run_async", is_flag=True, help="Return at once with the execution id.")
@click.option(
    "--wait",
    is_flag=True,
    help="Follow an execution that goes on (--async, or waiting for a person) to its end.",
)
@click.option("--full", is_flag=True, help="Print the whole execution, not only the output.")
@connection_options
def invoke(
    ref: str,
    data: str | None,
    run_async: bool,
    wait: bool,
    full: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Invoke REF (an id, id@version or id:alias) with --data as input. Exits 5 when the
    function failed, 6 when it timed out (see the README for every exit status)."""
    body = input_data(data)
    headers = {"Content-Type": "application/json"}
    if run_async:
        headers["Prefer"] = "respond-async"
    client = client_for(url, key)
    result = client.call("POST", f"/invoke/{ref}", data=body, headers=headers)
    if "output" not in result:  # 202: queued, or waiting for a person
        if not wait:
            click.echo(pretty_json(result))
            click.echo(
                f"execution {result['execution_id']} is {result['status']}: "
                f"add --wait to follow it to its end",
                err=True,
            )
            return
        result = _follow(client, result["execution_id"])
    if full or "output" not in result:
        click.echo(pretty_json(result))
    else:
        click.echo(pretty_json(result["output"]))
    ended = {"failed": "function_failed", "timeout": "timeout", "cancelled": None}
    if result.get("status") in ended:
        reason = ended[result["status"]]
        raise ClientError(
            f"error: execution {result['execution_id']} {result['status']}: "
            f"{result.get('error') or ''}".rstrip(": "),
            EXIT_CODES[reason] if reason else 1,
        )


def _follow(client: Client, execution_id: str) -> dict[str, Any]:
    """The execution once it has ended, polled (saying once when it waits for a person)."""
    said = None
    while True:
        record = client.call("GET", f"/executions/{execution_id}")
        if record["status"] in ("completed", "failed", "timeout", "cancelled"):
            return dict(record)
        if record["status"] != said:
            said = record["status"]
            click.echo(f"execution {execution_id} is {said}…", err=True)
        time.sleep(0.5 if said != "awaiting_human" else 2.0)


@click.command()
@connection_options
def functions(url: str | None, key: str | None) -> None:
    """List deployed functions."""
    result = client_for(url, key).call("GET", "/functions")
    rows = [("ID", "LATEST", "RUNTIME", "UPDATED", "DESCRIPTION")]
    for fn in result["functions"]:
        rows.append(
            (
                fn["id"],
                str(fn["latest_version"]),
                fn.get("runtime") or "-",
                short_time(fn.get("updated_at")),
                (fn.get("description") or "")[:60],
            )
        )
    if len(rows) == 1:
        click.echo("no functions deployed yet (try: tiergate deploy examples/functions/echo.wat)")
        return
    click.echo(render_table(rows))


@click.command()
@click.argument("function_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@connection_options
def logs(function_id: str, limit: int, url: str | None, key: str | None) -> None:
    """Show recent executions of FUNCTION_ID with their logs, newest first."""
    result = client_for(url, key).call(
        "GET", f"/functions/{function_id}/logs", params={"limit": limit}
    )
    if not result["executions"]:
        click.echo(f"no executions of {function_id} yet")
    for ex in result["executions"]:
        took = f"{ex['duration_ms']:.1f} ms" if ex.get("duration_ms") is not None else "-"
        click.echo(
            f"{ex['started_at']}  {ex['execution_id']}  v{ex['version']}  {ex['status']}"
            f"  {ex.get('tier') or '-'}  {took}"
        )
        if ex.get("error"):
            click.echo(f"    error: {ex['error']}")
        for line in ex["logs"]:
            click.echo(f"    [{line['stream']}] {line['message']}")


def short_time(stamp: str | None) -> str:
    return stamp.replace("T", " ")[:19] if stamp else "-"


def render_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@click.command()
@click.option("--status", default="pending", show_default=True, type=click.Choice(TASK_STATUSES))
@connection_options
def tasks(status: str, url: str | None, key: str | None) -> None:
    """List human review tasks (answer them at <url>/ui/)."""
    result = client_for(url, key).call("GET", "/tasks", params={"status": status})
    rows = [("TASK", "FUNCTION", "STATUS", "CREATED", "EXPIRES", "CLAIMED BY")]
    for task in result["tasks"]:
        rows.append(
            (
                task["id"],
                task["function_id"],
                task["status"],
                short_time(task["created_at"]),
                short_time(task["expires_at"]),
                task.get("claimed_by") or "-",
            )
        )
    if len(rows) == 1:
        click.echo(f"no {status} tasks" if status != "all" else "no tasks")
        return
    click.echo(render_table(rows))


def register_client_commands(group: click.Group, *more: click.Command) -> None:
    for command in (deploy, invoke, functions, logs, tasks, *more):
        group.add_command(command)
