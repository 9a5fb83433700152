"""Client commands: ``deploy``, ``invoke``, ``functions``, ``logs``, ``tasks``. Each takes
``--url`` and ``--key``; errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson

from gateway.cli.client import Client, ClientError, environ

F = Callable[..., Any]

TASK_STATUSES = ["pending", "completed", "rejected", "expired", "cancelled", "all"]
SUFFIX_RUNTIMES = {
    ".wat": "wasm",
    ".wasm": "wasm",
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
}


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
    """Deploy the code at PATH (or a manifest .json) as a new version."""
    manifest = _load_json(manifest_file) if manifest_file else {}
    code: bytes | None = None
    if path.suffix == ".json" and manifest_file is None:
        manifest = _load_json(path)
    else:
        code = read_file(path)
        manifest.setdefault("runtime", runtime or SUFFIX_RUNTIMES.get(path.suffix))
        if not manifest["runtime"]:
            raise ClientError(f"error: cannot tell the runtime of {path.name}; pass --runtime")
    if runtime:
        manifest["runtime"] = runtime
    manifest["id"] = function_id or manifest.get("id") or _id_from(path)
    form = aiohttp.FormData()
    form.add_field("manifest", orjson.dumps(manifest).decode(), content_type="application/json")
    if code is not None:
        form.add_field("code", code, filename=path.name, content_type="application/octet-stream")
    result = client_for(url, key).call("POST", "/deploy", data=form)
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


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ClientError(f"error: cannot read {path}: {exc.strerror}") from None


def _id_from(path: Path) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")[:63] or "function"


@click.command()
@click.argument("ref")
@click.option("--data", "-d", default=None, help="Input JSON, or @FILE to read it from a file.")
@click.option("--async", "run_async", is_flag=True, help="Return at once with the execution id.")
@click.option("--full", is_flag=True, help="Print the whole execution, not only the output.")
@connection_options
def invoke(
    ref: str, data: str | None, run_async: bool, full: bool, url: str | None, key: str | None
) -> None:
    """Invoke REF (an id, or id@version) with --data as input."""
    body = read_file(Path(data[1:])) if data and data.startswith("@") else (data or "null").encode()
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"error: --data is not valid JSON: {exc}") from None
    headers = {"Content-Type": "application/json"}
    if run_async:
        headers["Prefer"] = "respond-async"
    result = client_for(url, key).call("POST", f"/invoke/{ref}", data=body, headers=headers)
    if full or "output" not in result:
        click.echo(pretty_json(result))
    else:
        click.echo(pretty_json(result["output"]))


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
