"""The cold path below the loader's cache: a stored version → its runtime → a ``LoadedFunction``.

``VersionLoader.load`` is what the loader (``gateway/invoke/loader.py``) calls on a miss. It
prefers the artifact precompiled at deploy; when that is missing (another engine's settings, an
artifact lost), it compiles the stored source again and remembers the new artifact on the version
record, so the next cold start is quick again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from gateway.functions.deploy import source_of
from gateway.functions.manifest import Manifest, parse_manifest
from gateway.functions.quotas import DeployQuotas
from gateway.functions.records import VersionRecord
from gateway.functions.registry import Registry, artifact_key, source_key
from gateway.metrics import Metrics
from plugins.errors import RuntimeUnavailable, UnknownRuntime
from plugins.manager import RuntimeRegistry
from plugins.runtime import Artifact, FunctionInfo, Runtime
from storage.errors import StorageUnavailable
from storage.hybrid import HybridCodeStore
from storage.objects.base import ObjectNotFound
from tiers.function import LoadedFunction, ResultCachePolicy
from tiers.schemas import SchemaCheck

log = logging.getLogger("tiergate.functions")


class VersionLoader:
    def __init__(
        self,
        registry: Registry,
        code: HybridCodeStore,
        runtimes: RuntimeRegistry,
        metrics: Metrics,
        quotas: DeployQuotas,
    ) -> None:
        self._registry = registry
        self._code = code
        self._runtimes = runtimes
        self._metrics = metrics
        self._quotas = quotas

    async def start_runtimes_in_use(self) -> None:
        """Start, at gateway startup, every runtime a deployed function needs, so the first call
        after a restart pays only for loading its function (not for starting worker processes)."""
        names = {f.runtime for f in await self._registry.list_functions(None)}
        for name in sorted(n for n in names if n):
            try:
                await self._runtimes.acquire(name)
            except (UnknownRuntime, RuntimeUnavailable) as exc:
                log.warning("functions need runtime %r, which cannot start: %s", name, exc.detail)

    async def load(self, tenant: str, function_id: str, version: int) -> LoadedFunction:
        """A cold start: version record → artifact (or recompile from source) → runtime.load."""
        record = await self._registry.get_version(tenant, function_id, version)
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
        fn.extras["composition"] = manifest.composition  # read by the finisher and compose
        if manifest.cache_ttl_s is not None:
            fn.result_cache = ResultCachePolicy(manifest.cache_ttl_s, record.deployed_at)
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
        artifact = await runtime.compile(source_of(manifest, version, code))
        await self._code.put(
            artifact_key(tenant, function_id, version, artifact.key), artifact.data
        )
        await self._remember_artifact(record, artifact)
        return artifact

    async def _remember_artifact(self, record: VersionRecord, artifact: Artifact) -> None:
        artifacts = {**record.artifacts, artifact.key: dict(artifact.metadata)}
        await self._registry.save_version(replace(record, artifacts=artifacts))
