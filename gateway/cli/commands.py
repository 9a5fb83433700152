"""Client commands: ``deploy``, ``invoke``, ``functions``, ``logs``, and what the others build
on (``connection_options``, ``json_option``, ``sdk_client``, ``render_table``). Each takes
``--url`` and ``--key``; errors print one line to stderr and exit non-zero."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson

from gateway import sdk
from gateway.cli.client import EXIT_CODES, Client, ClientError, environ, sdk_error
from gateway.sdk.operations import RuntimeNotInferred

F = Callable[..., Any]

MANIFEST_FILE = "manifest.json"
"""Read by ``deploy`` when it lies in the directory deployed, or beside the file (as
``tiergate new`` writes it), unless ``--manifest`` names another."""
FOLLOW_PAGE = 100
"""Executions asked for at each poll of ``logs --follow`` (more pages when all are new)."""
FOLLOW_PAGES = 5
ENDED = ("completed", "failed", "timeout", "cancelled")


def connection_options(fn: F) -> F:
    fn = click.option("--key", help="API key (else TIERGATE_KEY, else <data-dir>/admin.key).")(fn)
    return click.option(
        "--url", help="Gateway URL (else TIERGATE_URL, else http://127.0.0.1:8080)."
    )(fn)


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the API's JSON instead of text."
    )(fn)


def client_for(url: str | None, key: str | None) -> Client:
    return Client.resolve(url, key, environ())


@contextmanager
def sdk_client(url: str | None, key: str | None) -> Iterator[sdk.Client]:
    """An SDK client for ``--url`` and ``--key`` (found as every command finds them); an SDK
    error inside becomes the CLI's one line and exit status (``sdk_error``)."""
    connection = client_for(url, key)
    try:
        with sdk.Client(connection.url, connection.key) as client:
            yield client
    except sdk.TiergateError as exc:
        raise sdk_error(exc) from None


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--id", "function_id", help="Function id (default: from the file name).")
@click.option(
    "--runtime",
    help="Runtime (default: from the file suffix, as the gateway's runtimes declare them; "
    "python for a directory).",
)
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(path_type=Path),
    help="A JSON manifest with the other fields (schemas, limits, tiers, …); default: the "
    "manifest.json in the directory deployed, or beside the file, if there is one.",
)
@json_option
@connection_options
def deploy(
    path: Path,
    function_id: str | None,
    runtime: str | None,
    manifest_file: Path | None,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Deploy the code at PATH (a file, a directory sent as a zip, or a manifest .json) as a
    new version."""
    found = None if manifest_file else _manifest_beside(path)
    manifest_file = manifest_file or found
    manifest = _load_json(manifest_file) if manifest_file else None
    try:
        with sdk_client(url, key) as client:
            deployed = client.deploy(path, id=function_id, runtime=runtime, manifest=manifest)
    except RuntimeNotInferred as exc:  # the suffixes the gateway's runtimes take are named
        raise ClientError(f"error: {exc.reason}; pass --runtime", EXIT_CODES["usage"]) from None
    except ValueError as exc:  # a manifest file not an object
        raise ClientError(f"error: {exc}", EXIT_CODES["usage"]) from None
    except OSError as exc:
        raise ClientError(f"error: cannot read {path}: {exc.strerror or exc}") from None
    result = deployed.raw
    if as_json:
        click.echo(pretty_json(result))
        return
    size = f", {result['code_size']} bytes" if result.get("code_size") else ""
    pre = ", precompiled" if result.get("precompiled") else ""
    used = f" with {found}" if found else ""
    click.echo(
        f"deployed {result['id']} version {result['version']} "
        f"({result.get('runtime') or 'tiers only'}{size}{pre}){used}"
    )


def _manifest_beside(path: Path) -> Path | None:
    """``manifest.json`` in the directory deployed, or beside the code file deployed."""
    if path.suffix == ".json" and not path.is_dir():
        return None  # a manifest deployed as such
    candidate = (path if path.is_dir() else path.parent) / MANIFEST_FILE
    return candidate if candidate.is_file() else None


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
@click.option(
    "--full",
    "--json",
    "full",
    is_flag=True,
    help="Print the whole execution (the API's JSON), not only the output.",
)
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


def _follow(connection: Client, execution_id: str) -> dict[str, Any]:
    """The execution once it has ended, followed on its event stream: each status it goes
    through and each log line it writes are said on stderr as they come. A gateway without
    event streams, or a stream cut short, is polled to the end instead."""
    try:
        with sdk.Client(connection.url, connection.key) as client:
            try:
                for event in client.events(execution_id):
                    data = event.data
                    if event.event == "status" and data["status"] not in ENDED:
                        click.echo(f"execution {execution_id} is {data['status']}…", err=True)
                    elif event.event == "log":
                        click.echo(f"[{data['stream']}] {data['message']}", err=True)
                    elif event.event == "end":
                        return dict(data)
            except sdk.NotFound as exc:
                if exc.code != "not_found":  # the execution is missing, not the stream
                    raise
            return dict(client.wait(execution_id).raw)
    except sdk.TiergateError as exc:
        raise sdk_error(exc) from None


@click.command()
@json_option
@connection_options
def functions(as_json: bool, url: str | None, key: str | None) -> None:
    """List deployed functions."""
    with sdk_client(url, key) as client:
        found = client.functions()
    if as_json:
        click.echo(pretty_json([fn.raw for fn in found]))
        return
    rows = [("ID", "LATEST", "RUNTIME", "UPDATED", "DESCRIPTION")]
    for fn in found:
        rows.append(
            (
                fn.id,
                str(fn.latest_version),
                fn.runtime or "-",
                short_time(fn.updated_at),
                (fn.description or "")[:60],
            )
        )
    if len(rows) == 1:
        click.echo("no functions deployed yet (try: tiergate deploy examples/functions/echo.wat)")
        return
    click.echo(render_table(rows))


@click.command()
@click.argument("function_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Print the last --limit executions oldest first, then each log line of a new one as "
    "it is written and each new one once it has ended, until Ctrl-C (the gateway's live "
    "stream).",
)
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between polls with --follow, on a gateway that does not stream logs.",
)
@json_option
@connection_options
def logs(
    function_id: str,
    limit: int,
    follow: bool,
    interval: float,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Show recent executions of FUNCTION_ID with their logs, newest first; with --follow, go
    on printing new ones as they end (--json: one JSON document a line)."""
    with sdk_client(url, key) as client:
        page = client.logs(function_id, limit=max(limit, FOLLOW_PAGE) if follow else limit)
        if follow:
            try:
                _stream_logs(client, function_id, page, limit, as_json)
            except sdk.NotFound as exc:  # a gateway that does not stream them: poll
                if exc.code != "not_found":
                    raise
                _follow_logs(client, function_id, page, limit, interval, as_json)
            except KeyboardInterrupt:  # the way to stop following: not an error
                return
    if as_json:
        click.echo(pretty_json([ex.raw for ex in page]))
        return
    if not page:
        click.echo(f"no executions of {function_id} yet")
    for ex in page:
        _print_execution(ex.raw)


def _print_execution(ex: Any) -> None:
    took = ex.get("duration_ms")
    if took is None:  # an execution document (GET /executions) has it in metrics
        took = (ex.get("metrics") or {}).get("duration_ms")
    shown = f"{took:.1f} ms" if took is not None else "-"
    click.echo(
        f"{ex.get('started_at') or '-'}  {ex['execution_id']}  v{ex.get('version')}  "
        f"{ex['status']}  {ex.get('tier') or '-'}  {shown}"
    )
    if ex.get("error"):
        click.echo(f"    error: {ex['error']}")
    for line in ex.get("logs") or []:
        click.echo(f"    [{line['stream']}] {line['message']}")


def _stream_logs(
    client: sdk.Client, function_id: str, page: list[sdk.Execution], limit: int, as_json: bool
) -> None:
    """Print the newest ``limit`` executions of ``page`` that have ended, oldest first, then
    follow ``GET /functions/{id}/logs?follow=true``: each log line of an execution as it is
    written (``ID  [stream] message``) and each execution once it has ended. With ``as_json``
    each execution is printed once it has ended, as one document a line, its log lines
    gathered from the stream (those of at most ``FOLLOW_PAGE`` executions going on at once)."""
    click.echo(
        f"following {function_id}: log lines as they are written, each execution once it has "
        f"ended (Ctrl-C stops)",
        err=True,
    )
    shown = set()
    for ex in reversed(page[:limit]):
        if not ex.ended:
            continue  # its lines and its ending come on the stream
        shown.add(ex.execution_id)
        if as_json:
            click.echo(orjson.dumps(ex.raw).decode())
        else:
            _print_execution(ex.raw)
    gathered: dict[str, list[Any]] = {}
    for event in client.follow_logs(function_id):
        data = dict(event.data)
        execution_id = data.pop("execution_id", None)
        if event.event == "error":
            raise ClientError(f"error: {data.get('detail')}")
        if event.event == "log" and as_json:
            gathered.setdefault(execution_id, []).append(data)
            while len(gathered) > FOLLOW_PAGE:
                del gathered[next(iter(gathered))]
        elif event.event == "log":
            click.echo(f"{execution_id}  [{data['stream']}] {data['message']}")
        elif event.event == "execution" and execution_id not in shown:
            ended = {"execution_id": execution_id, **data}
            if as_json:
                ended["logs"] = gathered.pop(execution_id, [])
                click.echo(orjson.dumps(ended).decode())
            else:
                _print_execution(ended)


def _follow_logs(
    client: sdk.Client,
    function_id: str,
    page: list[sdk.Execution],
    limit: int,
    interval: float,
    as_json: bool,
) -> None:
    """Print the newest ``limit`` executions of ``page``, oldest first, then poll
    ``GET /functions/{id}/logs`` and print each new execution once, when it has ended. One still
    going when first seen is printed later: from the page, or read by its id once it falls out
    of the newest page. Those of ``page`` past ``limit`` that have ended are not printed."""
    shown = {ex.execution_id for ex in page[limit:] if ex.ended}
    going: dict[str, None] = {}  # seen, not ended yet, in the order seen

    def see(ex: sdk.Execution) -> None:
        if ex.execution_id in shown:
            return
        if not ex.ended:
            going.setdefault(ex.execution_id, None)
            return
        going.pop(ex.execution_id, None)
        shown.add(ex.execution_id)
        if as_json:
            click.echo(orjson.dumps(ex.raw).decode())
        else:
            _print_execution(ex.raw)

    click.echo(
        f"following {function_id}: each new execution is printed once it has ended, "
        f"polling every {interval:g} s (Ctrl-C stops)",
        err=True,
    )
    for ex in reversed(page):
        see(ex)
    while True:
        time.sleep(interval)
        newest = _new_executions(client, function_id, shown | set(going))
        for ex in reversed(newest):
            see(ex)
        listed = {ex.execution_id for ex in newest}
        for execution_id in [e for e in going if e not in listed]:
            try:
                see(client.execution(execution_id))
            except sdk.ExecutionNotFound:  # deleted since (retention)
                going.pop(execution_id, None)
        shown &= listed  # older ones never come back into the newest page


def _new_executions(client: sdk.Client, function_id: str, known: set[str]) -> list[sdk.Execution]:
    """The newest page of executions, and the pages after it while each is full of ones not
    seen before (a burst larger than a page), up to ``FOLLOW_PAGES`` pages."""
    found: list[sdk.Execution] = []
    before = None
    for _ in range(FOLLOW_PAGES):
        page = client.logs(function_id, limit=FOLLOW_PAGE, before=before)
        found.extend(page)
        if len(page) < FOLLOW_PAGE or any(ex.execution_id in known for ex in page):
            break
        before = page[-1].execution_id
    return found


def short_time(stamp: str | None) -> str:
    return stamp.replace("T", " ")[:19] if stamp else "-"


def render_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def register_client_commands(group: click.Group, *more: click.Command) -> None:
    for command in (deploy, invoke, functions, logs, *more):
        group.add_command(command)
