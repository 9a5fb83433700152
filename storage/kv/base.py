"""The KV interface. Backends raise only ``StorageUnavailable``; missing keys are ``None``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class KV(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent."""

    async def set(self, key: str, value: bytes) -> None:
        """Write ``value`` (last writer wins)."""

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """Write ``value`` only if the current value is ``expected`` (``None``: absent).

        Pointers (``latest``), version counters and key revocation rely on this to stay correct
        with several gateway instances writing at once.
        """

    async def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""

    def scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order."""

    async def ping(self) -> None:
        """Return when the store answers; ``StorageUnavailable`` otherwise (for /readyz)."""

    async def close(self) -> None:
        """Release connections and threads."""
