"""The object-store interface. Backends raise only ``ObjectNotFound`` or ``StorageUnavailable``."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


class ObjectNotFound(KeyError):
    """The key does not exist. Internal to storage: callers turn it into a domain error."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> ObjectInfo:
        return cls(len(data), hashlib.sha256(data).hexdigest())


class ObjectStore(Protocol):
    """Keys are ``/``-separated paths of ``[A-Za-z0-9._@+=-]`` segments, never ``..``."""

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        """Store ``data`` atomically: a reader sees the old object or the new one, never a part."""

    async def get(self, key: str) -> bytes:
        """The object's bytes; ``ObjectNotFound`` when absent."""

    async def head(self, key: str) -> ObjectInfo | None:
        """Size and sha256 of the object, or ``None`` when absent."""

    async def delete(self, key: str) -> None:
        """Remove the object; absent keys are not an error."""

    def list(self, prefix: str) -> AsyncIterator[str]:
        """Every key that starts with ``prefix``, in lexicographic order."""

    async def ping(self) -> None:
        """Return when the store answers; ``StorageUnavailable`` otherwise (for /readyz)."""

    async def close(self) -> None:
        """Release connections and threads."""
