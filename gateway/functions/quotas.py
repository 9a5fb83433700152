"""What one tenant may take at deploy: manifest ceilings, functions, deploys in progress.

An operator sets these (``TIERGATE_MAX_*``). The manifest's JSON Schema keeps its wide maxima,
what any tiergate accepts; the ceilings are this gateway's narrower ones. A deploy that asks for
more than a ceiling is refused (400 ``invalid_manifest`` naming the field, the ceiling and the
setting), while a version stored before an operator lowered a ceiling still loads, cut down to it,
and a default above a ceiling is cut down too (only what a manifest asks for is refused).
Worker processes per tenant are counted where they start, by ``plugins.workers.WorkerBudget``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.errors import InvalidManifest, QuotaExceeded, TooManyDeploys

if TYPE_CHECKING:
    from gateway.settings import Settings


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most a manifest field (a dotted path) may ask for here, and which setting says so."""

    field: str
    value: int
    setting: str

    def fit(self, manifest: Mapping[str, Any], *, refuse: bool) -> Mapping[str, Any]:
        """``manifest``, or a copy with this field cut down to the ceiling; ``refuse`` raises
        instead (a deploy)."""
        *sections, name = self.field.split(".")
        path = [manifest]
        for section in sections:
            inner = path[-1].get(section)
            if not isinstance(inner, Mapping):
                return manifest
            path.append(inner)
        asked = path[-1].get(name)
        if not isinstance(asked, int) or asked <= self.value:
            return manifest
        if refuse:
            raise InvalidManifest(
                f"{self.field}: {asked} is above this gateway's ceiling of {self.value} "
                f"({self.setting})",
                field=self.field,
                ceiling=self.value,
                setting=self.setting,
            )
        fitted: Mapping[str, Any] = {**path[-1], name: self.value}
        for outer, key in zip(reversed(path[:-1]), reversed(sections), strict=True):
            fitted = {**outer, key: fitted}
        return fitted


class Ceilings:
    """This gateway's ceilings, checked in order (a deploy hears of the first it breaks)."""

    def __init__(self, ceilings: Collection[Ceiling] = ()) -> None:
        self._all = tuple(ceilings)

    @classmethod
    def from_settings(cls, settings: Settings) -> Ceilings:
        workers, timeout = settings.max_workers_per_function, settings.max_timeout_ms
        return cls(
            (
                Ceiling("limits.memory_mb", settings.max_memory_mb, "TIERGATE_MAX_MEMORY_MB"),
                # Scratch space counts against memory and may take at most half of it.
                Ceiling("limits.tmp_mb", settings.max_memory_mb // 2, "TIERGATE_MAX_MEMORY_MB / 2"),
                Ceiling("limits.timeout_ms", timeout, "TIERGATE_MAX_TIMEOUT_MS"),
                Ceiling("cascade.tier_timeouts_ms.code", timeout, "TIERGATE_MAX_TIMEOUT_MS"),
                Ceiling("limits.max_output_kb", settings.max_output_kb, "TIERGATE_MAX_OUTPUT_KB"),
                *(
                    Ceiling(f"pool.{name}", workers, "TIERGATE_MAX_WORKERS_PER_FUNCTION")
                    for name in ("size", "min_size", "max_size")
                ),
            )
        )

    def fit(self, manifest: Mapping[str, Any], *, refuse: bool) -> Mapping[str, Any]:
        """``manifest`` with every field above its ceiling cut down to it; with ``refuse`` (a
        deploy), the first such field is refused instead."""
        for ceiling in self._all:
            manifest = ceiling.fit(manifest, refuse=refuse)
        return manifest


class DeployQuotas:
    """What a deploy is checked against: the ceilings, the tenant's functions and its deploys in
    progress in this gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.ceilings = Ceilings.from_settings(settings)
        self.max_functions = settings.max_functions_per_tenant
        self.max_deploys = settings.max_concurrent_deploys_per_tenant
        self._deploying: dict[str, int] = {}

    @contextlib.contextmanager
    def deploying(self, tenant: str) -> Iterator[None]:
        """Hold one of the tenant's places for a deploy in progress in this process.

        A deploy starts processes (the runtime's checks and compilers) and holds its code in
        memory. Past the limit it is refused at once (429 with ``Retry-After``) rather than
        queued: a queue would keep each waiting request and its body (up to
        ``TIERGATE_MAX_CODE_BYTES``) for as long as the tenant's other deploys compile.
        """
        running = self._deploying.get(tenant, 0)
        if running >= self.max_deploys:
            raise TooManyDeploys(
                f"this tenant has {running} deploys in progress, as many as it may have at once "
                "(TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT); retry when one has ended",
                retry_after=1,
                limit=self.max_deploys,
            )
        self._deploying[tenant] = running + 1
        try:
            yield
        finally:
            self._deploying[tenant] -= 1
            if not self._deploying[tenant]:
                del self._deploying[tenant]

    def check_function_count(self, function_id: str, existing: Collection[str]) -> None:
        """A new function id is refused once the tenant has its quota; a redeploy never is."""
        if function_id not in existing and len(existing) >= self.max_functions:
            raise QuotaExceeded(
                f"this tenant has {len(existing)} functions, as many as it may have "
                "(TIERGATE_MAX_FUNCTIONS_PER_TENANT); delete one to deploy another",
                limit=self.max_functions,
            )
