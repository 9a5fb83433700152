"""Human review tasks: durable (in the KV, so they survive restarts and are shared between
instances), claimable, answered through the API or the reviewer page, and expired by a sweeper.

A task moves from ``pending`` to exactly one of ``completed``, ``rejected``, ``expired`` or
``cancelled``, always by compare-and-set, so two reviewers (or a reviewer and the sweeper) can
never both decide it. Deciding a task finishes its execution through the invoker, which records
who answered and when, counts it, and sends the execution's callback.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import BadRequest, InvalidOutput, TaskClaimed, TaskNotFound
from gateway.invoke.invoker import Invoker
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.periodic import Periodic
from gateway.security.auth import Principal
from storage.errors import StorageUnavailable
from storage.kv.base import KV

DEFAULT_EXPIRY_S = 24 * 3600
CLAIM_S = 15 * 60
Mutation = Callable[[dict[str, Any]], dict[str, Any]]


class TaskService:
    def __init__(
        self,
        kv: KV,
        records: ExecutionRecords,
        loader: Loader,
        invoker: Invoker,
        *,
        sweep_s: float = 5.0,
    ) -> None:
        self._kv = kv
        self._records = records
        self._loader = loader
        self._invoker = invoker
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
        attempts: list[dict[str, Any]],
        expires_in_s: float,
    ) -> dict[str, Any]:
        now = time.time()
        task = {
            "id": "t_" + secrets.token_hex(10),
            "tenant": tenant,
            "function_id": function_id,
            "version": version,
            "execution_id": execution_id,
            "input": input,
            "instructions": instructions,
            "attempts": list(attempts),
            "status": "pending",
            "created_at": now,
            "expires_at": now + expires_in_s,
            "claimed_by": None,
            "claimed_until": None,
        }
        await self._kv.set(_key(task["id"]), orjson.dumps(task))
        return task

    async def get(self, task_id: str, principal: Principal) -> dict[str, Any]:
        raw = await self._kv.get(_key(task_id))
        task = None if raw is None else orjson.loads(raw)
        if task is None or not (principal.is_admin or task["tenant"] == principal.tenant):
            raise TaskNotFound(f"task {task_id!r} not found", task_id=task_id)
        return task

    async def list(self, tenant: str | None, status: str | None) -> list[dict[str, Any]]:
        """One tenant's tasks, or every tenant's (``None``), oldest first."""
        found = []
        async for _, raw in self._kv.scan("task/"):
            task = orjson.loads(raw)
            if (tenant is None or task["tenant"] == tenant) and (
                status is None or task["status"] == status
            ):
                found.append(task)
        return sorted(found, key=lambda t: t["created_at"])

    async def claim(self, task_id: str, principal: Principal) -> dict[str, Any]:
        def take(task: dict[str, Any]) -> dict[str, Any]:
            self._check_open(task, principal)
            return {
                **task,
                "claimed_by": principal.key_id,
                "claimed_name": principal.name,
                "claimed_until": time.time() + CLAIM_S,
            }

        return await self._change(task_id, principal, take)

    async def release(self, task_id: str, principal: Principal) -> dict[str, Any]:
        def release(task: dict[str, Any]) -> dict[str, Any]:
            self._check_open(task, principal)
            return {**task, "claimed_by": None, "claimed_name": None, "claimed_until": None}

        return await self._change(task_id, principal, release)

    async def complete(self, task_id: str, principal: Principal, output: Any) -> dict[str, Any]:
        task = await self.get(task_id, principal)
        self._check_open(task, principal)
        fn, _ = await self._loader.get(task["tenant"], task["function_id"], task["version"])
        errors = fn.output_check.errors(output)
        if errors:
            raise InvalidOutput(
                "the output does not match the function's output_schema", errors=errors
            )
        task = await self._decide(task_id, principal, "completed", output=output)
        return await self._finish(task, "completed", output=output, by=principal)

    async def reject(self, task_id: str, principal: Principal, reason: str) -> dict[str, Any]:
        task = await self._decide(task_id, principal, "rejected", reason=reason)
        return await self._finish(
            task, "failed", error=f"rejected by a reviewer: {reason}", by=principal
        )

    async def cancel(self, task_id: str, principal: Principal) -> dict[str, Any]:
        task = await self._decide(task_id, principal, "cancelled", check_claim=False)
        return await self._finish(task, "cancelled", error="cancelled by request", by=principal)

    async def _decide(
        self,
        task_id: str,
        principal: Principal,
        status: str,
        check_claim: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        def decide(task: dict[str, Any]) -> dict[str, Any]:
            if check_claim:
                self._check_open(task, principal)
            elif task["status"] != "pending":
                raise BadRequest(f"task {task['id']} is already {task['status']}")
            return {
                **task,
                **fields,
                "status": status,
                "answered_by": principal.key_id,
                "answered_name": principal.name,
                "answered_at": time.time(),
            }

        return await self._change(task_id, principal, decide)

    @staticmethod
    def _check_open(task: dict[str, Any], principal: Principal) -> None:
        if task["status"] != "pending":
            raise BadRequest(
                f"task {task['id']} is already {task['status']}", status=task["status"]
            )
        holder = task.get("claimed_by")
        if holder and holder != principal.key_id and (task.get("claimed_until") or 0) > time.time():
            raise TaskClaimed(
                f"task {task['id']} is claimed by {task.get('claimed_name') or holder}",
                claimed_by=task.get("claimed_name") or holder,
            )

    async def _change(self, task_id: str, principal: Principal, change: Mutation) -> dict[str, Any]:
        while True:
            await self.get(task_id, principal)  # tenancy: 404 for other tenants
            raw = await self._kv.get(_key(task_id))
            if raw is None:
                raise TaskNotFound(f"task {task_id!r} not found", task_id=task_id)
            updated = change(orjson.loads(raw))
            if await self._kv.compare_and_set(_key(task_id), raw, orjson.dumps(updated)):
                return updated

    async def _finish(
        self,
        task: dict[str, Any],
        status: str,
        *,
        output: Any = None,
        error: str | None = None,
        by: Principal | None = None,
    ) -> dict[str, Any]:
        record = await self._records.get(task["execution_id"])
        if record is None:
            raise StorageUnavailable(f"the execution of task {task['id']} is missing")
        review = {
            "task_id": task["id"],
            "action": task["status"],
            "at": task.get("answered_at"),
            "by": task.get("answered_by"),
            "by_name": task.get("answered_name"),
        }
        if task.get("reason"):
            review["reason"] = task["reason"]
        attempt_status = {
            "completed": "succeeded",
            "cancelled": "cancelled",
            "timeout": "timeout",
        }.get(status, "failed")
        attempt = {
            "tier": "human",
            "attempt": 1,
            "status": attempt_status,
            "error": error,
            "duration_ms": round((time.time() - task["created_at"]) * 1000, 3),
        }
        return self._invoker.finish_elsewhere(
            record, status, tier="human", output=output, error=error, attempt=attempt, review=review
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
            task = orjson.loads(raw)
            if task["status"] != "pending" or task["expires_at"] > now:
                continue
            expired = {**task, "status": "expired", "answered_at": now}
            if not await self._kv.compare_and_set(key, raw, orjson.dumps(expired)):
                continue
            await self._expire(expired)

    async def _expire(self, task: dict[str, Any]) -> None:
        try:
            fn, _ = await self._loader.get(task["tenant"], task["function_id"], task["version"])
            human = fn.tiers.get("human", {})
        except Exception:  # the function may be gone; the execution still ends
            human = {}
        if "default_output" in human:
            await self._finish(task, "completed", output=human["default_output"])
        else:
            await self._finish(
                task, "timeout", error="no reviewer answered before the task expired"
            )


def _key(task_id: str) -> str:
    return f"task/{task_id}"


def public_task(task: dict[str, Any]) -> dict[str, Any]:
    from gateway.views import iso

    shown = {
        k: task.get(k)
        for k in (
            "id",
            "function_id",
            "execution_id",
            "input",
            "instructions",
            "attempts",
            "status",
            "version",
        )
    }
    shown.update(
        created_at=iso(task["created_at"]),
        expires_at=iso(task["expires_at"]),
        claimed_by=task.get("claimed_name") or task.get("claimed_by"),
        claimed_until=iso(task.get("claimed_until")),
    )
    for field in ("answered_name", "reason"):
        if task.get(field):
            shown[field.replace("answered_name", "answered_by")] = task[field]
    return shown
