"""Moving a function's code from the KV into the object store, and removing the KV copies after.

The hybrid store (``storage/hybrid.py``) knows how to move and verify bytes; this service knows
which bytes belong to a function (or one version of it) and answers 404 for one that does not
exist. Neither call changes what any function runs (the same bytes, read from another store), so
no process needs telling.
"""

from __future__ import annotations

from typing import Literal

from gateway.functions.registry import Registry, code_prefix
from storage.hybrid import CleanupResult, HybridCodeStore


class CodeStorageAdmin:
    def __init__(self, registry: Registry, code: HybridCodeStore) -> None:
        self._registry = registry
        self._code = code

    async def migrate(
        self, tenant: str, function_id: str, version: int | None
    ) -> Literal["migrated", "already_migrated"]:
        """Copy every KV copy of the code and artifacts into the object store, verified."""
        return await self._code.migrate(await self._prefix(tenant, function_id, version))

    async def cleanup_kv(self, tenant: str, function_id: str, version: int | None) -> CleanupResult:
        """Delete the KV copies whose object copy re-reads with the same SHA-256."""
        return await self._code.cleanup_kv(await self._prefix(tenant, function_id, version))

    async def _prefix(self, tenant: str, function_id: str, version: int | None) -> str:
        """Where the code of the function (every version, or one) lives; 404 if it does not."""
        if version is None:
            await self._registry.get_function(tenant, function_id)
        else:
            await self._registry.get_version(tenant, function_id, version)
        return code_prefix(tenant, function_id, version)
