"""``Finisher.finish``: the one way an execution ends.

A call that ends in this process, a reviewer's answer or a task's expiry on any instance, an
orphan ended by the sweeper, a cancel: each comes here, so each ending is recorded, counted and
called back the same way. (There used to be three copies of this, and they drifted: one skipped
redaction, another the metrics.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.invoke.callbacks import Callbacks
from gateway.invoke.execution import ExecutionRecord, FinalStatus, Review, log_lines
from gateway.invoke.records import ExecutionRecords
from gateway.metrics import Metrics
from tiers.attempt import Attempt
from tiers.base import Invocation

# The API's execution document of a record (``http.views.execution_body``): what a callback
# sends. Handed in, because nothing below ``http`` imports it.
Document = Callable[[ExecutionRecord], dict[str, Any]]


class Finisher:
    def __init__(
        self, records: ExecutionRecords, callbacks: Callbacks, metrics: Metrics, document: Document
    ) -> None:
        self._records = records
        self._callbacks = callbacks
        self._metrics = metrics
        self._document = document

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
        if run is not None:
            seconds = time.monotonic() - run.started
            record.attempts = run.attempts
            record.logs = log_lines(run.final_logs())
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
        if record.callback_url:
            self._callbacks.send(record.callback_url, self._document(record))
        return record
