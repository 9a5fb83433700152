"""``ExecutionRecord``: one execution, from the moment it is accepted until it ends.

The invoker builds it once per call and changes it in place while the call runs; ``Finisher``
sets its final fields, whichever way it ends. It is a dataclass everywhere in the gateway and
becomes JSON only at two edges: the execution store (``records.py``; orjson writes the dataclass
as it stands, ``from_json`` reads it back) and the API (``http/views.py`` renders the documents).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NotRequired, TypedDict

from gateway.times import iso
from plugins.runtime import LogEntry
from tiers.attempt import Attempt

Status = Literal[
    "pending", "running", "awaiting_human", "completed", "failed", "timeout", "cancelled"
]
FinalStatus = Literal["completed", "failed", "timeout", "cancelled"]
ReviewAction = Literal["completed", "rejected", "expired", "cancelled"]


class LogLine(TypedDict):
    """One log entry as records keep it and the API shows it (``ts`` already ISO-8601)."""

    ts: str | None
    stream: str
    message: str
    level: NotRequired[str]


def log_lines(entries: Iterable[LogEntry]) -> list[LogLine]:
    """Entries as records keep them (a flood of entries from one instant formats its time once:
    this runs on the event loop for up to thousands of entries per call)."""
    lines: list[LogLine] = []
    last_ts, last_iso = None, None
    for ts, stream, message, level in entries:
        if ts != last_ts:
            last_ts, last_iso = ts, iso(ts)
        line: LogLine = {"ts": last_iso, "stream": stream, "message": message}
        if level:
            line["level"] = level
        lines.append(line)
    return lines


EGRESS_COUNTS = ("allowed", "refused", "failed", "bytes_sent", "bytes_received")


def egress_counts(metrics: Mapping[str, float]) -> dict[str, int]:
    """``metrics.egress`` of a function with ``network``: what its runtime counted
    (``egress.allowed``…), summed over the execution's attempts; 0 for what it did not."""
    return {name: int(metrics.get(f"egress.{name}", 0)) for name in EGRESS_COUNTS}


@dataclass(slots=True)
class Review:
    """Who decided an execution's review task, how and when (``by`` is None when it expired)."""

    task_id: str
    action: ReviewAction
    at: float | None
    by: str | None
    by_name: str | None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "task_id": self.task_id,
            "action": self.action,
            "at": self.at,
            "by": self.by,
            "by_name": self.by_name,
        }
        if self.reason:
            shown["reason"] = self.reason
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Review:
        return cls(
            data["task_id"],
            data["action"],
            data.get("at"),
            data.get("by"),
            data.get("by_name"),
            data.get("reason"),
        )


# Not slotted, unlike the other records: orjson encodes a dataclass from its __dict__, and one
# with __slots__ field by field, 1.6 us slower per write (measured: 0.6 us against 2.2 us) — on
# every call. mypy, not __slots__, catches a misspelt field.
@dataclass
class ExecutionRecord:
    """Times are Unix seconds; ``duration_ms`` and ``queue_ms`` milliseconds. ``owner`` is the
    process running it (the orphan sweep ends executions whose owner died, unless the execution
    is ``durable``: then the work queue delivers it again, as a retry).

    Composition: ``cause`` is what started it (``None`` for a plain invoke), ``children`` the
    executions it started, ``depth`` how many chain or event links lead to it, ``retries`` how
    often it ran again (``next_attempt_at`` when it waits for the next), ``callback`` the
    delivery state of its callback and ``follow_errors`` the chains it could not follow, and why;
    ``followed`` is the status whose follow-ups are all queued (a redelivered job follows up an
    ending whose process died before it did).
    """

    execution_id: str
    tenant: str
    function_id: str
    version: int
    trace_id: str
    started_at: float
    input: Any = None
    alias: str | None = None  # ``id:alias`` calls: the alias that picked ``version``
    status: Status = "pending"
    tier: str | None = None
    output: Any = None
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    ended_at: float | None = None
    duration_ms: float | None = None
    queue_ms: float = 0.0
    cold_start: bool = False
    cache_hit: bool = False
    cache_hit_result: bool | None = None  # None: the version has no result cache
    egress: dict[str, int] | None = None  # None: the version has no ``network``
    callback_url: str | None = None
    owner: str = ""
    details: dict[str, Any] | None = None
    task_id: str | None = None
    review: Review | None = None
    cause: dict[str, Any] | None = None
    children: list[str] = field(default_factory=list)
    depth: int = 0
    durable: bool = False
    retries: int = 0
    next_attempt_at: float | None = None
    callback: dict[str, Any] | None = None
    follow_errors: list[dict[str, str]] = field(default_factory=list)
    followed: str | None = None  # the status whose follow-ups are all queued
    caller: dict[str, Any] | None = None  # the API key that asked for it (None: see ``cause``)
    custom: Any = None  # the caller's X-Tiergate-Context
    traceparent: str | None = None  # its span, while the gateway traces (gateway/tracing)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """A record as a store kept it. Keys this version does not know (written by another
        version of tiergate) are ignored; keys it lacks take their defaults."""
        known = {name: data[name] for name in _FIELDS if name in data}
        known["attempts"] = [Attempt.from_json(a) for a in data.get("attempts") or ()]
        review = data.get("review")
        known["review"] = None if review is None else Review.from_json(review)
        return cls(**known)


_FIELDS = tuple(f.name for f in fields(ExecutionRecord))
