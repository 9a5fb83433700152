"""What the python runtime keeps on this gateway's disk — unpacked code trees, single code files
and resolved environments — is a cache of what the stores hold: each can be made again from the
stored artifact (code) or the version's recorded lock (environment). ``LocalTrees`` keeps that
cache within ``max_bytes``: without a bound, a tenant deploying package after package with
requirements of its own would fill the gateway's disk (each environment may reach
``TIERGATE_PYTHON_MAX_ENV_MB``), whoever else needs it.

Entries are the children of the roots (names starting with ``.`` are work in progress). When the
entries' sizes add up to more than ``max_bytes``, the least recently used ones that no loaded
function holds are removed until the rest fits. An entry is renamed out of the way on the event
loop, in the same step that saw nobody holds it, so a load that holds it a moment later finds it
missing and makes it again; only then is it deleted, in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .archive import MIB, remove_tree

log = logging.getLogger("tiergate.python")

TRASH_PREFIX = ".trash-"


class LocalTrees:
    """Start with ``await start()``; ``hold``/``release`` around a loaded function's use of a
    path; ``await sweep()`` after anything was added."""

    def __init__(self, roots: Sequence[Path], max_bytes: int) -> None:
        self.roots = tuple(roots)
        self.max_bytes = max_bytes
        self._held: Counter[Path] = Counter()
        self._used: dict[Path, float] = {}
        self._sizes: dict[Path, int] = {}
        self._sweeping = asyncio.Lock()

    async def start(self) -> None:
        """Remove what an earlier run left in the trash."""
        await asyncio.to_thread(self._empty_trash)

    def hold(self, paths: Iterable[Path]) -> None:
        """``paths`` are in use (a loaded function's code and environment) until released."""
        now = time.time()
        for path in paths:
            self._held[path] += 1
            self._used[path] = now

    def release(self, paths: Iterable[Path]) -> None:
        now = time.time()
        for path in paths:
            self._held[path] -= 1
            self._used[path] = now
            if self._held[path] <= 0:
                del self._held[path]

    def touch(self, path: Path) -> None:
        """``path`` was just made or used (kept longer than older entries)."""
        self._used[path] = time.time()

    @property
    def size(self) -> int:
        """What the entries seen at the last sweep hold, in bytes."""
        return sum(self._sizes.values())

    async def sweep(self) -> list[Path]:
        """Remove least recently used entries nobody holds until the rest fits in
        ``max_bytes``; the paths removed."""
        async with self._sweeping:
            entries = await asyncio.to_thread(self._scan)
            total = sum(size for _, size, _ in entries)
            if total <= self.max_bytes:
                return []
            removed: list[Path] = []
            trash: list[Path] = []
            for path, size, _ in sorted(entries, key=lambda e: self._used.get(e[0], e[2])):
                if total <= self.max_bytes:
                    break
                if self._held[path] > 0:
                    continue
                moved = path.with_name(f"{TRASH_PREFIX}{secrets.token_hex(6)}")
                try:
                    os.rename(path, moved)
                except OSError:
                    continue
                trash.append(moved)
                removed.append(path)
                total -= size
                self._sizes.pop(path, None)
                self._used.pop(path, None)
            if removed:
                log.info(
                    "python runtime: removed %d cached trees and environments (%.1f MiB left, "
                    "TIERGATE_PYTHON_MAX_DISK_MB=%g)",
                    len(removed), total / MIB, self.max_bytes / MIB,
                )
            if total > self.max_bytes:
                log.warning(
                    "python runtime: loaded functions hold %.1f MiB of code and environments, "
                    "more than TIERGATE_PYTHON_MAX_DISK_MB=%g", total / MIB, self.max_bytes / MIB,
                )
            await asyncio.to_thread(_remove_all, trash)
            return removed

    def _scan(self) -> list[tuple[Path, int, float]]:
        """Every entry with its size (measured once: entries never change) and mtime."""
        found = []
        for root in self.roots:
            try:
                children = list(os.scandir(root))
            except FileNotFoundError:
                continue
            for child in children:
                if child.name.startswith("."):
                    continue
                path = Path(child.path)
                try:
                    mtime = child.stat(follow_symlinks=False).st_mtime
                    if path not in self._sizes:
                        self._sizes[path] = _size(child)
                except FileNotFoundError:
                    continue
                found.append((path, self._sizes[path], mtime))
        return found

    def _empty_trash(self) -> None:
        for root in self.roots:
            if root.is_dir():
                _remove_all(p for p in root.iterdir() if p.name.startswith(TRASH_PREFIX))


def _size(entry: os.DirEntry[str]) -> int:
    if not entry.is_dir(follow_symlinks=False):
        return entry.stat(follow_symlinks=False).st_size
    return sum(
        os.lstat(os.path.join(folder, name)).st_size
        for folder, _, files in os.walk(entry.path)
        for name in files
    )


def _remove_all(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)
