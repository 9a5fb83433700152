"""Hybrid code storage (the Functions.do design): code and artifacts in the object store, with the
KV as the other home — written there when ``write_to_object`` is off, read from there as a
fallback, and migrated out of it on demand (or on read, with ``auto_migrate``).

A KV copy is stored as ``blob/<key>`` → 64 hex digits of its SHA-256, then the bytes, so any copy
can be verified. Nothing here ever deletes the only verified copy of anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from .kv.base import KV
from .objects.base import ObjectInfo, ObjectNotFound, ObjectStore

BLOB = "blob/"


@dataclass
class CleanupResult:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _pack(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode() + data


def _unpack(value: bytes) -> tuple[str, bytes]:
    return value[:64].decode(), value[64:]


class HybridCodeStore:
    def __init__(
        self,
        objects: ObjectStore,
        kv: KV,
        *,
        prefer_object: bool = True,
        write_to_object: bool = True,
        auto_migrate: bool = False,
    ) -> None:
        self.objects = objects
        self.kv = kv
        self.prefer_object = prefer_object
        self.write_to_object = write_to_object
        self.auto_migrate = auto_migrate

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        if self.write_to_object:
            return await self.objects.put(key, data)
        await self.kv.set(BLOB + key, _pack(data))
        return ObjectInfo.of(data)

    async def get(self, key: str) -> bytes:
        if self.prefer_object:
            try:
                return await self.objects.get(key)
            except ObjectNotFound:
                return await self._from_kv(key)
        try:
            return await self._from_kv(key)
        except ObjectNotFound:
            return await self.objects.get(key)

    async def _from_kv(self, key: str) -> bytes:
        value = await self.kv.get(BLOB + key)
        if value is None:
            raise ObjectNotFound(key)
        sha, data = _unpack(value)
        if self.auto_migrate:
            await self._copy_to_object(key, sha, data)
        return data

    async def _copy_to_object(self, key: str, sha: str, data: bytes) -> bool:
        """Put ``data`` in the object store unless a verified copy is there; True if copied."""
        found = await self.objects.head(key)
        if found is not None and found.sha256 == sha:
            return False
        await self.objects.put(key, data)
        stored = await self.objects.head(key)
        if stored is None or stored.sha256 != sha:
            raise OSError(f"object copy of {key} does not verify after writing it")
        return True

    async def delete(self, key: str) -> None:
        await self.objects.delete(key)
        await self.kv.delete(BLOB + key)

    async def delete_prefix(self, prefix: str) -> None:
        for key in [k async for k in self.objects.list(prefix)]:
            await self.objects.delete(key)
        for key in [k async for k, _ in self.kv.scan(BLOB + prefix)]:
            await self.kv.delete(key)

    async def locate(self, key: str) -> dict[str, bool]:
        return {
            "object": await self.objects.head(key) is not None,
            "kv": await self.kv.get(BLOB + key) is not None,
        }

    async def migrate(self, prefix: str) -> Literal["migrated", "already_migrated"]:
        """Copy every KV copy under ``prefix`` into the object store, verifying each."""
        copied = False
        async for kv_key, value in self.kv.scan(BLOB + prefix):
            sha, data = _unpack(value)
            copied = await self._copy_to_object(kv_key[len(BLOB) :], sha, data) or copied
        return "migrated" if copied else "already_migrated"

    async def cleanup_kv(self, prefix: str) -> CleanupResult:
        """Drop KV copies whose object copy re-reads with the same SHA-256; keep the others."""
        result = CleanupResult()
        entries = [(k, v) async for k, v in self.kv.scan(BLOB + prefix)]
        for kv_key, value in entries:
            key = kv_key[len(BLOB) :]
            sha, _ = _unpack(value)
            try:
                verified = hashlib.sha256(await self.objects.get(key)).hexdigest() == sha
            except ObjectNotFound:
                verified = False
            if verified:
                await self.kv.delete(kv_key)
                result.removed.append(key)
            else:
                result.kept.append(key)
        return result
