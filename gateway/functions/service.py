"""Deploying and loading functions: manifest → compile → store → publish, and back again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from gateway.errors import InvalidManifest, RuntimeUnavailable, StorageUnavailable, UnknownRuntime
from gateway.functions.manifest import Manifest, parse_manifest
from gateway.functions.quotas import DeployQuotas
from gateway.functions.records import VersionRecord
from gateway.functions.registry import Registry, artifact_key, source_key
from gateway.functions.schemas import SchemaCheck
from gateway.invoke.loaded import LoadedFunction
from gateway.metrics import Metrics
from gateway.security.secrets import SecretStore
from plugins.manager import RuntimeRegistry
from plugins.runtime import Artifact, FunctionInfo, Runtime, Source
from storage.hybrid import HybridCodeStore
from storage.objects.base import ObjectNotFound

log = logging.getLogger("tiergate.functions")

TierCheck = Callable[[Mapping[str, Any]], None]  # raises InvalidManifest


class FunctionService:
    def __init__(
        self,
        registry: Registry,
        code: HybridCodeStore,
        runtimes: RuntimeRegistry,
        metrics: Metrics,
        check_tiers: TierCheck,
        secrets: SecretStore,
        quotas: DeployQuotas,
    ) -> None:
        self.registry = registry
        self._code = code
        self._runtimes = runtimes
        self._metrics = metrics
        self._check_tiers = check_tiers
        self._secrets = secrets
        self._quotas = quotas
        self._deploys: set[asyncio.Task[dict[str, Any]]] = set()

    async def deploy(
        self, tenant: str, data: Any, code: bytes | None, deployed_by: str
    ) -> dict[str, Any]:
        """Validate, check quotas and compile first; only then reserve a version and store
        anything. The deploy holds one of the tenant's places among its deploys in progress
        until it has ended, even when its client goes away: cancelled, it could leave a
        compiler's processes running, uncounted. Holding the place to the end also bounds how far
        racing deploys can overshoot the tenant's function quota (see docs/api.md)."""
        task = asyncio.create_task(self._deploy_in_place(tenant, data, code, deployed_by))
        self._deploys.add(task)
        task.add_done_callback(self._deployed)
        return await asyncio.shield(task)

    async def _deploy_in_place(
        self, tenant: str, data: Any, code: bytes | None, deployed_by: str
    ) -> dict[str, Any]:
        with self._quotas.deploying(tenant):
            return await self._deploy(tenant, data, code, deployed_by)

    def _deployed(self, task: asyncio.Task[dict[str, Any]]) -> None:
        """Forget a finished deploy. Its failure is its client's answer; if the client went
        away, it is logged here rather than as a task exception nobody retrieved."""
        self._deploys.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            log.debug("deploy failed: %s", failure)

    async def _deploy(
        self, tenant: str, data: Any, code: bytes | None, deployed_by: str
    ) -> dict[str, Any]:
        runtime_name = data.get("runtime") if isinstance(data, dict) else None
        runtime = None
        if isinstance(runtime_name, str) and runtime_name:
            runtime = await self._runtimes.acquire(runtime_name)
        options = runtime.manifest_options if runtime else {}
        manifest = parse_manifest(
            data, code=code, runtime_options=options, ceilings=self._quotas.ceilings
        )
        self._check_tiers(manifest.tiers)
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
        functions = await self.registry.list_functions(tenant)
        self._quotas.check_function_count(manifest.id, {f.id for f in functions})
        artifact = None
        if runtime is not None and manifest.code is not None:
            artifact = await runtime.compile(_source(manifest, 0))
        version = await self.registry.reserve_version(tenant, manifest.id, deployed_by)
        record = await self._store(tenant, manifest, version, artifact, deployed_by)
        await self.registry.publish(record)
        return {
            "id": manifest.id,
            "version": version,
            "runtime": manifest.runtime,
            "code_sha256": record.code_sha256,
            "code_size": record.code_size,
            "deployed_at": record.deployed_at,
            "precompiled": record.precompiled,
        }

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

    async def start_runtimes_in_use(self) -> None:
        """Start, at gateway startup, every runtime a deployed function needs, so the first call
        after a restart pays only for loading its function (not for starting worker processes)."""
        names = {f.runtime for f in await self.registry.list_functions(None)}
        for name in sorted(n for n in names if n):
            try:
                await self._runtimes.acquire(name)
            except (UnknownRuntime, RuntimeUnavailable) as exc:
                log.warning("functions need runtime %r, which cannot start: %s", name, exc.detail)

    async def load(self, tenant: str, function_id: str, version: int) -> LoadedFunction:
        """A cold start: version record → artifact (or recompile from source) → runtime.load."""
        record = await self.registry.get_version(tenant, function_id, version)
        runtime = None
        if record.code_sha256 and record.runtime:
            runtime = await self._runtimes.acquire(record.runtime)
        options = runtime.manifest_options if runtime else {}
        manifest = parse_manifest(
            record.manifest, runtime_options=options, ceilings=self._quotas.ceilings, stored=True
        )
        fn = LoadedFunction(
            tenant=tenant,
            function_id=function_id,
            version=version,
            manifest=manifest.raw,
            limits=manifest.limits,
            env=manifest.env,
            secrets=manifest.secrets,
            input_check=SchemaCheck(manifest.input_schema),
            output_check=SchemaCheck(manifest.output_schema),
            metrics=self._metrics.for_function(tenant, function_id),
            slots=asyncio.Semaphore(manifest.max_concurrency) if manifest.max_concurrency else None,
        )
        if runtime is not None:
            artifact = await self._artifact(record, manifest, runtime)
            info = FunctionInfo(
                function_id, version, tenant, manifest.limits, manifest.env, manifest.options
            )
            fn.handle = await runtime.load(artifact, info)
            fn.runtime = runtime
        return fn

    async def _artifact(
        self, record: VersionRecord, manifest: Manifest, runtime: Runtime[Any]
    ) -> Artifact:
        tenant, function_id, version = record.tenant, record.id, record.version
        key = runtime.artifact_key(manifest.limits)
        metadata = record.artifacts.get(key)
        if metadata is not None:
            try:
                data = await self._code.get(artifact_key(tenant, function_id, version, key))
                return Artifact(key, data, metadata, precompiled=True)
            except ObjectNotFound:
                pass
        try:
            code = await self._code.get(source_key(tenant, function_id, version))
        except ObjectNotFound:
            raise StorageUnavailable(
                f"the code of {function_id!r} version {version} is missing from storage"
            ) from None
        artifact = await runtime.compile(_source(manifest, version, code))
        await self._code.put(
            artifact_key(tenant, function_id, version, artifact.key), artifact.data
        )
        await self._remember_artifact(record, artifact)
        return artifact

    async def _remember_artifact(self, record: VersionRecord, artifact: Artifact) -> None:
        artifacts = {**record.artifacts, artifact.key: dict(artifact.metadata)}
        await self.registry.save_version(replace(record, artifacts=artifacts))


def _source(manifest: Manifest, version: int, code: bytes | None = None) -> Source:
    return Source(
        function_id=manifest.id,
        version=version,
        code=code if code is not None else manifest.code or b"",
        limits=manifest.limits,
        filename=manifest.filename,
        options=manifest.options,
    )
