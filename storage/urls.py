"""Backends are chosen by URL scheme, in one place. Unset means embedded: files and SQLite under
the data dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from .buckets import Buckets
from .events.base import EventTransport
from .executions.base import ExecutionStore
from .kv.base import KV
from .objects.base import ObjectStore
from .queue.base import WorkQueue


class StorageURLError(ValueError):
    """A storage URL we cannot use; the message names the variable."""


def _s3_objects(path: Path, url: str, options: dict[str, str]) -> ObjectStore:
    from .objects.s3 import S3ObjectStore

    parsed = urlparse(url)
    return S3ObjectStore(parsed.netloc, parsed.path, options.get("endpoint_url") or None)


def _file_objects(path: Path, url: str, options: dict[str, str]) -> ObjectStore:
    from .objects.local import LocalObjectStore

    return LocalObjectStore(path)


def _sqlite_kv(path: Path, url: str, options: dict[str, str]) -> KV:
    from .kv.sqlite import SQLiteKV

    return SQLiteKV(path)


def _sqlite_executions(path: Path, url: str, options: dict[str, str]) -> ExecutionStore:
    from .executions.sqlite import SQLiteExecutionStore

    return SQLiteExecutionStore(path)


def _redis_kv(path: Path, url: str, options: dict[str, str]) -> KV:
    from .kv.redis import RedisKV

    return RedisKV(url)


def _redis_executions(path: Path, url: str, options: dict[str, str]) -> ExecutionStore:
    from .executions.redis import RedisExecutionStore

    return RedisExecutionStore(url)


def _sqlite_queue(path: Path, url: str, bound: int) -> WorkQueue:
    from .queue.sqlite import SQLiteWorkQueue

    return SQLiteWorkQueue(path, bound=bound)


def _redis_queue(path: Path, url: str, bound: int) -> WorkQueue:
    from .queue.redis import RedisWorkQueue

    return RedisWorkQueue(url, bound=bound)


Opener = Callable[[Path, str, dict[str, str]], object]
QueueOpener = Callable[[Path, str, int], WorkQueue]
AnyOpener = TypeVar("AnyOpener")

OBJECT_SCHEMES: dict[str, Opener] = {"file": _file_objects, "s3": _s3_objects}
KV_SCHEMES: dict[str, Opener] = {"sqlite": _sqlite_kv, "redis": _redis_kv, "rediss": _redis_kv}
EXECUTION_SCHEMES: dict[str, Opener] = {
    "sqlite": _sqlite_executions,
    "redis": _redis_executions,
    "rediss": _redis_executions,
}
QUEUE_SCHEMES: dict[str, QueueOpener] = {
    "sqlite": _sqlite_queue,
    "redis": _redis_queue,
    "rediss": _redis_queue,
}


def _resolve(
    variable: str, url: str, schemes: dict[str, AnyOpener], hint: str
) -> tuple[AnyOpener, Path]:
    parsed = urlparse(url)
    opener = schemes.get(parsed.scheme)
    if opener is None:
        raise StorageURLError(f"{variable}: unsupported scheme {parsed.scheme!r} (use {hint})")
    if parsed.scheme == "s3" and not parsed.netloc:
        raise StorageURLError(f"{variable}: name the bucket, e.g. s3://my-bucket/tiergate")
    if parsed.scheme in ("file", "sqlite") and (parsed.netloc or not parsed.path.startswith("/")):
        raise StorageURLError(
            f"{variable}: use an absolute path, e.g. {parsed.scheme}:///var/lib/x"
        )
    return opener, Path(parsed.path)


def check_urls(object_store: str | None, kv: str | None) -> None:
    """Fail at startup, with the variable named, rather than on the first request."""
    if object_store:
        _resolve("TIERGATE_OBJECT_STORE", object_store, OBJECT_SCHEMES, _hint(OBJECT_SCHEMES))
    if kv:
        _resolve("TIERGATE_KV", kv, KV_SCHEMES, _hint(KV_SCHEMES))


def _hint(schemes: dict[str, Opener]) -> str:
    return " or ".join(f"{s}://" for s in sorted(schemes))


def open_object_store(url: str | None, data_dir: Path, **options: str) -> ObjectStore:
    if not url:
        return _file_objects(data_dir / "objects", "", options)
    opener, path = _resolve("TIERGATE_OBJECT_STORE", url, OBJECT_SCHEMES, _hint(OBJECT_SCHEMES))
    return opener(path, url, options)  # type: ignore[return-value]


def open_kv(url: str | None, data_dir: Path, **options: str) -> KV:
    if not url:
        return _sqlite_kv(data_dir / "tiergate.db", "", options)
    opener, path = _resolve("TIERGATE_KV", url, KV_SCHEMES, _hint(KV_SCHEMES))
    return opener(path, url, options)  # type: ignore[return-value]


def open_execution_store(kv_url: str | None, data_dir: Path, **options: str) -> ExecutionStore:
    if not kv_url:
        return _sqlite_executions(data_dir / "tiergate.db", "", options)
    opener, path = _resolve("TIERGATE_KV", kv_url, EXECUTION_SCHEMES, _hint(KV_SCHEMES))
    return opener(path, kv_url, options)  # type: ignore[return-value]


def open_queue(kv_url: str | None, data_dir: Path, *, bound: int) -> WorkQueue:
    """The work queue beside the KV: in its SQLite file, or on its Redis server; ``bound`` is
    how many jobs it may hold."""
    if not kv_url:
        return _sqlite_queue(data_dir / "tiergate.db", "", bound)
    opener, path = _resolve("TIERGATE_KV", kv_url, QUEUE_SCHEMES, _hint(KV_SCHEMES))
    return opener(path, kv_url, bound)


def local_paths(object_store: str | None, kv: str | None, data_dir: Path) -> list[Path]:
    """Where the embedded stores keep their files: the data dir, and any ``file://`` object store
    or the directory of a ``sqlite://`` KV outside it (function sandboxes must never show them)."""
    paths = [data_dir]
    if object_store and urlparse(object_store).scheme == "file":
        paths.append(Path(urlparse(object_store).path))
    if kv and urlparse(kv).scheme == "sqlite":
        paths.append(Path(urlparse(kv).path).parent)
    return paths


def redis_url(kv_url: str | None) -> str | None:
    """The Redis server behind a KV URL, when it is one (for publish/subscribe, buckets)."""
    return kv_url if kv_url and urlparse(kv_url).scheme in ("redis", "rediss") else None


def open_buckets(kv_url: str | None, kv: KV, *, processes: int) -> Buckets:
    """Rate-limit buckets next to the KV: on Redis when it is Redis, in the KV when several
    processes share an embedded one, else in this process."""
    from .buckets import KVBuckets, MemoryBuckets, RedisBuckets

    url = redis_url(kv_url)
    if url is not None:
        return RedisBuckets(url)
    return KVBuckets(kv) if processes > 1 else MemoryBuckets()


def open_events(kv_url: str | None, kv: KV, *, origin: str) -> EventTransport:
    """Events between the processes sharing ``kv``: its event log, and beside it a Redis
    channel when the KV is Redis. ``origin`` names this process (its own events stay here)."""
    from .events.log import KVEventLog

    url = redis_url(kv_url)
    if url is None:
        return KVEventLog(kv, origin)
    from .events.redis import RedisEventChannel

    return KVEventLog(kv, origin, channel=RedisEventChannel(url))
