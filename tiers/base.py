"""What a tier is given and what it gives back.

A tier is a small class with one async method. It raises an ``AttemptFailure`` subclass when it
cannot answer; the engine owns retries, timeouts, output checks, escalation and the attempt record.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from plugins.logs import LogBudget
from plugins.runtime import LogEntry

from .attempt import Attempt
from .function import LoadedFunction
from .ports import LiveEvents

TIER_ORDER = ("code", "generative", "agentic", "human")


@dataclass
class Invocation:
    """One execution as the tiers see it. ``attempts`` grows as tiers are tried."""

    fn: LoadedFunction
    input_bytes: bytes
    input: Any
    execution_id: str
    trace_id: str
    tenant: str
    depth: int = 0
    secrets: Mapping[str, str] = field(default_factory=dict)
    caller: Mapping[str, Any] = field(default_factory=dict)
    custom: Any = None
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    log_budget: LogBudget | None = None  # made when the first entry comes (most calls log nothing)
    metrics: dict[str, float] = field(default_factory=dict)  # runtimes' counts, summed over tries
    live: LiveEvents | None = None  # where live events go (``GET /executions/{id}/events``)

    def redact(self, text: str) -> str:
        """``text`` with this call's secret values replaced (longest first, so a secret that
        holds another is replaced whole). Whatever a tier says enters the execution through
        ``add_logs`` and the engine's attempt record, both redacted, so answers, problem details,
        records, review tasks and model prompts never carry a secret."""
        if not self.secrets:
            return text
        for value in sorted(self.secrets.values(), key=len, reverse=True):
            if value:
                text = text.replace(value, "[redacted]")
        return text

    def add_logs(self, entries: Iterable[LogEntry]) -> None:
        """Keep what fits the execution's log caps, whatever the runtime sent, redacted before
        it is cut (a cut must not leave half a secret)."""
        for entry in entries:
            self.add_log(entry)

    def add_log(self, entry: LogEntry) -> None:
        """One entry, as ``add_logs`` keeps it; also what a runtime hands entries to as the code
        writes them (``Call.on_log``), so the execution keeps them even if the call never
        returns, and whoever follows it live (``live``) sees them at once."""
        if self.log_budget is None:
            self.log_budget = LogBudget()
        message = self.log_budget.fit(self.redact(entry.message))
        if message is None:
            return
        if message is not entry.message:
            entry = entry._replace(message=message)
        self.logs.append(entry)
        live = self.live
        if live is not None and live.followers:
            function = (self.tenant, self.fn.function_id)
            live.log(self.execution_id, function, len(self.logs) - 1, entry)

    def add_metrics(self, metrics: Mapping[str, float]) -> None:
        """Add what one attempt counted (``CallResult.metrics``, ``AttemptFailure.metrics``,
        e.g. ``egress.allowed``) to the execution's sums."""
        for name, value in metrics.items():
            self.metrics[name] = self.metrics.get(name, 0) + value

    def final_logs(self) -> list[LogEntry]:
        """The kept entries, and one last entry saying what the caps dropped."""
        summary = self.log_budget.summary() if self.log_budget is not None else None
        if summary is None:
            return self.logs
        return [*self.logs, LogEntry(time.time(), "log", summary, "WARNING")]


class AwaitingHuman(Exception):
    """The cascade handed the execution to a person, through the review task ``task_id``."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"awaiting human review (task {task_id})")
        self.task_id = task_id


@dataclass(frozen=True, slots=True)
class TierResult:
    """What a tier produced: raw JSON ``output`` bytes, or an already parsed ``value``;
    ``metrics``: what the runtime counted (``CallResult.metrics``)."""

    output: bytes | None = None
    value: Any = None
    logs: Sequence[LogEntry] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


class Tier(abc.ABC):
    name: ClassVar[str]
    default_timeout_ms: ClassVar[int]
    ends_by_deadline: ClassVar[bool] = False
    """True when the tier itself ends every try by its timeout, so the engine need not (the code
    tier: runtimes enforce ``Call.deadline``; an asyncio timer per call costs microseconds)."""

    @abc.abstractmethod
    def configured(self, fn: LoadedFunction) -> bool:
        """Whether this function takes part in this tier at all."""

    @abc.abstractmethod
    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        """Try once; raise ``AttemptFailure`` (``FunctionFailed``, ``FunctionTimeout``, …)."""
