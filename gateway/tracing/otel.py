"""The OpenTelemetry side of tracing: the tracer provider, its OTLP/HTTP exporter, and the span
each execution runs in. Imported only when the gateway traces (``gateway.tracing``).

The SDK configures itself from OpenTelemetry's standard variables (``OTEL_EXPORTER_OTLP_*`` for
where and how spans go, ``OTEL_TRACES_SAMPLER``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``), read once here at start-up.

An execution's ``trace_id`` is its span's trace id. Its span's parent is, in this order: the span
it was started under (a caller's ``traceparent``, the execution that chained it, the request that
queued it), else the current span (an agent's tool call, a function calling a function), else
none; an execution that already has a trace id but no span to join (a graph run's nodes, work
queued while tracing was off) starts a root span in that trace rather than a new trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.ids import process_id
from gateway.tracing.cascade import TracedCascadeEngine, TracedCodeTier
from gateway.tracing.stores import TracedKV, TracedObjects
from storage.kv.base import KV
from storage.objects.base import ObjectStore
from tiers.code import CodeTier
from tiers.engine import AttemptReport, CascadeEngine
from tiers.ports import ToolGateway

_PROPAGATOR = TraceContextTextMapPropagator()
_chosen_trace_id: contextvars.ContextVar[int] = contextvars.ContextVar(
    "tiergate_chosen_trace_id", default=0
)


class _TraceIds(RandomIdGenerator):
    """Random ids, except a root span's trace id when the execution already has one."""

    def generate_trace_id(self) -> int:
        return _chosen_trace_id.get() or super().generate_trace_id()


class Executed(Protocol):
    """What an execution's span reports of its record when it ends (``ExecutionRecord``)."""

    @property
    def execution_id(self) -> str: ...
    @property
    def function_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def tenant(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def tier(self) -> str | None: ...
    @property
    def cache_hit(self) -> bool: ...


class Written(Executed, Protocol):
    """A record as the execution store wrote it: the span it belongs under."""

    @property
    def traceparent(self) -> str | None: ...


@dataclass(slots=True)
class ExecutionSpan:
    """The span an execution runs in; ``ended`` describes it from the execution's record."""

    span: Span
    trace_id: str
    traceparent: str

    def ended(self, record: Executed) -> None:
        self.span.set_attributes(
            {
                "tiergate.execution_id": record.execution_id,
                "tiergate.function_id": record.function_id,
                "tiergate.version": record.version,
                "tiergate.tenant": record.tenant,
                "tiergate.status": record.status,
                "tiergate.tier": record.tier or "none",
                "tiergate.cache_hit": record.cache_hit,
            }
        )
        if record.status in ("failed", "timeout"):
            self.span.set_status(Status(StatusCode.ERROR))


class Tracing:
    """One gateway process's tracer, exporting in batches from a thread of the SDK's, and the
    traced versions of what the wiring builds (the cascade, the code tier, the stores)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self.tracer = provider.get_tracer("tiergate", _version())

    @classmethod
    def start(cls) -> Tracing:
        provider = TracerProvider(resource=_resource(), id_generator=_TraceIds())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def cascade_engine(self, report_attempt: AttemptReport) -> CascadeEngine:
        return TracedCascadeEngine(report_attempt, self.tracer)

    def code_tier(self, calls: ToolGateway | None) -> CodeTier:
        return TracedCodeTier(calls, self.tracer)

    def kv(self, kv: KV) -> KV:
        return TracedKV(kv, self.tracer)

    def objects(self, objects: ObjectStore) -> ObjectStore:
        return TracedObjects(objects, self.tracer)

    def shutdown(self) -> None:
        """Export what is left (blocking, up to the exporter's timeout)."""
        self._provider.shutdown()

    @contextmanager
    def execution(
        self,
        name: str,
        *,
        tenant: str,
        function_id: str,
        parent: str | None = None,
        trace_id: str | None = None,
        server: bool = False,
    ) -> Iterator[ExecutionSpan]:
        """The span of one execution (``invoke``: a call; ``execute``: a queued call's run),
        current while the block runs. ``parent``: a W3C ``traceparent`` to join; ``trace_id``:
        the trace the execution belongs to already. A refusal or failure raised out of the block
        is described on the span (its API ``code``; an error when the gateway's own, 5xx).
        ``server``: the span of an HTTP request (kind SERVER), else an internal one."""
        context, chosen = _parent(parent, trace_id)
        token = _chosen_trace_id.set(chosen) if chosen else None
        try:
            attributes = {"tiergate.tenant": tenant, "tiergate.function_id": function_id}
            kind = SpanKind.SERVER if server else SpanKind.INTERNAL
            span = self.tracer.start_span(name, context, kind, attributes)
        finally:
            if token is not None:
                _chosen_trace_id.reset(token)
        ids = span.get_span_context()
        own = f"{ids.trace_id:032x}"
        handle = ExecutionSpan(span, own, f"00-{own}-{ids.span_id:016x}-{ids.trace_flags:02x}")
        # what went wrong is described here (``_refused``), not by ``use_span``
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield handle
            except BaseException as exc:
                _refused(span, exc)
                raise

    def records_written(self, records: Iterable[Written], started_ns: int) -> None:
        """One ``execution_record write`` span per record of a batch the execution store just
        wrote, under the span of the execution it records (a batch serves many executions, each
        in its own trace)."""
        ended_ns = time.time_ns()
        for record in records:
            if record.traceparent is None:
                continue
            context = _PROPAGATOR.extract({"traceparent": record.traceparent})
            span = self.tracer.start_span(
                "execution_record write",
                context,
                SpanKind.CLIENT,
                {"tiergate.execution_id": record.execution_id, "tiergate.status": record.status},
                start_time=started_ns,
            )
            span.end(ended_ns)


def _parent(parent: str | None, trace_id: str | None) -> tuple[Context | None, int]:
    """The context to start an execution's span in (None: the current one), and the trace id
    its root span must have (0: any)."""
    if parent:
        context = _PROPAGATOR.extract({"traceparent": parent})
        if trace.get_current_span(context).get_span_context().is_valid:
            return context, 0
    current = trace.get_current_span().get_span_context()
    wanted = int(trace_id, 16) if trace_id else 0
    if current.is_valid and wanted in (0, current.trace_id):
        return None, 0
    return Context(), wanted


def _refused(span: Span, exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError):  # the client went away, or a cancel
        span.set_attribute("tiergate.status", "cancelled")
        return
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        span.set_attribute("tiergate.error_code", code)
    execution_id = getattr(exc, "extensions", {}).get("execution_id")
    if execution_id:
        span.set_attribute("tiergate.execution_id", execution_id)
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or status >= 500:
        span.set_status(
            Status(StatusCode.ERROR, getattr(exc, "detail", None) or type(exc).__name__)
        )


def _resource() -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, else ``service.name`` tiergate; and the
    gateway process (``service.instance.id``, as executions' ``owner`` names it)."""
    resource = Resource.create({SERVICE_INSTANCE_ID: process_id()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "tiergate"}))
    return resource


def _version() -> str:
    try:
        return version("tiergate")
    except PackageNotFoundError:
        return "unknown"
