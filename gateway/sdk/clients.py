"""``Client`` and ``AsyncClient``: the same methods over ``httpx.Client`` and
``httpx.AsyncClient``. What each method does is written once, in ``operations``; a method here
only names its arguments and hands the operation to its transport (``_run``, ``_iterate``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack, cast, overload

import httpx

from . import operations as ops
from .errors import TiergateError
from .operations import Answer, Emit, Listen, Operation, Request, Sleep
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
)

__all__ = ["AsyncClient", "Client"]

Source = str | os.PathLike[str] | Mapping[str, Any]
T = TypeVar("T")


class _Done:
    """The last thing a transport's driver yields: the operation's result."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Events:
    """An event stream the sync driver reads for a ``Listen`` step, a line at a time."""

    def __init__(self, http: httpx.Client, request: Request, url: str) -> None:
        self._opened = http.stream(**ops.httpx_arguments(request))
        try:
            response = self._opened.__enter__()
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, url, request) from exc
        self._request, self._url = request, url
        if response.status_code >= 400 or not _is_stream(response):
            response.read()
            self.close()
            ops.answer_of(response)  # raises the problem
            raise ops.not_streamed(request)
        self._lines = response.iter_lines()
        self._decoder = ops.EventDecoder()

    def next(self) -> StreamEvent | None:
        try:
            for line in self._lines:
                event = self._decoder.feed(line)
                if event is not None:
                    return event
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, self._url, self._request) from exc
        return None

    def close(self) -> None:
        self._opened.__exit__(None, None, None)


class _AsyncEvents:
    """``_Events`` for the async driver."""

    def __init__(self, request: Request, url: str) -> None:
        self._request, self._url = request, url
        self._opened: Any = None
        self._lines: AsyncIterator[str] | None = None
        self._decoder = ops.EventDecoder()

    async def open(self, http: httpx.AsyncClient) -> None:
        self._opened = http.stream(**ops.httpx_arguments(self._request))
        try:
            response = await self._opened.__aenter__()
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, self._url, self._request) from exc
        if response.status_code >= 400 or not _is_stream(response):
            await response.aread()
            await self.close()
            ops.answer_of(response)  # raises the problem
            raise ops.not_streamed(self._request)
        self._lines = response.aiter_lines()

    async def next(self) -> StreamEvent | None:
        assert self._lines is not None
        try:
            async for line in self._lines:
                event = self._decoder.feed(line)
                if event is not None:
                    return event
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, self._url, self._request) from exc
        return None

    async def close(self) -> None:
        if self._opened is not None:
            await self._opened.__aexit__(None, None, None)
            self._opened = None


def _is_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


class _Base:
    def __init__(
        self,
        url: str | None,
        key: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None,
        env: Mapping[str, str] | None,
    ) -> None:
        self.url, self.key = ops.resolve(url, key, os.environ if env is None else env)
        self._options: dict[str, Any] = {
            "base_url": self.url,
            "headers": ops.headers_for(self.key, headers),
            "timeout": httpx.Timeout(timeout, connect=min(timeout or 10.0, 10.0)),
        }
        self._suffixes = ops.KnownSuffixes()  # the gateway's, asked for once, when first needed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"  # never the key

    @staticmethod
    def _advance(
        operation: Operation[Any], answer: Answer | None, error: TiergateError | None
    ) -> Any:
        """The operation's next step, or ``_Done`` with its result."""
        try:
            if error is not None:
                return operation.throw(error)
            return operation.send(answer)
        except StopIteration as stop:
            return _Done(stop.value)


class Client(_Base):
    """A synchronous client of a tiergate gateway.

    ``url``: else ``TIERGATE_URL``, else http://127.0.0.1:8080 (a URL without a scheme is a
    ``ValueError``). ``key``: else ``TIERGATE_KEY``, else ``<TIERGATE_DATA_DIR or
    .tiergate>/admin.key``. ``timeout``: seconds one HTTP request may take (a sync invoke
    waits for its function). ``headers`` are sent with every request. ``env`` replaces
    ``os.environ`` when looking for the defaults. Use it as a context manager, or ``close()``.

    Every method raises a ``TiergateError`` for a problem answer: the class of its ``code``
    (``FunctionNotFound``, ``InvalidInput``, ``CascadeExhausted``…; see ``gateway.sdk.errors``).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float | None = ops.DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, key, timeout, headers, env)
        self._http = httpx.Client(**self._options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _drive(self, operation: Operation[Any]) -> Generator[Any, None, None]:
        answer: Any = None
        error: TiergateError | None = None
        events: _Events | None = None  # the stream a Listen step opened, read on by the next
        try:
            while True:
                step = self._advance(operation, answer, error)
                answer, error = None, None
                if isinstance(step, _Done):
                    yield step
                    return
                if isinstance(step, Emit):
                    yield step
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    try:
                        if isinstance(step, Listen):
                            events = events or _Events(self._http, step.request, self.url)
                            answer = events.next()
                        else:
                            answer = self._send(step)
                    except TiergateError as exc:
                        error = exc  # raised inside the operation, where it came from
        finally:
            if events is not None:
                events.close()

    def _send(self, request: Request) -> Answer:
        try:
            response = self._http.request(**ops.httpx_arguments(request))
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, self.url, request) from exc
        return ops.answer_of(response)

    def _run(self, operation: Operation[T]) -> T:
        for step in self._drive(operation):
            if isinstance(step, _Done):
                return cast(T, step.value)
        raise AssertionError("an operation ended without a result")  # pragma: no cover

    def _iterate(self, operation: Operation[Any]) -> Iterator[Any]:
        for step in self._drive(operation):
            if isinstance(step, Emit):
                yield step.value

    # Invocations and executions.

    def invoke(
        self, ref: str, input: Any = None, **options: Unpack[ops.InvokeOptions]
    ) -> Execution:
        """Invoke ``ref`` (``id``, ``id@version`` or ``id:alias``) with ``input`` (any JSON
        value) and wait for its answer. The keywords are the API's query overrides and headers
        (``context`` is sent as ``X-Tiergate-Context``). An execution that goes on — it waits
        for a person — comes back at once with ``status`` ``awaiting_human`` and no output:
        ``wait`` follows it. A failure raises (``CascadeExhausted``, ``Timeout``…)."""
        return self._run(ops.invoke(ref, input, **options))

    def invoke_async(
        self, ref: str, input: Any = None, **options: Unpack[ops.InvokeOptions]
    ) -> Execution:
        """Start ``ref`` without waiting (``Prefer: respond-async``): the execution as accepted,
        ``pending``. ``wait`` or ``stream`` follow it."""
        return self._run(ops.invoke(ref, input, respond_async=True, **options))

    @overload
    def wait(
        self, target: str | Execution, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> Execution: ...

    @overload
    def wait(
        self, target: GraphRun, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> GraphRun: ...

    def wait(
        self,
        target: str | Execution | GraphRun,
        *,
        timeout: float | None = None,
        poll_s: float = 0.5,
    ) -> Execution | GraphRun:
        """The execution (an id, or an ``Execution``) once it has ended — completed, failed,
        timeout or cancelled —, asking every ``poll_s`` seconds; a ``GraphRun`` likewise. An
        execution that has ended already is returned as it is. Past ``timeout`` seconds,
        ``ClientTimeout`` (a ``TimeoutError``; the execution goes on)."""
        result: Execution | GraphRun = self._run(ops.wait(target, timeout=timeout, poll_s=poll_s))
        return result

    def stream(
        self, target: str | Execution, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> Iterator[Execution]:
        """The execution's documents as its status changes, the first as it is now and the
        last once it has ended. It reads the execution's event stream
        (``GET /executions/{id}/events``); a gateway without one, or a stream cut short, is
        polled every ``poll_s`` seconds instead, with the same results."""
        return self._iterate(ops.stream(target, timeout=timeout, poll_s=poll_s))

    def events(self, target: str | Execution) -> Iterator[StreamEvent]:
        """Every event of the execution's live stream as it comes — ``status``, ``log`` (each
        entry as the code writes it), ``attempt``, ``token`` (a model's text) and, last,
        ``end`` (its ``data`` the execution's document) — until it ends."""
        return self._iterate(ops.events(target))

    def follow_logs(self, function_id: str) -> Iterator[StreamEvent]:
        """The function's log entries (``log``) and endings (``execution``) as they happen,
        until you stop iterating (``GET /functions/{id}/logs?follow=true``)."""
        return self._iterate(ops.follow_logs(function_id))

    def execution(self, execution_id: str) -> Execution:
        """The execution as it is now (``GET /executions/{id}``)."""
        return self._run(ops.execution(execution_id))

    def cancel(self, target: str | Execution) -> Execution:
        """Cancel a pending, running or awaiting_human execution; the execution as it is
        then (one that has ended is returned unchanged)."""
        return self._run(ops.cancel(target))

    # Functions.

    def deploy(
        self,
        source: Source,
        *,
        id: str | None = None,
        runtime: str | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Deploy a new version. ``source``: a code file (``.wat``, ``.wasm``, ``.py``, or a
        suffix a runtime plugin of the gateway takes, such as ``.mjs``: the runtime from its
        suffix), a directory (sent as a zip: the python runtime's package, its ``handler.py`` at
        the top), a manifest ``.json`` file, or a manifest mapping (with its ``code``).
        ``manifest`` holds the other fields (schemas, limits, tiers…); ``id`` defaults to the
        file's or directory's name, ``runtime`` to what the source says. A suffix no runtime of
        the gateway takes raises ``ValueError`` naming those it knows."""
        return self._run(ops.deploy(
            source, id=id, runtime=runtime, manifest=manifest, known=self._suffixes
        ))

    def runtimes(self) -> list[RuntimeInfo]:
        """The gateway's runtimes, by name: the suffixes each takes, whether it can run code
        there (``ready``) and, when not, why (``reason``)."""
        return self._run(ops.runtimes())

    def functions(self) -> list[Function]:
        """The functions (an admin key sees every tenant's, with ``tenant``)."""
        return self._run(ops.functions())

    def function(self, function_id: str) -> Function:
        """One function: its latest manifest in ``raw``, its ``versions``."""
        return self._run(ops.function(function_id))

    def versions(self, function_id: str) -> list[Version]:
        """The function's versions, oldest first."""
        return self._run(ops.versions(function_id))

    def rollback(self, function_id: str, version: int) -> Function:
        """Point ``latest`` at ``version``; the function's ``id`` and ``latest_version``."""
        return self._run(ops.rollback(function_id, version))

    def delete(self, function_id: str) -> None:
        """Delete the function, every version and alias of it."""
        self._run(ops.delete(function_id))

    def logs(
        self, function_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[Execution]:
        """Recent executions of the function with their logs, newest first; ``before`` an
        execution id continues from there."""
        return self._run(ops.logs(function_id, limit=limit, before=before))

    def set_alias(
        self,
        function_id: str,
        name: str,
        version: int,
        weights: Mapping[int, float] | Mapping[str, float] | None = None,
        *,
        description: str | None = None,
    ) -> Alias:
        """Create or move the alias ``name`` to ``version``; ``weights`` (``{5: 0.1}``) send
        those shares of the calls of ``id:name`` to other versions."""
        return self._run(ops.set_alias(function_id, name, version, weights, description))

    def aliases(self, function_id: str) -> list[Alias]:
        """The function's aliases, by name."""
        return self._run(ops.aliases(function_id))

    def delete_alias(self, function_id: str, name: str) -> None:
        self._run(ops.delete_alias(function_id, name))

    # Events, graphs, review tasks.

    def publish(self, type: str, data: Any = None, *, idempotency_key: str | None = None) -> Event:
        """Publish an event (``POST /events``): the functions whose triggers match start."""
        return self._run(ops.publish(type, data, idempotency_key=idempotency_key))

    def deploy_graph(self, document: Mapping[str, Any]) -> Graph:
        """Deploy a dependency graph (``{"id", "nodes": {NAME: {"function", "needs"?,
        "input"?}}, "output"?}``) as a new version."""
        return self._run(ops.deploy_graph(document))

    def run_graph(
        self,
        graph_id: str,
        input: Any = None,
        *,
        base_run: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        poll_s: float = 0.5,
    ) -> GraphRun:
        """Run the graph's latest version on ``input``. With ``wait`` (the default), the run
        once it no longer runs: ended, or ``awaiting_human`` (``wait(run)`` follows it to its
        end); without, at once, ``running``. ``base_run``: reuse what did not change since
        that run."""
        return self._run(ops.run_graph(
            graph_id, input, base_run=base_run, wait=wait, timeout=timeout, poll_s=poll_s
        ))

    def graph_run(self, graph_id: str, run_id: str) -> GraphRun:
        """A run as it is now."""
        return self._run(ops.graph_run(graph_id, run_id))

    def tasks(self, status: str = "pending") -> list[Task]:
        """Review tasks: ``pending`` (default), ``completed``, ``rejected``, ``expired``,
        ``cancelled`` or ``all``."""
        return self._run(ops.tasks(status))

    def task(self, task_id: str | Task) -> Task:
        return self._run(ops.task(task_id))

    def claim(self, task_id: str | Task) -> Task:
        """Reserve the task for this key (others get ``TaskClaimed`` until it is released)."""
        return self._run(ops.claim(task_id))

    def release(self, task_id: str | Task) -> Task:
        return self._run(ops.release(task_id))

    def complete(self, task_id: str | Task, output: Any) -> Execution:
        """Answer the task with ``output`` (checked against the function's output schema:
        ``InvalidOutput``); the execution, completed by the human tier."""
        return self._run(ops.complete(task_id, output))

    def reject(self, task_id: str | Task, reason: str) -> Execution:
        """Reject the task; the execution, failed."""
        return self._run(ops.reject(task_id, reason))


class AsyncClient(_Base):
    """``Client``'s methods as coroutines, over ``httpx.AsyncClient`` (``stream`` is an async
    iterator). ``async with AsyncClient() as tg: ...``, or ``await tg.close()``."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float | None = ops.DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, key, timeout, headers, env)
        self._http = httpx.AsyncClient(**self._options)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _drive(self, operation: Operation[Any]) -> AsyncIterator[Any]:
        answer: Any = None
        error: TiergateError | None = None
        events: _AsyncEvents | None = None  # the stream a Listen step opened
        try:
            while True:
                step = self._advance(operation, answer, error)
                answer, error = None, None
                if isinstance(step, _Done):
                    yield step
                    return
                if isinstance(step, Emit):
                    yield step
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    try:
                        if isinstance(step, Listen):
                            if events is None:
                                events = _AsyncEvents(step.request, self.url)
                                await events.open(self._http)
                            answer = await events.next()
                        else:
                            answer = await self._send(step)
                    except TiergateError as exc:
                        error = exc  # raised inside the operation, where it came from
        finally:
            if events is not None:
                await events.close()

    async def _send(self, request: Request) -> Answer:
        try:
            response = await self._http.request(**ops.httpx_arguments(request))
        except httpx.HTTPError as exc:
            raise ops.transport_error(exc, self.url, request) from exc
        return ops.answer_of(response)

    async def _run(self, operation: Operation[T]) -> T:
        async for step in self._drive(operation):
            if isinstance(step, _Done):
                return cast(T, step.value)
        raise AssertionError("an operation ended without a result")  # pragma: no cover

    async def _iterate(self, operation: Operation[Any]) -> AsyncIterator[Any]:
        async for step in self._drive(operation):
            if isinstance(step, Emit):
                yield step.value

    async def invoke(
        self, ref: str, input: Any = None, **options: Unpack[ops.InvokeOptions]
    ) -> Execution:
        """See ``Client.invoke``."""
        return await self._run(ops.invoke(ref, input, **options))

    async def invoke_async(
        self, ref: str, input: Any = None, **options: Unpack[ops.InvokeOptions]
    ) -> Execution:
        """See ``Client.invoke_async``."""
        return await self._run(ops.invoke(ref, input, respond_async=True, **options))

    @overload
    async def wait(
        self, target: str | Execution, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> Execution: ...

    @overload
    async def wait(
        self, target: GraphRun, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> GraphRun: ...

    async def wait(
        self,
        target: str | Execution | GraphRun,
        *,
        timeout: float | None = None,
        poll_s: float = 0.5,
    ) -> Execution | GraphRun:
        """See ``Client.wait``."""
        result: Execution | GraphRun = await self._run(
            ops.wait(target, timeout=timeout, poll_s=poll_s)
        )
        return result

    def stream(
        self, target: str | Execution, *, timeout: float | None = None, poll_s: float = 0.5
    ) -> AsyncIterator[Execution]:
        """See ``Client.stream``: ``async for execution in tg.stream(id): ...``."""
        return self._iterate(ops.stream(target, timeout=timeout, poll_s=poll_s))

    def events(self, target: str | Execution) -> AsyncIterator[StreamEvent]:
        """See ``Client.events``."""
        return self._iterate(ops.events(target))

    def follow_logs(self, function_id: str) -> AsyncIterator[StreamEvent]:
        """See ``Client.follow_logs``."""
        return self._iterate(ops.follow_logs(function_id))

    async def execution(self, execution_id: str) -> Execution:
        return await self._run(ops.execution(execution_id))

    async def cancel(self, target: str | Execution) -> Execution:
        return await self._run(ops.cancel(target))

    async def deploy(
        self,
        source: Source,
        *,
        id: str | None = None,
        runtime: str | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """See ``Client.deploy``. The files are read, and a directory zipped, in the calling
        thread, before the upload."""
        return await self._run(ops.deploy(
            source, id=id, runtime=runtime, manifest=manifest, known=self._suffixes
        ))

    async def runtimes(self) -> list[RuntimeInfo]:
        """See ``Client.runtimes``."""
        return await self._run(ops.runtimes())

    async def functions(self) -> list[Function]:
        return await self._run(ops.functions())

    async def function(self, function_id: str) -> Function:
        return await self._run(ops.function(function_id))

    async def versions(self, function_id: str) -> list[Version]:
        return await self._run(ops.versions(function_id))

    async def rollback(self, function_id: str, version: int) -> Function:
        return await self._run(ops.rollback(function_id, version))

    async def delete(self, function_id: str) -> None:
        await self._run(ops.delete(function_id))

    async def logs(
        self, function_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[Execution]:
        return await self._run(ops.logs(function_id, limit=limit, before=before))

    async def set_alias(
        self,
        function_id: str,
        name: str,
        version: int,
        weights: Mapping[int, float] | Mapping[str, float] | None = None,
        *,
        description: str | None = None,
    ) -> Alias:
        return await self._run(ops.set_alias(function_id, name, version, weights, description))

    async def aliases(self, function_id: str) -> list[Alias]:
        return await self._run(ops.aliases(function_id))

    async def delete_alias(self, function_id: str, name: str) -> None:
        await self._run(ops.delete_alias(function_id, name))

    async def publish(
        self, type: str, data: Any = None, *, idempotency_key: str | None = None
    ) -> Event:
        return await self._run(ops.publish(type, data, idempotency_key=idempotency_key))

    async def deploy_graph(self, document: Mapping[str, Any]) -> Graph:
        return await self._run(ops.deploy_graph(document))

    async def run_graph(
        self,
        graph_id: str,
        input: Any = None,
        *,
        base_run: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        poll_s: float = 0.5,
    ) -> GraphRun:
        """See ``Client.run_graph``."""
        return await self._run(ops.run_graph(
            graph_id, input, base_run=base_run, wait=wait, timeout=timeout, poll_s=poll_s
        ))

    async def graph_run(self, graph_id: str, run_id: str) -> GraphRun:
        return await self._run(ops.graph_run(graph_id, run_id))

    async def tasks(self, status: str = "pending") -> list[Task]:
        return await self._run(ops.tasks(status))

    async def task(self, task_id: str | Task) -> Task:
        return await self._run(ops.task(task_id))

    async def claim(self, task_id: str | Task) -> Task:
        return await self._run(ops.claim(task_id))

    async def release(self, task_id: str | Task) -> Task:
        return await self._run(ops.release(task_id))

    async def complete(self, task_id: str | Task, output: Any) -> Execution:
        return await self._run(ops.complete(task_id, output))

    async def reject(self, task_id: str | Task, reason: str) -> Execution:
        return await self._run(ops.reject(task_id, reason))
