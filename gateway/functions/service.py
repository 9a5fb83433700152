"""Changes to functions — deploy, rollback, delete, aliases — one call each, whoever asks.

Each call makes the change, tells every gateway process (this one drops its caches at once, the
others on the event), and writes the audit entry: the HTTP handlers and ``serve --deploy`` call
the same method, so no caller can forget a step. Once started, a change runs to its end even if
its caller goes away (a client disconnecting, say): cut short, it could be made but never
announced or audited — or, for a deploy, leave a compiler's processes running, uncounted by the
tenant's quota of deploys in progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from gateway.functions.aliases import Alias, AliasChange
from gateway.functions.deploy import Deployer, Deployment
from gateway.functions.records import FunctionRecord
from gateway.functions.registry import Registry
from gateway.security.audit import AuditLog
from gateway.security.auth import Principal

log = logging.getLogger("tiergate.functions")

T = TypeVar("T")


class FunctionChanges(Protocol):
    """How a change reaches every process's caches (``gateway/cluster/coherence.py``)."""

    async def function_changed(self, tenant: str, function_id: str) -> None: ...

    async def aliases_changed(self, tenant: str, function_id: str) -> None: ...


class ExecutionHistory(Protocol):
    """The execution records a deleted function leaves behind (``ExecutionRecords``)."""

    async def delete_for_function(self, tenant: str, function_id: str) -> None: ...


class FunctionService:
    def __init__(
        self,
        deployer: Deployer,
        registry: Registry,
        changes: FunctionChanges,
        history: ExecutionHistory,
        audit: AuditLog,
    ) -> None:
        self._deployer = deployer
        self._registry = registry
        self._changes = changes
        self._history = history
        self._audit = audit
        self._running: set[asyncio.Task[Any]] = set()

    async def deploy(
        self, principal: Principal, tenant: str, manifest: Any, code: bytes | None
    ) -> Deployment:
        """A new version from a manifest (and code), published as ``latest``, with the warnings
        its answer carries."""
        return await self._to_the_end(self._deploy(principal, tenant, manifest, code))

    async def rollback(
        self, principal: Principal, tenant: str, function_id: str, version: int
    ) -> FunctionRecord:
        """Point ``latest`` at an earlier (or any existing) version."""
        return await self._to_the_end(self._rollback(principal, tenant, function_id, version))

    async def delete(self, principal: Principal, tenant: str, function_id: str) -> None:
        """The function, its versions, aliases, code and execution records, from every store."""
        await self._to_the_end(self._delete(principal, tenant, function_id))

    async def put_alias(
        self, principal: Principal, tenant: str, function_id: str, name: str, change: AliasChange
    ) -> tuple[Alias, bool]:
        """Create or move an alias; the alias and whether it is new."""
        return await self._to_the_end(
            self._put_alias(principal, tenant, function_id, name, change)
        )

    async def delete_alias(
        self, principal: Principal, tenant: str, function_id: str, name: str
    ) -> None:
        await self._to_the_end(self._delete_alias(principal, tenant, function_id, name))

    async def _deploy(
        self, principal: Principal, tenant: str, manifest: Any, code: bytes | None
    ) -> Deployment:
        deployment = await self._deployer.deploy(tenant, manifest, code, principal.key_id)
        record = deployment.record
        await self._changes.function_changed(tenant, record.id)
        await self._audit.record(
            principal, "function.deploy", f"{tenant}/{record.id}", version=record.version
        )
        return deployment

    async def _rollback(
        self, principal: Principal, tenant: str, function_id: str, version: int
    ) -> FunctionRecord:
        record = await self._registry.rollback(tenant, function_id, version)
        await self._changes.function_changed(tenant, function_id)
        await self._audit.record(
            principal, "function.rollback", f"{tenant}/{function_id}", version=version
        )
        return record

    async def _delete(self, principal: Principal, tenant: str, function_id: str) -> None:
        await self._registry.delete(tenant, function_id)
        await self._changes.function_changed(tenant, function_id)
        await self._history.delete_for_function(tenant, function_id)
        await self._audit.record(principal, "function.delete", f"{tenant}/{function_id}")

    async def _put_alias(
        self, principal: Principal, tenant: str, function_id: str, name: str, change: AliasChange
    ) -> tuple[Alias, bool]:
        alias, created = await self._registry.put_alias(
            tenant, function_id, name, change, principal.key_id
        )
        await self._changes.aliases_changed(tenant, function_id)
        await self._audit.record(
            principal,
            "function.alias.create" if created else "function.alias.move",
            f"{tenant}/{function_id}:{name}",
            version=change.version,
            weights=dict(alias.weights),
        )
        return alias, created

    async def _delete_alias(
        self, principal: Principal, tenant: str, function_id: str, name: str
    ) -> None:
        await self._registry.delete_alias(tenant, function_id, name)
        await self._changes.aliases_changed(tenant, function_id)
        target = f"{tenant}/{function_id}:{name}"
        await self._audit.record(principal, "function.alias.delete", target)

    async def _to_the_end(self, change: Coroutine[Any, Any, T]) -> T:
        """Run ``change`` in a task of its own that a cancelled caller does not cancel."""
        task = asyncio.create_task(change)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return await asyncio.shield(task)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished change. Its failure is its caller's answer; if the caller went
        away, it is logged here rather than as a task exception nobody retrieved."""
        self._running.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            log.debug("function change failed: %s", failure)
