"""The one invoke path. HTTP (sync and async), agentic tool calls and finished human tasks all come
through here, so limits, records, metrics and tenancy apply the same way to each."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import REPORTED, BadRequest, ExecutionCancelled, InvalidInput, NotFound
from gateway.functions.registry import FunctionRef
from gateway.ids import new_id, new_trace_id, process_id
from gateway.invoke.admission import Admission
from gateway.invoke.execution import ExecutionRecord, FinalStatus, egress_counts, log_lines
from gateway.invoke.finish import Finisher
from gateway.invoke.live import LiveHub
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.invoke.result_cache import ResultCache, cache_key
from gateway.times import iso
from plugins.errors import QueueFull
from plugins.runtime import LogEntry
from tiers.base import AwaitingHuman, Invocation
from tiers.engine import CascadeEngine, CascadeOptions
from tiers.errors import AttemptCancelled, InvocationError, InvocationTimeout, ToolCallFailed
from tiers.function import LoadedFunction

if TYPE_CHECKING:
    from gateway.tracing import ExecutionSpan
    from gateway.tracing.otel import Tracing

SecretResolver = Callable[[str, tuple[str, ...]], Awaitable[Mapping[str, str]]]


INVOKED = {"kind": "invoke"}
"""Who the code is told asked for a call that names no key and no cause (``context.caller``:
the API key, else what started the call, else this)."""


@dataclass
class InvokeOptions:
    overrides: Mapping[str, Any] = field(default_factory=dict)
    respond_async: bool = False
    trace_id: str | None = None
    depth: int = 0
    callback_url: str | None = None
    never_human: bool = False
    caller: dict[str, Any] | None = None
    custom: Any = None
    cause: dict[str, Any] | None = None
    # While the gateway traces: the W3C traceparent of the span the execution runs in, which
    # its record keeps (its queued run, its chains and its record's writes join that span).
    traceparent: str | None = None

    def within(self, span: ExecutionSpan) -> InvokeOptions:
        """These options for an execution that runs in ``span`` (its trace is the span's)."""
        return dataclasses.replace(self, trace_id=span.trace_id, traceparent=span.traceparent)


@dataclass(slots=True)
class Prepared:
    """A call ready to run: its invocation, cascade options and pending record; ``cache_key``
    where its result may come from (and go to) the result cache."""

    inv: Invocation
    cascade: CascadeOptions
    record: ExecutionRecord
    cache_key: str | None = None


@dataclass
class _Running:
    task: asyncio.Task[Any]
    tenant: str
    inv: Invocation
    cancel_requested: bool = False


class Invoker:
    def __init__(
        self,
        loader: Loader,
        admission: Admission,
        engine: CascadeEngine,
        records: ExecutionRecords,
        resolve_secrets: SecretResolver,
        finisher: Finisher,
        *,
        record_input_bytes: int,
        result_cache: ResultCache | None = None,
        live: LiveHub | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._loader = loader
        self._admission = admission
        self._engine = engine
        self._records = records
        self._resolve_secrets = resolve_secrets
        self._finisher = finisher
        self._record_input_bytes = record_input_bytes
        self._cache = result_cache
        self._live = live
        self._tracing = tracing
        self._owner = process_id()
        self._closing = False
        self._running: dict[str, _Running] = {}

    async def invoke(
        self, tenant: str, ref: FunctionRef, body: bytes, options: InvokeOptions
    ) -> ExecutionRecord:
        """Run a call here and now; returns its finished record (or the record waiting for a
        person). Asynchronous calls are accepted by ``gateway.compose`` from ``prepare``."""
        prepared = await self.prepare(tenant, ref, body, options)
        if prepared.cache_key is not None:
            return await self._execute_cached(prepared)
        return await self._execute(prepared.inv, prepared.cascade, prepared.record)

    async def prepare(
        self, tenant: str, ref: FunctionRef, body: bytes, options: InvokeOptions
    ) -> Prepared:
        """Everything a call needs before it runs: the function loaded, the input checked, the
        cascade options and a new pending record. Refusals (unknown function, bad input, bad
        options) raise here, before anything is recorded."""
        fn, cache_hit = await self._loader.get(tenant, ref.function_id, ref.version, ref.alias)
        value, body = _parse_input(body, fn)
        cascade = _cascade_options(fn, options.overrides)
        if options.never_human:
            cascade = dataclasses.replace(cascade, skip_tiers=cascade.skip_tiers | {"human"})
        record = self._new_record(fn, body, value, options, cache_hit)
        record.alias = ref.alias
        inv = Invocation(
            fn,
            body,
            value,
            record.execution_id,
            record.trace_id,
            tenant,
            depth=options.depth,
            caller=record.caller or record.cause or INVOKED,
            custom=record.custom,
            live=self._live,
        )
        prepared = Prepared(inv, cascade, record)
        if fn.result_cache is not None:
            self._consult_cache(prepared, options.overrides)
        return prepared

    async def resume(
        self, record: ExecutionRecord, body: bytes, overrides: Mapping[str, Any]
    ) -> Prepared:
        """A call accepted earlier (queued work), ready to run (again) under its own record: the
        attempts of its earlier runs stay, and this run's are added to them."""
        fn, cache_hit = await self._loader.get(record.tenant, record.function_id, record.version)
        value, body = _parse_input(body, fn)
        record.cache_hit, record.cold_start = cache_hit, not cache_hit
        record.owner = self._owner
        inv = Invocation(
            fn,
            body,
            value,
            record.execution_id,
            record.trace_id,
            record.tenant,
            attempts=list(record.attempts),
            caller=record.caller or record.cause or INVOKED,
            custom=record.custom,
            live=self._live,
        )
        prepared = Prepared(inv, _cascade_options(fn, overrides), record)
        if fn.result_cache is not None:
            self._consult_cache(prepared, overrides)
        return prepared

    async def execute(self, prepared: Prepared) -> ExecutionRecord:
        """Run a prepared call to its end (or to a person's task)."""
        if prepared.cache_key is not None:
            return await self._execute_cached(prepared)
        return await self._execute(prepared.inv, prepared.cascade, prepared.record)

    def _consult_cache(self, prepared: Prepared, overrides: Mapping[str, Any]) -> None:
        """A version with ``cache``: the call looks in the result cache, unless the caller
        overrode the cascade (a caller asking for other tiers wants them to run)."""
        prepared.record.cache_hit_result = False
        if not overrides and self._cache is not None:
            prepared.cache_key = cache_key(prepared.inv.fn, prepared.inv.input)

    async def _execute_cached(self, prepared: Prepared) -> ExecutionRecord:
        """Answer from the result cache when it holds this input's result: the execution ends
        ``completed`` with that output and runs no tier. Otherwise run it, and keep its result
        when the code tier produced it (the other tiers' outputs are not deterministic)."""
        inv, record, key = prepared.inv, prepared.record, prepared.cache_key
        policy, cache = inv.fn.result_cache, self._cache
        assert key is not None and policy is not None and cache is not None
        inv.started = time.monotonic()
        hit = await cache.get(key, policy)
        if hit is not None:
            record.cache_hit_result = True
            source = {"execution_id": hit.execution_id, "stored_at": iso(hit.stored_at)}
            return self._finisher.finish(
                record,
                "completed",
                run=inv,
                tier=hit.tier,
                output=hit.output,
                details={"result_cache": source},
            )
        record = await self._execute(inv, prepared.cascade, record)
        if record.status == "completed" and record.tier == "code":
            await cache.put(key, policy, record)
        return record

    async def _execute(
        self, inv: Invocation, cascade: CascadeOptions, record: ExecutionRecord
    ) -> ExecutionRecord:
        task = asyncio.current_task()
        assert task is not None
        running = self._running[inv.execution_id] = _Running(task, inv.tenant, inv)
        admitted = False
        try:
            # A call made from a running execution (an agent's tool, context.invoke) runs under
            # its caller's slot: waiting for one of its own while the caller holds one would let
            # a tenant's nested calls fill every slot and wait on each other until their
            # deadlines. Callers wait one call at a time, nested at most a few deep, so these
            # stay bounded by the admitted ones.
            if inv.depth == 0 or record.durable:
                record.queue_ms = await self._admission.enter(inv.fn)
                admitted = True
            record.status = "running"
            self._records.save(record)
            inv.started = time.monotonic()
            if inv.fn.secrets:
                inv.secrets = await self._resolve_secrets(inv.tenant, inv.fn.secrets)
            outcome = await self._engine.run(inv, cascade)
            return self._finisher.finish(
                record,
                "completed",
                run=inv,
                tier=outcome.tier,
                output=outcome.output,
                details=outcome.details,
            )
        except AwaitingHuman as waiting:
            record.status = "awaiting_human"
            record.tier = "human"
            record.task_id = waiting.task_id
            record.attempts = inv.attempts
            record.logs = log_lines(inv.final_logs())
            if "network" in inv.fn.manifest:
                record.egress = egress_counts(inv.metrics)
            self._records.save(record)
            # A reviewer on any instance may answer the task at once: the record must be there.
            await self._records.flush_soon()
            self._finisher.awaiting(record, inv.fn)
            return record
        except QueueFull:
            raise  # refused before anything ran: nothing to record for a sync call
        except InvocationError as exc:
            status: FinalStatus = "timeout" if isinstance(exc, InvocationTimeout) else "failed"
            self._finisher.finish(record, status, run=inv, error=exc.detail)
            exc.extensions.setdefault("execution_id", inv.execution_id)
            raise
        except (asyncio.CancelledError, AttemptCancelled):
            if record.durable and self._closing and not running.cancel_requested:
                record.status = "pending"  # the work queue delivers it again
                record.attempts = inv.attempts
                self._records.save(record)
                raise
            if running.cancel_requested:
                reason = "cancelled by request"
            elif self._closing:
                reason = "the gateway stopped before the execution finished"
            else:
                reason = "the client went away"
            self._finisher.finish(record, "cancelled", run=inv, error=reason)
            if running.cancel_requested and task.uncancel() == 0:
                raise ExecutionCancelled(
                    "the execution was cancelled", execution_id=inv.execution_id
                ) from None
            raise
        except BaseException as exc:
            self._finisher.finish(record, "failed", run=inv, error=str(exc))
            raise
        finally:
            if admitted:
                self._admission.leave(inv.fn)
            self._running.pop(inv.execution_id, None)

    def _new_record(
        self,
        fn: LoadedFunction,
        body: bytes,
        value: Any,
        options: InvokeOptions,
        cache_hit: bool,
    ) -> ExecutionRecord:
        recorded_input: Any = value
        if len(body) > self._record_input_bytes:
            recorded_input = {"truncated": True, "size": len(body)}
        return ExecutionRecord(
            execution_id=new_id(),
            tenant=fn.tenant,
            function_id=fn.function_id,
            version=fn.version,
            trace_id=options.trace_id or new_trace_id(),
            started_at=time.time(),
            input=recorded_input,
            cold_start=not cache_hit,
            cache_hit=cache_hit,
            callback_url=options.callback_url,
            owner=self._owner,
            caller=options.caller,
            custom=options.custom,
            cause=options.cause,
            traceparent=options.traceparent,
        )

    async def load_tool(self, tenant: str, function_id: str) -> LoadedFunction | None:
        """A function an agent may call, loaded (for its description and input schema); None
        when the tenant has none by that name (``tiers.ports.ToolGateway``)."""
        try:
            fn, _ = await self._loader.get(tenant, function_id, None)
        except NotFound:
            return None
        return fn

    async def call_tool(
        self,
        tenant: str,
        ref: str,
        body: bytes,
        depth: int,
        trace_id: str,
        cause: Mapping[str, Any] | None = None,
    ) -> Any:
        """An agent's tool call or a function's ``context.invoke``: this same invoke path, never
        reaching a human tier."""
        options = InvokeOptions(
            trace_id=trace_id,
            depth=depth,
            never_human=True,
            cause=None if cause is None else dict(cause),
        )
        try:
            if self._tracing is None:
                record = await self.invoke(tenant, FunctionRef.parse(ref), body, options)
            else:
                with self._tracing.execution(
                    "invoke", tenant=tenant, function_id=ref, trace_id=trace_id
                ) as span:
                    record = await self.invoke(
                        tenant, FunctionRef.parse(ref), body, options.within(span)
                    )
                    span.ended(record)
        except REPORTED as exc:
            raise ToolCallFailed(exc.code, exc.detail) from None
        return record.output

    def logs_so_far(self, execution_id: str) -> list[LogEntry] | None:
        """The entries a running execution of this process kept until now (a copy, for a
        stream that opens while it runs); None when it does not run here."""
        running = self._running.get(execution_id)
        return None if running is None else list(running.inv.logs)

    def stop(self, execution_id: str) -> asyncio.Task[Any] | None:
        """Ask a running execution of this process to stop; None when it is not running here."""
        running = self._running.get(execution_id)
        if running is None:
            return None
        running.cancel_requested = True
        running.task.cancel()
        return running.task

    async def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution of this process and wait for it; False when not here."""
        task = self.stop(execution_id)
        if task is None:
            return False
        await asyncio.wait([task], timeout=5)
        return True

    def closing(self) -> None:
        """The gateway is stopping: executions cancelled from now on were stopped by it."""
        self._closing = True


def _parse_input(body: bytes, fn: LoadedFunction) -> tuple[Any, bytes]:
    if not body.strip():
        body = b"null"
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"the input is not valid JSON: {exc}", errors=[{"path": "/", "message": str(exc)}]
        ) from None
    errors = fn.input_check.errors(value) if fn.input_check.active else None
    if errors:
        raise InvalidInput(
            f"the input does not match the function's input_schema ({len(errors)} error(s))",
            errors=errors,
        )
    return value, body


def _cascade_options(fn: LoadedFunction, overrides: Mapping[str, Any]) -> CascadeOptions:
    if not overrides:
        cached = fn.extras.get("cascade")
        if cached is None:
            cached = fn.extras["cascade"] = CascadeOptions.merge(fn.cascade, {})
        return cached
    try:
        return CascadeOptions.merge(fn.cascade, overrides)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid cascade options: {exc}") from None

