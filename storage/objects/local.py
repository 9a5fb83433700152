"""Objects as files under a root directory, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from storage.errors import StorageUnavailable

from ..files import write_atomically
from ..threads import Offload
from .base import ObjectInfo, ObjectNotFound

SEGMENT = re.compile(r"^[A-Za-z0-9._@+=-]+$")


def check_key(key: str) -> list[str]:
    """The key's path segments; ``ValueError`` for anything that could leave the root."""
    parts = key.split("/")
    for part in parts:
        if part in ("", ".", "..") or not SEGMENT.match(part):
            raise ValueError(f"invalid object key {key!r}")
    return parts


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._io = Offload("objects", 4)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key))

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        await self._io.run(_guarded, write_atomically, path, data)
        return ObjectInfo.of(data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await self._io.run(_guarded, path.read_bytes)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            return ObjectInfo.of(await self.get(key))
        except ObjectNotFound:
            return None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await self._io.run(_guarded, _remove, path, self.root)

    async def list(self, prefix: str) -> AsyncIterator[str]:
        keys = await self._io.run(_guarded, _walk, self.root)
        for key in keys:
            if key.startswith(prefix):
                yield key

    async def ping(self) -> None:
        await self._io.run(_guarded, _probe, self.root)

    async def close(self) -> None:
        self._io.shutdown()


def _guarded(fn, *args):  # type: ignore[no-untyped-def]
    """OS errors other than a missing file are storage faults, reported as such."""
    try:
        return fn(*args)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageUnavailable(f"object store: {exc.strerror or exc}") from None


def _remove(path: Path, root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    parent = path.parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _walk(root: Path) -> list[str]:
    keys = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if not name.startswith(".tmp-"):
                keys.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(keys)


def _probe(root: Path) -> None:
    if not root.is_dir() or not os.access(root, os.W_OK):
        raise OSError(f"{root} is not a writable directory")
