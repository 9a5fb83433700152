"""The composition of every function's latest version, as triggers and schedules need it: listed
from the registry, each version's manifest parsed once (versions are immutable, so a parsed one
never goes stale; a redeploy is a new version)."""

from __future__ import annotations

from cachetools import LRUCache

from gateway.functions.composition import Composition
from gateway.functions.registry import Registry

PARSED = 4096  # versions whose composition is kept


class LatestCompositions:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._parsed: LRUCache[tuple[str, str, int], Composition] = LRUCache(PARSED)

    async def of(self, tenant: str | None) -> list[tuple[str, str, int, Composition]]:
        """``(tenant, function id, latest version, its composition)`` of each published
        function of ``tenant`` (``None``: of every tenant)."""
        found = []
        for fn in await self._registry.list_functions(tenant):
            if fn.latest_version is not None:
                key = (fn.tenant, fn.id, fn.latest_version)
                composition = self._parsed.get(key)
                if composition is None:
                    record = await self._registry.get_version(*key)
                    composition = Composition.parse(record.manifest, stored=True)
                    self._parsed[key] = composition
                found.append((*key, composition))
        return found
