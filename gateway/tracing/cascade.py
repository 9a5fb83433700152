"""Spans below an execution's: one per tier attempt and one per runtime call.

These are subclasses the wiring builds only when the gateway traces, so the plain
classes stay as they were and cost nothing more when it does not. Spans carry names, ids,
outcomes and error codes; never inputs, outputs or log lines, and an attempt's error message
only as the engine recorded it (with the call's secrets redacted).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from plugins.errors import AttemptFailure
from tiers.base import AwaitingHuman, Invocation, TierResult
from tiers.code import CodeTier
from tiers.engine import AttemptReport, CascadeEngine, Outcome, Step
from tiers.ports import ToolGateway


class TracedCascadeEngine(CascadeEngine):
    """The cascade, with a ``tier <name>`` span around each attempt."""

    def __init__(self, report_attempt: AttemptReport, tracer: Tracer) -> None:
        super().__init__(report_attempt)
        self._tracer = tracer

    async def _attempt(self, inv: Invocation, step: Step, attempt: int) -> Outcome:
        name = step.tier.name
        attributes: dict[str, str | int] = {"tiergate.tier": name, "tiergate.attempt": attempt}
        with self._tracer.start_as_current_span(
            f"tier {name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,  # the attempt's own status says
        ) as span:
            try:
                outcome = await super()._attempt(inv, step, attempt)
            except AwaitingHuman as waiting:
                span.set_attributes(
                    {"tiergate.outcome": "awaiting_human", "tiergate.task_id": waiting.task_id}
                )
                raise
            except BaseException:
                _describe_attempt(span, inv, name, attempt)
                raise
            _describe_attempt(span, inv, name, attempt)
            return outcome


def _describe_attempt(span: Span, inv: Invocation, tier: str, number: int) -> None:
    """The attempt as the engine recorded it (the last of this tier and number: parallel tiers
    record theirs as they end)."""
    for recorded in reversed(inv.attempts):
        if recorded.tier == tier and recorded.attempt == number:
            span.set_attribute("tiergate.outcome", recorded.status)
            if recorded.code:
                span.set_attribute("tiergate.error_code", recorded.code)
            if recorded.status in ("failed", "timeout"):
                span.set_status(Status(StatusCode.ERROR, recorded.error))
            return


def annotate_current_span(name: str, value: str) -> None:
    """``Call.annotate``: what a runtime says of a call, on the call's ``runtime`` span."""
    trace.get_current_span().set_attribute(f"tiergate.{name}", value)


class TracedCodeTier(CodeTier):
    """The code tier, with a ``runtime <name>`` span around each runtime call; functions the code
    calls (``context.invoke``) run under that span, whichever task the runtime answers them in."""

    def __init__(self, calls: ToolGateway | None, tracer: Tracer) -> None:
        super().__init__(calls, annotate=annotate_current_span)
        self._tracer = tracer
        self._spans: dict[str, Span] = {}  # execution id → its runtime call's span

    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        runtime = inv.fn.runtime.name if inv.fn.runtime is not None else "none"
        with self._tracer.start_as_current_span(
            f"runtime {runtime}",
            attributes={"tiergate.runtime": runtime},
            record_exception=False,  # a failure's message is redacted later, by the engine
            set_status_on_exception=False,
        ) as span:
            self._spans[inv.execution_id] = span
            try:
                return await super().run(inv, timeout_s)
            except AttemptFailure as failure:
                span.set_attribute("tiergate.outcome", failure.status)
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                self._spans.pop(inv.execution_id, None)

    async def _invoke(self, inv: Invocation, made: list[int], ref: str, body: bytes) -> bytes:
        span = self._spans.get(inv.execution_id)
        if span is None:
            return await super()._invoke(inv, made, ref, body)
        with trace.use_span(span, end_on_exit=False):
            return await super()._invoke(inv, made, ref, body)
