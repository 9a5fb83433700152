"""Asynchronous executions that survive the gateway: accepted into the work queue, run by
whichever process takes them, retried with backoff, dead-lettered when their retries are spent.

The job carries the execution's whole input and its record as it was accepted, so the work can
run even if the record could not be read back; the record itself is written before the caller
hears 202, so any instance can answer for it at once. A job leaves the queue only once its
execution has ended and what follows it (chains, events, the callback's own job) is queued: a
gateway killed at any point before that loses nothing, the job is delivered again when its lease
runs out. Such a redelivery (the queue counts it, or the record is still ``running``: the
process that ran it last stopped first) counts as a retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.compose.dead_letters import DeadLetter, DeadLetters
from gateway.compose.dispatcher import Later
from gateway.compose.followups import Followups
from gateway.errors import REPORTED
from gateway.functions.registry import FunctionRef
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.finish import Finisher, next_attempt_at, retry_policy
from gateway.invoke.invoker import InvokeOptions, Invoker, Prepared
from gateway.invoke.records import ExecutionRecords
from plugins.errors import PayloadTooLarge, QueueFull
from storage.errors import QueueFull as WorkQueueFull
from storage.errors import StorageUnavailable
from storage.queue.base import Job, WorkQueue

if TYPE_CHECKING:
    from gateway.tracing.otel import Tracing

log = logging.getLogger("tiergate.durable")

EXECUTION = "execution"
LOST = "the gateway process running this execution stopped before it finished"
STORE_AWAY_RETRY_S = 5.0


@dataclass(slots=True)
class ExecutionJob:
    """What the queue holds for one execution: its record as accepted (orjson writes the
    dataclass as it stands), its whole input and its query overrides."""

    record: ExecutionRecord
    input: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {"record": self.record, "input": self.input, "overrides": self.overrides}
        )

    @classmethod
    def decode(cls, body: bytes) -> ExecutionJob:
        data = orjson.loads(body)
        record = ExecutionRecord.from_json(data["record"])
        return cls(record, data["input"], data.get("overrides") or {})


def refused(exc: WorkQueueFull, tenant: str, share: int) -> QueueFull:
    """The work queue's refusal as the API's 429, naming the setting whose bound was met."""
    if "group" in exc.extensions:
        detail = (
            f"tenant {tenant!r} already has {share} jobs queued "
            "(TIERGATE_WORK_QUEUE_MAX_PER_TENANT); try again later"
        )
    else:
        detail = f"{exc.detail} (TIERGATE_WORK_QUEUE_MAX); try again later"
    return QueueFull(detail, retry_after=exc.retry_after)


class DurableExecutions:
    def __init__(
        self,
        invoker: Invoker,
        records: ExecutionRecords,
        queue: WorkQueue,
        finisher: Finisher,
        dead_letters: DeadLetters,
        followups: Followups,
        *,
        wake: Callable[[], None],
        tenant_share: int,
        max_input_bytes: int,
        tracing: Tracing | None = None,
    ) -> None:
        self._invoker = invoker
        self._records = records
        self._queue = queue
        self._finisher = finisher
        self._dead = dead_letters
        self._followups = followups
        self._wake = wake
        self._tenant_share = tenant_share
        self._max_input = max_input_bytes
        self._tracing = tracing

    async def accept(
        self,
        tenant: str,
        ref: FunctionRef,
        body: bytes,
        options: InvokeOptions,
        *,
        cause: dict[str, Any] | None = None,
        depth: int = 0,
        delay_s: float = 0.0,
        execution_id: str | None = None,
    ) -> ExecutionRecord:
        """Queue an execution of ``ref``; returns its pending record. Refusals (an unknown
        function, bad input, a full queue) raise before anything is stored. ``execution_id``:
        the id a graph run chose for it before (so the run knows it before it exists).

        While the gateway traces, this is an ``invoke`` span under ``options.traceparent`` (a
        chained execution's cause), which its queued run joins later."""
        if self._tracing is None:
            return await self._accept(
                tenant, ref, body, options, cause, depth, delay_s, execution_id
            )
        with self._tracing.execution(
            "invoke",
            tenant=tenant,
            function_id=ref.function_id,
            parent=options.traceparent,
            trace_id=options.trace_id,
        ) as span:
            options = options.within(span)
            record = await self._accept(
                tenant, ref, body, options, cause, depth, delay_s, execution_id
            )
            span.ended(record)
            return record

    async def _accept(
        self,
        tenant: str,
        ref: FunctionRef,
        body: bytes,
        options: InvokeOptions,
        cause: dict[str, Any] | None,
        depth: int,
        delay_s: float,
        execution_id: str | None,
    ) -> ExecutionRecord:
        prepared = await self._invoker.prepare(tenant, ref, body, options)
        if execution_id is not None:
            prepared.record.execution_id = execution_id
        return await self.enqueue(
            prepared, options.overrides, cause=cause, depth=depth, delay_s=delay_s
        )

    async def enqueue(
        self,
        prepared: Prepared,
        overrides: Mapping[str, Any],
        *,
        cause: dict[str, Any] | None = None,
        depth: int = 0,
        delay_s: float = 0.0,
    ) -> ExecutionRecord:
        """Queue a prepared call (``POST /invoke`` with ``Prefer: respond-async``). Its input is
        stored with it until it ends, so it may be at most ``max_input_bytes`` (as Lambda's
        asynchronous calls take less than its synchronous ones): a tenant's share of the queue
        is bounded in bytes too."""
        size = len(prepared.inv.input_bytes)
        if size > self._max_input:
            raise PayloadTooLarge(
                f"asynchronous work takes at most {self._max_input} bytes of input, got {size} "
                "(TIERGATE_ASYNC_MAX_INPUT_BYTES); call synchronously for larger inputs"
            )
        record = prepared.record
        record.durable, record.cause, record.depth = True, cause, depth
        due = time.time() + delay_s if delay_s > 0 else None
        record.next_attempt_at = due
        job = ExecutionJob(record, prepared.inv.input_bytes.decode(), dict(overrides))
        try:
            await self._queue.put(
                EXECUTION,
                job.encode(),
                due=due,
                group=record.tenant,
                group_bound=self._tenant_share,  # one tenant cannot fill it for everyone
            )
        except WorkQueueFull as exc:
            raise refused(exc, record.tenant, self._tenant_share) from None
        await self._records.persist(record)  # any instance may be asked for it next
        self._wake()
        return record

    async def redrive(self, letter: DeadLetter) -> ExecutionRecord:
        """A new execution of a dead letter's input, by its function's latest version."""
        ref = FunctionRef(letter.function_id)  # the latest: a redrive follows a fix
        options = InvokeOptions(overrides=letter.overrides)
        cause = {"kind": "redrive", "execution_id": letter.execution_id}
        return await self.accept(letter.tenant, ref, letter.input.encode(), options, cause=cause)

    def cancel_waiting(self, record: ExecutionRecord) -> ExecutionRecord:
        """End a queued execution that is not running (``DELETE /executions/{id}``); its job,
        when delivered, finds it ended and does nothing."""
        return self._finisher.finish(record, "cancelled", error="cancelled by request")

    async def run(self, job: Job) -> Later | None:
        """Run one delivered execution job. Returns when to deliver it again (a retry's time), or
        None when the job is done."""
        work = ExecutionJob.decode(job.body)
        # None: accepted, but its record never reached the store
        record = await self._records.get(work.record.execution_id) or work.record
        if record.ended_at is not None or record.status == "awaiting_human":
            if record.followed != record.status:  # its process died before following it up
                await self._followups.follow_again(record)
            return None
        if self._tracing is None:
            return await self._run(job, work, record)
        # an ``execute`` span under the span that queued it (the same trace as its 202)
        with self._tracing.execution(
            "execute",
            tenant=record.tenant,
            function_id=record.function_id,
            parent=record.traceparent,
            trace_id=record.trace_id,
        ) as span:
            later = await self._run(job, work, record)
            span.ended(record)
            return later

    async def _run(self, job: Job, work: ExecutionJob, record: ExecutionRecord) -> Later | None:
        try:
            prepared = await self._invoker.resume(record, work.input.encode(), work.overrides)
        except StorageUnavailable as exc:
            log.warning("execution %s waits for storage: %s", record.execution_id, exc.detail)
            return Later(time.time() + STORE_AWAY_RETRY_S)
        except REPORTED as exc:  # the function or version is gone, or its input no longer fits
            later = getattr(exc, "retry_after", None)  # an open circuit: not the function's fault
            if later is not None:
                return Later(time.time() + later)
            self._finisher.finish(record, "failed", error=exc.detail)
            await self._bury(record, work)
            return None
        lost = job.deliveries > 1 or record.status == "running"
        if lost and not self._lost_run_may_retry(record, prepared):
            self._finisher.finish(record, "failed", error=LOST)
            await self._bury(record, work)
            return None
        try:
            record = await self._invoker.execute(prepared)
        except asyncio.CancelledError:
            raise  # the gateway is stopping: the record is pending again, the job goes back
        except REPORTED as exc:
            later = getattr(exc, "retry_after", None)
            if later is not None and record.ended_at is None:
                return Later(time.time() + later)  # refused before it ran (admission)
        if record.status == "pending":  # the finisher scheduled a retry
            return Later(record.next_attempt_at or time.time())
        if record.status in ("failed", "timeout"):
            await self._bury(record, work)
        else:
            await self._followups.wait(record.execution_id)
        return None

    def _lost_run_may_retry(self, record: ExecutionRecord, prepared: Prepared) -> bool:
        at = next_attempt_at(record, retry_policy(prepared.inv.fn), time.time())
        if at is None:
            return False
        record.retries += 1
        return True

    async def _bury(self, record: ExecutionRecord, work: ExecutionJob) -> None:
        await self._dead.add(DeadLetter.of(record, work.input, work.overrides))
        await self._followups.wait(record.execution_id)
