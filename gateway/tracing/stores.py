"""Storage reads as spans: ``kv get`` and ``object get`` inside a traced execution (a cold load
reads the version record from the KV and the code from the object store, or from the KV).

Wrappers the wiring puts around the stores the registry and the code store read through, only
when the gateway traces. Reads outside a traced execution (background checks, sweeps) make no
spans: each would start a trace of its own. Keys name tenants, functions and versions, never
contents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from storage.kv.base import KV
from storage.objects.base import ObjectInfo, ObjectNotFound, ObjectStore


class TracedKV:
    """A KV whose reads inside a traced execution are ``kv get`` spans (reads outside one, such
    as background checks, make no spans: they would each start a trace of their own)."""

    def __init__(self, inner: KV, tracer: Tracer) -> None:
        self._inner = inner
        self._tracer = tracer
        self._backend = type(inner).__name__

    async def get(self, key: str) -> bytes | None:
        if not trace.get_current_span().is_recording():
            return await self._inner.get(key)
        with self._tracer.start_as_current_span(
            "kv get", kind=SpanKind.CLIENT, attributes=_storage(self._backend, key)
        ) as span:
            value = await self._inner.get(key)
            span.set_attribute("tiergate.storage.found", value is not None)
            return value

    async def set(self, key: str, value: bytes) -> None:
        await self._inner.set(key, value)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        return await self._inner.compare_and_set(key, expected, value)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    def scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        return self._inner.scan(prefix)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


class TracedObjects:
    """An object store whose reads inside a traced execution are ``object get`` spans."""

    def __init__(self, inner: ObjectStore, tracer: Tracer) -> None:
        self._inner = inner
        self._tracer = tracer
        self._backend = type(inner).__name__

    async def get(self, key: str) -> bytes:
        if not trace.get_current_span().is_recording():
            return await self._inner.get(key)
        with self._tracer.start_as_current_span(
            "object get",
            kind=SpanKind.CLIENT,
            attributes=_storage(self._backend, key),
            record_exception=False,
            set_status_on_exception=False,  # absent is an answer (the code store reads on)
        ) as span:
            try:
                data = await self._inner.get(key)
            except ObjectNotFound:
                span.set_attribute("tiergate.storage.found", False)
                raise
            span.set_attributes(
                {"tiergate.storage.found": True, "tiergate.storage.bytes": len(data)}
            )
            return data

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        return await self._inner.put(key, data)

    async def head(self, key: str) -> ObjectInfo | None:
        return await self._inner.head(key)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    def list(self, prefix: str) -> AsyncIterator[str]:
        return self._inner.list(prefix)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


def _storage(backend: str, key: str) -> dict[str, str]:
    return {"tiergate.storage.backend": backend, "tiergate.storage.key": key}
