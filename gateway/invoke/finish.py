"""``Finisher.finish``: the one way an execution ends.

A call that ends in this process, a reviewer's answer or a task's expiry on any instance, an
orphan ended by the sweeper, a cancel: each comes here, so each ending is recorded, counted and
followed up (callback, chains, events) the same way. (There used to be three copies of this, and
they drifted: one skipped redaction, another the metrics.)

A durable execution (queued work) that fails or times out does not end while its function's
``retry`` policy allows another run: it goes back to ``pending`` with ``next_attempt_at``, and
the work queue delivers it again then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.functions.composition import Composition, RetryPolicy
from gateway.invoke.execution import (
    ExecutionRecord,
    FinalStatus,
    Review,
    egress_counts,
    log_lines,
)
from gateway.invoke.records import ExecutionRecords
from gateway.metrics import Metrics
from tiers.attempt import Attempt
from tiers.base import Invocation
from tiers.function import LoadedFunction


class AfterFinish(Protocol):
    """What follows an execution's end (``gateway.compose.followups``): its callback, its
    chains and the gateway's ``execution.*`` events. ``fn`` is the function when it is loaded
    here (the call ran in this process)."""

    def finished(self, record: ExecutionRecord, fn: LoadedFunction | None) -> None: ...


class Finisher:
    def __init__(self, records: ExecutionRecords, metrics: Metrics) -> None:
        self._records = records
        self._metrics = metrics
        self._after: AfterFinish | None = None

    def follow_with(self, after: AfterFinish) -> None:
        """Bound once by the app factory, when the services that follow an ending exist."""
        self._after = after

    def finish(
        self,
        record: ExecutionRecord,
        status: FinalStatus,
        *,
        run: Invocation | None = None,
        tier: str | None = None,
        output: Any = None,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
        attempt: Attempt | None = None,
        review: Review | None = None,
    ) -> ExecutionRecord:
        """End ``record`` with ``status``: set its final fields, save it, count it in the
        function's metrics and send its callback. Returns it.

        ``run`` is the invocation when this process ran the call: its attempts, logs and secrets
        (the error is redacted with them) go into the record, and the duration counts from when
        it started running (the queue has ``queue_ms``). Otherwise the duration counts from
        ``started_at``. ``attempt`` is one more attempt to add (a person's answer); ``tier``
        defaults to the last attempt's."""
        now = time.time()
        if run is not None and record.durable and status in ("failed", "timeout"):
            at = next_attempt_at(record, retry_policy(run.fn), now)
            if at is not None:
                return self._retry_later(record, run, error, at)
        if run is not None:
            seconds = time.monotonic() - run.started
            record.attempts = run.attempts
            record.logs = log_lines(run.final_logs())
            if "network" in run.fn.manifest:
                record.egress = egress_counts(run.metrics)
            if error:
                error = run.redact(error)
            metrics = run.fn.metrics
        else:
            seconds = now - record.started_at
            metrics = self._metrics.for_function(record.tenant, record.function_id)
        if attempt is not None:
            record.attempts = [*record.attempts, attempt]
        if tier is None and record.attempts:
            tier = record.attempts[-1].tier
        record.status = status
        record.ended_at = now
        record.duration_ms = round(seconds * 1000, 3)
        record.output = output
        record.error = error
        if tier is not None:
            record.tier = tier
        if details:
            record.details = dict(details)
        if review is not None:
            record.review = review
        self._records.save(record)
        metrics.outcome(status, record.tier or "none")
        metrics.duration.observe(seconds)
        if self._after is not None:
            self._after.finished(record, run.fn if run is not None else None)
        return record

    def awaiting(self, record: ExecutionRecord, fn: LoadedFunction) -> None:
        """The execution now waits for a person (not an ending): ``execution.awaiting_human``
        triggers follow it."""
        if self._after is not None:
            self._after.finished(record, fn)

    def _retry_later(
        self, record: ExecutionRecord, run: Invocation, error: str | None, at: float
    ) -> ExecutionRecord:
        record.status = "pending"
        record.retries += 1
        record.next_attempt_at = at
        record.attempts = run.attempts
        record.logs = log_lines(run.final_logs())
        if "network" in run.fn.manifest:
            record.egress = egress_counts(run.metrics)
        record.error = run.redact(error) if error else error
        self._records.save(record)
        return record


def retry_policy(fn: LoadedFunction) -> RetryPolicy:
    """The function version's ``retry`` (its manifest's, or the defaults)."""
    composition = fn.extras.get("composition")
    return composition.retry if isinstance(composition, Composition) else RetryPolicy()


def next_attempt_at(record: ExecutionRecord, policy: RetryPolicy, now: float) -> float | None:
    """When a failed durable execution runs again; None when its retries are spent or the next
    run would start past its ``max_age_s``."""
    if record.retries >= policy.attempts:
        return None
    at = now + policy.delay_s(record.retries + 1)
    if at - record.started_at > policy.max_age_s:
        return None
    return at
