"""Human review tasks: durable (in the KV, so they survive restarts and are shared between
instances), claimable, answered through the API or the reviewer page, and expired by a sweeper.

A task moves from ``pending`` to exactly one of ``completed``, ``rejected``, ``expired`` or
``cancelled``, always by compare-and-set, so two reviewers (or a reviewer and the sweeper) can
never both decide it. Deciding a task ends its execution through ``Finisher.finish``, like any
other ending: recorded with who answered and when, counted, and called back.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.errors import BadRequest, InvalidOutput, TaskClaimed, TaskNotFound
from gateway.invoke.execution import ExecutionRecord, FinalStatus, Review, ReviewAction
from gateway.invoke.finish import Finisher
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.periodic import Periodic
from gateway.review.task import ReviewTask
from gateway.security.auth import Principal
from storage.errors import StorageUnavailable
from storage.kv.base import KV
from tiers.attempt import Attempt, AttemptStatus

DEFAULT_EXPIRY_S = 24 * 3600
CLAIM_S = 15 * 60
Mutation = Callable[[ReviewTask], ReviewTask]
# How the person's step shows in the execution's attempts, by how the execution ended.
ATTEMPT_STATUS: dict[FinalStatus, AttemptStatus] = {
    "completed": "succeeded",
    "failed": "failed",
    "timeout": "timeout",
    "cancelled": "cancelled",
}


class TaskService:
    def __init__(
        self,
        kv: KV,
        records: ExecutionRecords,
        loader: Loader,
        finisher: Finisher,
        *,
        sweep_s: float = 5.0,
    ) -> None:
        self._kv = kv
        self._records = records
        self._loader = loader
        self._finisher = finisher
        self._sweep_s = sweep_s
        self._sweeper = Periodic("review task sweep")

    async def create(
        self,
        *,
        tenant: str,
        function_id: str,
        version: int,
        execution_id: str,
        input: Any,
        instructions: str,
        attempts: Sequence[Attempt],
        expires_in_s: float,
    ) -> ReviewTask:
        now = time.time()
        task = ReviewTask(
            id="t_" + secrets.token_hex(10),
            tenant=tenant,
            function_id=function_id,
            version=version,
            execution_id=execution_id,
            input=input,
            instructions=instructions,
            created_at=now,
            expires_at=now + expires_in_s,
            attempts=list(attempts),
        )
        await self._kv.set(_key(task.id), task.to_bytes())
        return task

    async def get(self, task_id: str, principal: Principal) -> ReviewTask:
        raw = await self._kv.get(_key(task_id))
        task = None if raw is None else ReviewTask.from_bytes(raw)
        if task is None or not (principal.is_admin or task.tenant == principal.tenant):
            raise TaskNotFound(f"task {task_id!r} not found", task_id=task_id)
        return task

    async def list(self, tenant: str | None, status: str | None) -> list[ReviewTask]:
        """One tenant's tasks, or every tenant's (``None``), oldest first."""
        found = []
        async for _, raw in self._kv.scan("task/"):
            task = ReviewTask.from_bytes(raw)
            if (tenant is None or task.tenant == tenant) and (
                status is None or task.status == status
            ):
                found.append(task)
        return sorted(found, key=lambda t: t.created_at)

    async def claim(self, task_id: str, principal: Principal) -> ReviewTask:
        def take(task: ReviewTask) -> ReviewTask:
            self._check_open(task, principal)
            return dataclasses.replace(
                task,
                claimed_by=principal.key_id,
                claimed_name=principal.name,
                claimed_until=time.time() + CLAIM_S,
            )

        return await self._change(task_id, principal, take)

    async def release(self, task_id: str, principal: Principal) -> ReviewTask:
        def release(task: ReviewTask) -> ReviewTask:
            self._check_open(task, principal)
            return dataclasses.replace(task, claimed_by=None, claimed_name=None, claimed_until=None)

        return await self._change(task_id, principal, release)

    async def complete(self, task_id: str, principal: Principal, output: Any) -> ExecutionRecord:
        task = await self.get(task_id, principal)
        self._check_open(task, principal)
        fn, _ = await self._loader.get(task.tenant, task.function_id, task.version)
        errors = fn.output_check.errors(output)
        if errors:
            raise InvalidOutput(
                "the output does not match the function's output_schema", errors=errors
            )
        task = await self._decide(task_id, principal, "completed", output=output)
        return await self._finish(task, "completed", "completed", output=output)

    async def reject(self, task_id: str, principal: Principal, reason: str) -> ExecutionRecord:
        task = await self._decide(task_id, principal, "rejected", reason=reason)
        error = f"rejected by a reviewer: {reason}"
        return await self._finish(task, "rejected", "failed", error=error)

    async def cancel(self, task_id: str, principal: Principal) -> ExecutionRecord:
        task = await self._decide(task_id, principal, "cancelled", check_claim=False)
        return await self._finish(task, "cancelled", "cancelled", error="cancelled by request")

    async def _decide(
        self,
        task_id: str,
        principal: Principal,
        status: ReviewAction,
        check_claim: bool = True,
        **answer: Any,
    ) -> ReviewTask:
        def decide(task: ReviewTask) -> ReviewTask:
            if check_claim:
                self._check_open(task, principal)
            elif task.status != "pending":
                raise BadRequest(f"task {task.id} is already {task.status}")
            return dataclasses.replace(
                task,
                **answer,
                status=status,
                answered_by=principal.key_id,
                answered_name=principal.name,
                answered_at=time.time(),
            )

        return await self._change(task_id, principal, decide)

    @staticmethod
    def _check_open(task: ReviewTask, principal: Principal) -> None:
        if task.status != "pending":
            raise BadRequest(f"task {task.id} is already {task.status}", status=task.status)
        holder = task.claimed_by
        if holder and holder != principal.key_id and (task.claimed_until or 0) > time.time():
            raise TaskClaimed(
                f"task {task.id} is claimed by {task.claimed_name or holder}",
                claimed_by=task.claimed_name or holder,
            )

    async def _change(self, task_id: str, principal: Principal, change: Mutation) -> ReviewTask:
        while True:
            await self.get(task_id, principal)  # tenancy: 404 for other tenants
            raw = await self._kv.get(_key(task_id))
            if raw is None:
                raise TaskNotFound(f"task {task_id!r} not found", task_id=task_id)
            updated = change(ReviewTask.from_bytes(raw))
            if await self._kv.compare_and_set(_key(task_id), raw, updated.to_bytes()):
                return updated

    async def _finish(
        self,
        task: ReviewTask,
        action: ReviewAction,
        status: FinalStatus,
        *,
        output: Any = None,
        error: str | None = None,
    ) -> ExecutionRecord:
        """End the task's execution, wherever it started: the person's step is its last
        attempt, and ``review`` says who decided and when."""
        record = await self._records.get(task.execution_id)
        if record is None:
            raise StorageUnavailable(f"the execution of task {task.id} is missing")
        review = Review(
            task.id, action, task.answered_at, task.answered_by, task.answered_name, task.reason
        )
        attempt = Attempt(
            "human",
            1,
            ATTEMPT_STATUS[status],
            error,
            round((time.time() - task.created_at) * 1000, 3),
        )
        return self._finisher.finish(
            record,
            status,
            tier="human",
            output=output,
            error=error,
            attempt=attempt,
            review=review,
        )

    def start(self) -> None:
        self._sweeper.every(self._sweep_s, self.expire_due)

    async def close(self) -> None:
        await self._sweeper.close()

    async def expire_due(self) -> None:
        """Expire tasks nobody answered in time: their ``default_output`` when the function has
        one, else the execution ends with status ``timeout``."""
        now = time.time()
        async for key, raw in self._kv.scan("task/"):
            task = ReviewTask.from_bytes(raw)
            if task.status != "pending" or task.expires_at > now:
                continue
            expired = dataclasses.replace(task, status="expired", answered_at=now)
            if not await self._kv.compare_and_set(key, raw, expired.to_bytes()):
                continue
            await self._expire(expired)

    async def _expire(self, task: ReviewTask) -> None:
        try:
            fn, _ = await self._loader.get(task.tenant, task.function_id, task.version)
            human = fn.tiers.get("human", {})
        except Exception:  # the function may be gone; the execution still ends
            human = {}
        if "default_output" in human:
            await self._finish(task, "expired", "completed", output=human["default_output"])
        else:
            error = "no reviewer answered before the task expired"
            await self._finish(task, "expired", "timeout", error=error)


def _key(task_id: str) -> str:
    return f"task/{task_id}"
