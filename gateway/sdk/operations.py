"""What every SDK call does, once, for both clients: the requests it makes and how it reads
their answers.

An operation is a generator. It yields the steps it needs — ``Request`` (send this, give me the
``Answer``), ``Sleep`` (wait this long before going on) and, for streams, ``Emit`` (hand this
value to the caller) — and returns its result. ``Client`` runs operations over ``httpx.Client``
and ``time.sleep``, ``AsyncClient`` over ``httpx.AsyncClient`` and ``asyncio.sleep``: the
transport is all they add. Problem answers never reach an operation's code: the transport
raises them (``answer_of``) into the generator, where they propagate to the caller.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote

import httpx

from .errors import (
    ClientTimeout,
    ConnectionFailed,
    NotFound,
    TiergateError,
    error_from_answer,
)
from .results import (
    Alias,
    Deployment,
    Event,
    Execution,
    Function,
    Graph,
    GraphRun,
    RuntimeInfo,
    StreamEvent,
    Task,
    Version,
    function_id_of,
)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 900.0
"""How long one HTTP request may take: a sync invoke waits for the function, whose timeout may
be up to ``TIERGATE_MAX_TIMEOUT_MS`` (900 s by default)."""

BUILT_IN_SUFFIXES = {".wat": "wasm", ".wasm": "wasm", ".py": "python"}
"""The suffixes of the runtimes built into every gateway, told without asking it; any other
suffix is looked up in the gateway's own list (``GET /runtimes``), where plugins add theirs."""
SKIPPED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".venv", ".mypy_cache", ".pytest_cache"}
)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: Mapping[str, tuple[str | None, bytes, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    value: Any


@dataclass(frozen=True)
class Listen:
    """Open the event stream ``request`` (the first time an operation yields one) and answer
    its next ``StreamEvent``, or ``None`` once the gateway closed it. A heartbeat comes as an
    event named ``HEARTBEAT``, so that an operation can look at its clock. A gateway that does
    not serve the stream raises ``NotFound`` (code ``not_found``)."""

    request: Request


HEARTBEAT = ":"
ENDED = frozenset({"completed", "failed", "timeout", "cancelled"})


class EventDecoder:
    """``text/event-stream`` lines, one at a time, into ``StreamEvent``s (``feed`` answers one
    when a line completes it); a comment line is a heartbeat."""

    def __init__(self) -> None:
        self._name, self._id, self._data = "message", None, []  # type: tuple[str, str | None, list[str]]

    def feed(self, line: str) -> StreamEvent | None:
        if line.startswith(":"):
            return StreamEvent(HEARTBEAT, None, None)
        if not line:
            if not self._data:
                return None
            event = StreamEvent(self._name, self._id, json.loads("\n".join(self._data)))
            self._name, self._data = "message", []
            return event
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "id":
            self._id = value
        elif name == "data":
            self._data.append(value)
        return None


def not_streamed(request: Request) -> TiergateError:
    """What a transport raises when the gateway answered ``request`` with no event stream (a
    gateway older than its live streams)."""
    return NotFound(
        f"this gateway does not serve the event stream {request.path}", code="not_found"
    )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


Step = Request | Sleep | Emit | Listen
Operation = Generator[Step, Any, T]
"""Sent back: an ``Answer`` for a ``Request``, a ``StreamEvent`` or None for a ``Listen``."""


# Where the gateway is, and the key: as the CLI finds them.


def resolve(url: str | None, key: str | None, env: Mapping[str, str]) -> tuple[str, str | None]:
    """``url``, else ``TIERGATE_URL``, else http://127.0.0.1:8080; ``key``, else
    ``TIERGATE_KEY``, else ``<TIERGATE_DATA_DIR or .tiergate>/admin.key`` (else none)."""
    found = (url or env.get("TIERGATE_URL") or DEFAULT_URL).rstrip("/")
    if "://" not in found:
        raise ValueError(f"the URL {found!r} has no scheme: use 'http://{found}' (or https://)")
    return found, key or env.get("TIERGATE_KEY") or key_file(env)


def key_file(env: Mapping[str, str]) -> str | None:
    path = Path(env.get("TIERGATE_DATA_DIR") or ".tiergate") / "admin.key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


# The transport's side: one httpx request, one answer (both clients use these).


def httpx_arguments(request: Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": request.path,
        "params": dict(request.params) or None,
        "content": request.content,
        "files": dict(request.files) if request.files else None,
        "headers": dict(request.headers),
    }


def answer_of(response: httpx.Response) -> Answer:
    """The answer, decoded; a status of 400 or more raises the problem's ``TiergateError``."""
    body: Any = None
    if response.content:
        kind = response.headers.get("content-type", "")
        if "json" in kind:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = response.text
        else:
            body = response.text
    if response.status_code >= 400:
        raise error_from_answer(response.status_code, body, response.headers)
    return Answer(response.status_code, response.headers, body)


def transport_error(exc: httpx.HTTPError, url: str, request: Request) -> TiergateError:
    """An httpx failure as the SDK's error, naming the URL."""
    where = f"{request.method} {url}{request.path}"
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return ClientTimeout(f"no answer from tiergate within the client's timeout: {where}")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectionFailed(
            f"cannot reach tiergate at {url} (is `tiergate serve` running?): {exc}", url=url
        )
    return ConnectionFailed(f"request to tiergate at {url} failed: {where}: {exc!r}", url=url)


def headers_for(key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": "tiergate-sdk", **(extra or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


# Building blocks.


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json_request(method: str, path: str, body: Any, **headers: str) -> Request:
    return Request(
        method, path, content=_json(body), headers={"Content-Type": "application/json", **headers}
    )


def _segment(value: str | int, safe: str = "") -> str:
    """One path segment, escaped, so an odd id cannot reach another endpoint."""
    return quote(str(value), safe=safe)


def _call(request: Request, parse: Callable[[Any], R]) -> Operation[R]:
    answer = yield request
    assert answer is not None
    return parse(answer.body)


def _poll(
    request: Request,
    parse: Callable[[Any], R],
    done: Callable[[R], bool],
    *,
    timeout: float | None,
    poll_s: float,
    what: str,
    execution_id: str | None = None,
    emit: bool = False,
    changed: Callable[[R, R | None], bool] = lambda new, old: True,
) -> Operation[R]:
    """GET ``request`` until ``done``, every ``poll_s``; after ``timeout`` s, ``ClientTimeout``.
    With ``emit``, hand over each document for which ``changed(new, previous)`` says so."""
    deadline = None if timeout is None else time.monotonic() + timeout
    previous: R | None = None
    while True:
        answer = yield request
        assert answer is not None
        current = parse(answer.body)
        if emit and changed(current, previous):
            yield Emit(current)
        previous = current
        if done(current):
            return current
        wait = poll_s
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientTimeout(
                    f"{what} had not ended after {timeout} s", execution_id=execution_id
                )
            wait = min(wait, left)
        yield Sleep(wait)


# Invocations and executions.


class InvokeOptions(TypedDict, total=False):
    """The keywords of ``invoke`` and ``invoke_async``: the API's query overrides and headers
    (``context`` is sent as ``X-Tiergate-Context``)."""

    timeout_ms: int
    start_tier: str
    skip_tiers: str | Sequence[str]
    parallel: bool
    fallback: bool
    context: Any
    idempotency_key: str
    callback_url: str


def invoke(
    ref: str,
    input: Any = None,
    *,
    respond_async: bool = False,
    timeout_ms: int | None = None,
    start_tier: str | None = None,
    skip_tiers: str | Sequence[str] | None = None,
    parallel: bool | None = None,
    fallback: bool | None = None,
    context: Any = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
) -> Operation[Execution]:
    params: dict[str, str] = {}
    if timeout_ms is not None:
        params["timeout_ms"] = str(timeout_ms)
    if start_tier is not None:
        params["start_tier"] = start_tier
    if skip_tiers is not None:
        params["skip_tiers"] = skip_tiers if isinstance(skip_tiers, str) else ",".join(skip_tiers)
    for name, flag in (("parallel", parallel), ("fallback", fallback)):
        if flag is not None:
            params[name] = "true" if flag else "false"
    headers = {"Content-Type": "application/json"}
    if respond_async:
        headers["Prefer"] = "respond-async"
    if context is not None:
        headers["X-Tiergate-Context"] = json.dumps(context, separators=(",", ":"))
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if callback_url is not None:
        headers["X-Callback-Url"] = callback_url
    path = f"/invoke/{_segment(ref, safe='@:')}"
    request = Request("POST", path, params=params, content=_json(input), headers=headers)
    return (yield from _call(request, lambda body: Execution.from_dict(body, function_id_of(ref))))


def execution(execution_id: str) -> Operation[Execution]:
    return (yield from _call(Request("GET", _execution_path(execution_id)), Execution.from_dict))


def cancel(execution_id: str | Execution) -> Operation[Execution]:
    request = Request("DELETE", _execution_path(execution_id))
    return (yield from _call(request, Execution.from_dict))


def _execution_path(target: str | Execution) -> str:
    execution_id = target.execution_id if isinstance(target, Execution) else target
    return f"/executions/{_segment(execution_id)}"


def wait(
    target: str | Execution | GraphRun, *, timeout: float | None, poll_s: float
) -> Operation[Any]:
    if isinstance(target, GraphRun):
        if target.ended:
            return target
        return (yield from _poll(
            _run_request(target.graph_id, target.run_id),
            GraphRun.from_dict,
            lambda run: run.ended,
            timeout=timeout,
            poll_s=poll_s,
            what=f"graph run {target.run_id}",
        ))
    if isinstance(target, Execution) and target.ended:
        return target
    return (yield from _watch(target, timeout=timeout, poll_s=poll_s, emit=False))


def stream(
    target: str | Execution, *, timeout: float | None, poll_s: float
) -> Operation[Execution]:
    return (yield from _watch(target, timeout=timeout, poll_s=poll_s, emit=True))


def _watch(
    target: str | Execution, *, timeout: float | None, poll_s: float, emit: bool
) -> Operation[Execution]:
    """An execution followed to its end on its event stream (``wait``), saying each change of
    status with the execution as it is then (``stream``). Where the stream is not served (an
    older gateway) or ends early (the reader fell behind), the execution is polled instead."""
    execution_id = target.execution_id if isinstance(target, Execution) else target
    deadline = None if timeout is None else time.monotonic() + timeout
    listen = Listen(Request("GET", _execution_path(execution_id) + "/events"))
    shown: Execution | None = None  # the document said last (``stream``)
    status: str | None = None  # the status seen last
    while True:
        try:
            event = yield listen
        except NotFound as exc:
            if exc.code != "not_found":
                raise  # execution_not_found: the execution, not the stream, is missing
            event = None
        if event is None or event.event == "error":
            return (yield from _follow(execution_id, timeout=_left(deadline), poll_s=poll_s,
                                       emit=emit, shown=status))
        if event.event == "end":
            ended = Execution.from_dict(event.data)
            if emit:
                yield Emit(ended)
            return ended
        if event.event == "status" and event.data["status"] not in (*ENDED, status):
            status = event.data["status"]
            if emit:  # the document as it is now: its status may be ahead of the stream's
                now = yield from execution(execution_id)
                if shown is None or now.status != shown.status:
                    yield Emit(now)
                if now.ended:
                    return now  # the stream was behind: its end would say it again
                shown, status = now, now.status
        if deadline is not None and time.monotonic() > deadline:
            raise ClientTimeout(
                f"execution {execution_id} had not ended after {timeout} s",
                execution_id=execution_id,
            )


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _follow(
    target: str | Execution,
    *,
    timeout: float | None,
    poll_s: float,
    emit: bool = False,
    shown: str | None = None,
) -> Operation[Execution]:
    """An execution polled until it has ended, saying each change (``emit``) from ``shown``,
    the status said last."""
    execution_id = target.execution_id if isinstance(target, Execution) else target
    return (yield from _poll(
        Request("GET", _execution_path(execution_id)),
        Execution.from_dict,
        lambda e: e.ended,
        timeout=timeout,
        poll_s=poll_s,
        what=f"execution {execution_id}",
        execution_id=execution_id,
        emit=emit,
        changed=lambda new, old: new.status != (shown if old is None else old.status),
    ))


def events(target: str | Execution) -> Operation[Execution]:
    """Every event of the execution's stream as it comes (heartbeats aside); its result is
    the execution at its end (polled to it if the stream ends early)."""
    execution_id = target.execution_id if isinstance(target, Execution) else target
    listen = Listen(Request("GET", _execution_path(execution_id) + "/events"))
    while True:
        event = yield listen
        if event is None:
            return (yield from _follow(execution_id, timeout=None, poll_s=0.5))
        if event.event != HEARTBEAT:
            yield Emit(event)
        if event.event == "end":
            return Execution.from_dict(event.data)


def follow_logs(function_id: str) -> Operation[None]:
    """The events of ``GET /functions/{id}/logs?follow=true`` (``log``, ``execution``) as they
    come, until the gateway ends the stream."""
    path = f"/functions/{_segment(function_id)}/logs"
    listen = Listen(Request("GET", path, params={"follow": "true"}))
    while (event := (yield listen)) is not None:
        if event.event != HEARTBEAT:
            yield Emit(event)


# Functions.


class RuntimeNotInferred(ValueError):
    """No runtime was given and the code's path does not tell one. ``reason`` says why, naming
    the suffixes the gateway knows; the message adds how to name one (``runtime=``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; pass runtime=")
        self.reason = reason


@dataclass
class KnownSuffixes:
    """The gateway's suffix → runtime map, asked for (``GET /runtimes``) by the first deploy
    that needs it and kept by the client for the others."""

    runtimes: dict[str, str] | None = None


def runtimes() -> Operation[list[RuntimeInfo]]:
    return (yield from _call(
        Request("GET", "/runtimes"),
        lambda body: [RuntimeInfo.from_dict(r) for r in body["runtimes"]],
    ))


def deploy(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    id: str | None = None,
    runtime: str | None = None,
    manifest: Mapping[str, Any] | None = None,
    known: KnownSuffixes | None = None,
) -> Operation[Deployment]:
    """A manifest (a mapping, or a ``.json`` file) goes as JSON; a file's or a directory's
    code goes as multipart (``manifest`` and ``code``), a directory zipped. Without a runtime,
    a file's suffix names it: the built-in ones', else the gateway's map (kept in ``known``)."""
    fields: dict[str, Any] = dict(manifest or {})
    code: bytes | None = None
    filename = None
    if isinstance(source, Mapping):
        fields.update(source)
    else:
        path = Path(source)
        if path.suffix == ".json" and path.is_file() and manifest is None:
            loaded = json.loads(path.read_bytes())
            if not isinstance(loaded, dict):
                raise ValueError(f"{path} must hold a JSON object (a manifest)")
            fields.update(loaded)
        else:
            if path.is_dir():
                code, filename = zip_directory(path), f"{_id_from(path)}.zip"
            else:
                code, filename = path.read_bytes(), path.name
            if not (runtime or fields.get("runtime")):
                fields["runtime"] = runtime_of(path, fields) or (
                    yield from _runtime_from_gateway(path, known or KnownSuffixes())
                )
        fields.setdefault("id", _id_from(path))
    if runtime:
        fields["runtime"] = runtime
    if id:
        fields["id"] = id
    if code is None:
        request = _json_request("POST", "/deploy", fields)
    else:
        files = {
            "manifest": (None, _json(fields), "application/json"),
            "code": (filename, code, "application/octet-stream"),
        }
        request = Request("POST", "/deploy", files=files)
    return (yield from _call(request, Deployment.from_dict))


def runtime_of(path: Path, manifest: Mapping[str, Any]) -> str | None:
    """The built-in runtime a file's suffix names, ``python`` for a directory holding
    ``handler.py`` (or a manifest naming an ``entry``); ``None`` when neither tells."""
    if path.is_dir():
        return "python" if (path / "handler.py").is_file() or "entry" in manifest else None
    return BUILT_IN_SUFFIXES.get(path.suffix)


def _runtime_from_gateway(path: Path, known: KnownSuffixes) -> Operation[str]:
    """The runtime the gateway's runtimes say takes ``path``'s suffix (a plugin's ``.mjs``)."""
    if path.is_dir():
        raise RuntimeNotInferred(f"cannot tell the runtime of {path.name}: a directory with "
                                 "no handler.py, and no manifest naming an entry")
    if known.runtimes is None:
        known.runtimes = suffix_map((yield from runtimes()))
    found = known.runtimes.get(path.suffix)
    if found is None:
        taken = ", ".join(f"{suffix} ({name})" for suffix, name in sorted(known.runtimes.items()))
        raise RuntimeNotInferred(
            f"cannot tell the runtime of {path.name}: the gateway's runtimes take "
            f"{taken or 'no suffixes'}, not {path.suffix or 'a name without a suffix'}"
        )
    return found


def suffix_map(listed: Sequence[RuntimeInfo]) -> dict[str, str]:
    """Suffix → runtime, as the gateway's ``serve --deploy`` reads them: the declared runtimes'
    (ready or not: deploying to one that cannot run code says why), the first by name on a clash."""
    found: dict[str, str] = {}
    for info in sorted(listed, key=lambda info: info.name):
        if info.status in ("active", "unavailable"):
            for suffix in info.suffixes:
                found.setdefault(suffix, info.name)
    return found


def zip_directory(root: Path) -> bytes:
    """Every file under ``root`` by its path relative to it, but for ``SKIPPED_DIRS`` and
    ``.pyc`` files; sorted and dated 1980-01-01, so the same files make the same bytes (the
    same ``code_sha256``) on every machine, as ``tiergate deploy DIR`` makes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                if name.endswith(".pyc"):
                    continue
                path = Path(folder) / name
                entry = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_EPOCH)
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, path.read_bytes())
    return buffer.getvalue()


def _id_from(path: Path) -> str:
    name = path.resolve().name if path.is_dir() else path.stem
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:63] or "function"


def functions() -> Operation[list[Function]]:
    return (yield from _call(
        Request("GET", "/functions"),
        lambda body: [Function.from_dict(f) for f in body["functions"]],
    ))


def function(function_id: str) -> Operation[Function]:
    return (yield from _call(Request("GET", f"/functions/{_segment(function_id)}"),
                             Function.from_dict))


def versions(function_id: str) -> Operation[list[Version]]:
    return (yield from _call(
        Request("GET", f"/functions/{_segment(function_id)}/versions"),
        lambda body: [Version.from_dict(v) for v in body["versions"]],
    ))


def rollback(function_id: str, version: int) -> Operation[Function]:
    request = _json_request(
        "POST", f"/functions/{_segment(function_id)}/rollback", {"version": version}
    )
    return (yield from _call(request, Function.from_dict))


def delete(function_id: str) -> Operation[None]:
    yield Request("DELETE", f"/functions/{_segment(function_id)}")


def logs(function_id: str, *, limit: int, before: str | None) -> Operation[list[Execution]]:
    params = {"limit": str(limit)}
    if before is not None:
        params["before"] = before
    request = Request("GET", f"/functions/{_segment(function_id)}/logs", params=params)
    return (yield from _call(
        request, lambda body: [Execution.from_dict(e, function_id) for e in body["executions"]]
    ))


def set_alias(
    function_id: str,
    name: str,
    version: int,
    weights: Mapping[int, float] | Mapping[str, float] | None,
    description: str | None,
) -> Operation[Alias]:
    body: dict[str, Any] = {"version": version}
    if weights is not None:
        body["weights"] = {str(v): share for v, share in weights.items()}
    if description is not None:
        body["description"] = description
    path = f"/functions/{_segment(function_id)}/aliases/{_segment(name)}"
    return (yield from _call(_json_request("PUT", path, body), Alias.from_dict))


def aliases(function_id: str) -> Operation[list[Alias]]:
    return (yield from _call(
        Request("GET", f"/functions/{_segment(function_id)}/aliases"),
        lambda body: [Alias.from_dict(a) for a in body["aliases"]],
    ))


def delete_alias(function_id: str, name: str) -> Operation[None]:
    yield Request("DELETE", f"/functions/{_segment(function_id)}/aliases/{_segment(name)}")


# Events, graphs, tasks.


def publish(type: str, data: Any, *, idempotency_key: str | None) -> Operation[Event]:
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    request = _json_request("POST", "/events", {"type": type, "data": data}, **headers)
    return (yield from _call(request, Event.from_dict))


def deploy_graph(document: Mapping[str, Any]) -> Operation[Graph]:
    return (yield from _call(_json_request("POST", "/graphs", dict(document)), Graph.from_dict))


def run_graph(
    graph_id: str,
    input: Any,
    *,
    base_run: str | None,
    wait: bool,
    timeout: float | None,
    poll_s: float,
) -> Operation[GraphRun]:
    headers = {"Content-Type": "application/json"}
    if not wait:
        headers["Prefer"] = "respond-async"
    params = {} if base_run is None else {"base_run": base_run}
    path = f"/graphs/{_segment(graph_id)}/runs"
    answer = yield Request("POST", path, params=params, content=_json(input), headers=headers)
    assert answer is not None
    run = GraphRun.from_dict(answer.body)
    if not wait or run.status != "running":
        return run
    # The gateway waits up to 30 s; past that, go on asking until the run no longer runs.
    return (yield from _poll(
        _run_request(run.graph_id, run.run_id),
        GraphRun.from_dict,
        lambda r: r.status != "running",
        timeout=timeout,
        poll_s=poll_s,
        what=f"graph run {run.run_id}",
    ))


def graph_run(graph_id: str, run_id: str) -> Operation[GraphRun]:
    return (yield from _call(_run_request(graph_id, run_id), GraphRun.from_dict))


def _run_request(graph_id: str, run_id: str) -> Request:
    return Request("GET", f"/graphs/{_segment(graph_id)}/runs/{_segment(run_id)}")


def tasks(status: str) -> Operation[list[Task]]:
    return (yield from _call(
        Request("GET", "/tasks", params={"status": status}),
        lambda body: [Task.from_dict(t) for t in body["tasks"]],
    ))


def task(task_id: str | Task) -> Operation[Task]:
    return (yield from _call(Request("GET", _task_path(task_id)), Task.from_dict))


def claim(task_id: str | Task) -> Operation[Task]:
    return (yield from _call(Request("POST", f"{_task_path(task_id)}/claim"), Task.from_dict))


def release(task_id: str | Task) -> Operation[Task]:
    return (yield from _call(Request("POST", f"{_task_path(task_id)}/release"), Task.from_dict))


def complete(task_id: str | Task, output: Any) -> Operation[Execution]:
    request = _json_request("POST", f"{_task_path(task_id)}/complete", {"output": output})
    return (yield from _call(request, Execution.from_dict))


def reject(task_id: str | Task, reason: str) -> Operation[Execution]:
    request = _json_request("POST", f"{_task_path(task_id)}/reject", {"reason": reason})
    return (yield from _call(request, Execution.from_dict))


def _task_path(target: str | Task) -> str:
    task_id = target.id if isinstance(target, Task) else target
    return f"/tasks/{_segment(task_id)}"
