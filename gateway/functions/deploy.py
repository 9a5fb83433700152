"""A deploy's own work: manifest → checks → compile → reserve a version → store → publish.

Everything that can refuse a deploy (the manifest, its tiers and secrets, the tenant's quotas, the
compiler) speaks before a version is reserved or a byte is stored, so a refused deploy changes
nothing visible. Telling other processes and writing the audit entry are the caller's part
(``FunctionService.deploy``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidManifest
from gateway.functions.manifest import Manifest, parse_manifest
from gateway.functions.quotas import DeployQuotas
from gateway.functions.records import VersionRecord
from gateway.functions.registry import Registry, artifact_key, source_key
from gateway.security.secrets import SecretStore
from plugins.manager import RuntimeRegistry
from plugins.runtime import Artifact, Runtime, Source
from storage.hybrid import HybridCodeStore
from tiers.errors import TierConfigError

TierCheck = Callable[[Mapping[str, Any]], None]  # raises TierConfigError


@dataclass(frozen=True)
class Deployment:
    """What a deploy made: the version published, and what its answer warns about (a chain to
    a function the tenant does not have yet, say) — accepted, but worth saying."""

    record: VersionRecord
    warnings: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def version(self) -> int:
        return self.record.version


class Deployer:
    def __init__(
        self,
        registry: Registry,
        code: HybridCodeStore,
        runtimes: RuntimeRegistry,
        check_tiers: TierCheck,
        secrets: SecretStore,
        quotas: DeployQuotas,
    ) -> None:
        self._registry = registry
        self._code = code
        self._runtimes = runtimes
        self._check_tiers = check_tiers
        self._secrets = secrets
        self._quotas = quotas

    async def deploy(
        self, tenant: str, data: Any, code: bytes | None, deployed_by: str
    ) -> Deployment:
        """The new version, published as ``latest``. Holds one of the tenant's places among its
        deploys in progress until it has ended (``DeployQuotas``): that also bounds how far
        racing deploys can overshoot the tenant's function quota (see docs/api.md)."""
        with self._quotas.deploying(tenant):
            manifest, runtime, warnings = await self._checked(tenant, data, code)
            artifact = None
            if runtime is not None and manifest.code is not None:
                artifact = await runtime.compile(source_of(manifest, 0))
            version = await self._registry.reserve_version(tenant, manifest.id, deployed_by)
            record = await self._store(tenant, manifest, version, artifact, deployed_by)
            await self._registry.publish(record)
            return Deployment(record, warnings)

    async def _checked(
        self, tenant: str, data: Any, code: bytes | None
    ) -> tuple[Manifest, Runtime[Any] | None, tuple[str, ...]]:
        """The parsed manifest and its runtime, once every check that can refuse it passed, and
        the warnings of a deploy that none refused."""
        runtime_name = data.get("runtime") if isinstance(data, dict) else None
        runtime = None
        if isinstance(runtime_name, str) and runtime_name:
            runtime = await self._runtimes.acquire(runtime_name)
        options = runtime.manifest_options if runtime else {}
        manifest = parse_manifest(
            data, code=code, runtime_options=options, ceilings=self._quotas.ceilings
        )
        try:
            self._check_tiers(manifest.tiers)
        except TierConfigError as exc:
            raise InvalidManifest(str(exc), field=exc.field) from None
        missing = await self._secrets.missing(tenant, manifest.secrets)
        if missing:
            raise InvalidManifest(
                f"secrets: {', '.join(missing)} not set for tenant {tenant!r} "
                f"(PUT /admin/secrets/{tenant}/<name> first)",
                field="secrets",
            )
        if manifest.code is None and not manifest.tiers:
            raise InvalidManifest(
                "code: a function needs code, or at least one of the generative, agentic or "
                "human tiers",
                field="code",
            )
        if manifest.code is not None and runtime is None:
            raise InvalidManifest("runtime: required when code is given", field="runtime")
        functions = {f.id for f in await self._registry.list_functions(tenant)}
        _check_tools(manifest, functions, tenant)
        self._quotas.check_function_count(manifest.id, functions)
        warnings = manifest.composition.warnings(functions | {manifest.id})
        return manifest, runtime, tuple(warnings)

    async def _store(
        self,
        tenant: str,
        manifest: Manifest,
        version: int,
        artifact: Artifact | None,
        deployed_by: str,
    ) -> VersionRecord:
        code_sha256, code_size = None, 0
        if manifest.code is not None:
            info = await self._code.put(source_key(tenant, manifest.id, version), manifest.code)
            code_sha256, code_size = info.sha256, info.size
        artifacts: dict[str, dict[str, Any]] = {}
        if artifact is not None:
            path = artifact_key(tenant, manifest.id, version, artifact.key)
            await self._code.put(path, artifact.data)
            artifacts[artifact.key] = dict(artifact.metadata)
        return VersionRecord(
            id=manifest.id,
            tenant=tenant,
            version=version,
            runtime=manifest.runtime,
            description=manifest.description,
            manifest=dict(manifest.raw),
            code_sha256=code_sha256,
            code_size=code_size,
            deployed_at=time.time(),
            deployed_by=deployed_by,
            precompiled=bool(artifact and artifact.precompiled),
            artifacts=artifacts,
        )


def source_of(manifest: Manifest, version: int, code: bytes | None = None) -> Source:
    """What a runtime compiles: the manifest's code (at deploy) or the stored code (at load)."""
    return Source(
        function_id=manifest.id,
        version=version,
        code=code if code is not None else manifest.code or b"",
        limits=manifest.limits,
        filename=manifest.filename,
        options=manifest.options,
    )


def _check_tools(manifest: Manifest, functions: set[str], tenant: str) -> None:
    """An agent's tools are functions of the tenant (or the function itself): one that does not
    exist is refused now, not found missing by the model at its first escalation."""
    tools = (manifest.tiers.get("agentic") or {}).get("tools") or []
    for index, tool in enumerate(tools):
        if tool not in functions and tool != manifest.id:
            field = f"tiers.agentic.tools[{index}]"
            raise InvalidManifest(
                f"{field}: tenant {tenant!r} has no function {tool!r} (deploy it first)",
                field=field,
            )

