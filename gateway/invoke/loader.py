"""The loader: an LRU of loaded function versions, single-flight loads and a breaker per function.

Warm: one dict lookup for ``latest`` (or an alias, and one random draw when it splits its
traffic) and one LRU lookup. Cold: concurrent misses for one version share one load; the load
runs inside the function's circuit breaker, so a failing store makes callers fail fast with 503
``circuit_open`` instead of piling up. Deploy, rollback and delete bump a per-function
generation; a load that finishes after an invalidation is not cached.

Other gateway instances learn of a deploy through the event bus. As a safety net for a missed
event, what the loader knows of a function (its ``latest`` version and creation time) is checked
against the registry at most every ``verify_s`` seconds; a difference drops the function's cache.
Aliases come with that same read, so they cost no read of their own: a moved alias only makes
the function's record be read again (``forget_pointers``), its loaded versions stay warm. An alias
this process does not know is looked up once more before the call is refused (it may have been
created on another instance a moment ago).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
from cachetools import LRUCache

from gateway.errors import AliasNotFound, CircuitOpen, NotFound, RetryLater, TiergateError
from gateway.functions.aliases import Route, routes_of
from gateway.functions.registry import Registry
from gateway.metrics import BREAKER_STATES, FunctionMetrics, Metrics
from plugins.errors import (
    CompileError,
    PayloadTooLarge,
    QueueFull,
    RuntimeUnavailable,
    UnknownRuntime,
)
from storage.errors import StorageUnavailable
from tiers.function import LoadedFunction

log = logging.getLogger("tiergate.loader")

FnKey = tuple[str, str]
T = TypeVar("T")
VersionKey = tuple[str, str, int]
LoadFn = Callable[[str, str, int], Awaitable[LoadedFunction]]


class _EvictingLRU(LRUCache[VersionKey, LoadedFunction]):
    def __init__(self, maxsize: int, on_evict: Callable[[LoadedFunction], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[VersionKey, LoadedFunction]:
        key, value = super().popitem()
        self._on_evict(value)
        return key, value


class _BreakerWatch(pybreaker.CircuitBreakerListener):
    """Records when a breaker opened (for ``Retry-After``) and mirrors its state in a gauge."""

    def __init__(self, metrics: FunctionMetrics) -> None:
        self.metrics = metrics

    def state_change(self, cb: pybreaker.CircuitBreaker, old: Any, new: Any) -> None:
        self.metrics.breaker_state = BREAKER_STATES.get(new.name, 0)


class _Known:
    """What the registry said about a function (``latest``, the routes of its aliases), and when
    to ask again."""

    __slots__ = ("aliases", "check_at", "identity", "latest")

    def __init__(
        self,
        latest: int,
        identity: tuple[Any, ...],
        check_at: float,
        aliases: dict[str, Route],
    ) -> None:
        self.latest = latest
        self.identity = identity
        self.check_at = check_at
        self.aliases = aliases


class Loader:
    def __init__(
        self,
        registry: Registry,
        load: LoadFn,
        metrics: Metrics,
        *,
        size: int,
        fail_max: int,
        reset_s: float,
        verify_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._load = load
        self._metrics = metrics
        self._cache = _EvictingLRU(size, self._unload_later)
        self._known: dict[FnKey, _Known] = {}
        self._forgotten = 0  # bumped whenever pointers are forgotten (see ``_verify``)
        self._verify_s = verify_s
        self._inflight: dict[VersionKey, asyncio.Future[LoadedFunction]] = {}
        self._generation: dict[FnKey, int] = {}
        self._breakers: dict[FnKey, pybreaker.CircuitBreaker] = {}
        self._fail_max = fail_max
        self._reset_s = reset_s
        self._unloads: set[asyncio.Task[None]] = set()

    async def get(
        self, tenant: str, function_id: str, version: int | None, alias: str | None = None
    ) -> tuple[LoadedFunction, bool]:
        """The loaded function and whether it came from the cache (``cache_hit``): ``version``,
        else the version ``alias`` picks for this call, else ``latest``."""
        fkey = (tenant, function_id)
        known = self._known.get(fkey)
        if known is None or known.check_at <= time.monotonic():
            known = await self._verify(fkey, known)
        if version is None:
            if alias is None:
                version = known.latest
            else:
                route = known.aliases.get(alias) or await self._look_again(fkey, known, alias)
                version = route.pick()
        loaded = self._cache.get((tenant, function_id, version))
        if loaded is not None:
            loaded.metrics.cache_hits += 1
            return loaded, True
        return await self._single_flight(fkey, version), False

    async def _look_again(self, fkey: FnKey, known: _Known, alias: str) -> Route:
        """An alias this process does not know (yet): ask the registry once more."""
        route = (await self._verify(fkey, known)).aliases.get(alias)
        if route is None:
            raise AliasNotFound(
                f"function {fkey[1]!r} has no alias {alias!r}", function_id=fkey[1], alias=alias
            )
        return route

    async def _verify(self, fkey: FnKey, known: _Known | None) -> _Known:
        """Ask the registry; a function that changed since it was cached is dropped from the cache.

        When the registry cannot answer, a function already known keeps serving as it was. Not
        inside the breaker: a metadata read that succeeds says nothing of whether loads do.
        """
        forgotten = self._forgotten
        try:
            record = await self._registry.get_function(*fkey)
        except NotFound:
            self.invalidate(*fkey)
            raise
        except (RetryLater, StorageUnavailable):
            if known is None:
                raise
            known.check_at = time.monotonic() + 1.0
            return known
        # Pointers forgotten while this read was under way may have moved after it: serve this
        # call by it, but read again on the next.
        check_in = self._verify_s if forgotten == self._forgotten else 0.0
        identity = (record.created_at, record.latest)
        if known is not None and known.identity != identity:
            self.invalidate(*fkey)
        check_at = time.monotonic() + check_in
        known = _Known(record.latest, identity, check_at, routes_of(fkey[1], record.aliases))
        self._known[fkey] = known
        return known

    async def _single_flight(self, fkey: FnKey, version: int) -> LoadedFunction:
        vkey = (*fkey, version)
        pending = self._inflight.get(vkey)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LoadedFunction] = asyncio.get_running_loop().create_future()
        self._inflight[vkey] = future
        generation = self._generation.get(fkey, 0)
        try:
            started = time.perf_counter()
            loaded = await self._guarded(fkey, self._load(*vkey))
            runtime = loaded.manifest.get("runtime") or "none"
            self._metrics.cold_start(runtime, time.perf_counter() - started)
            loaded.metrics.cold_starts += 1
            if self._generation.get(fkey, 0) == generation:
                self._cache[vkey] = loaded
            future.set_result(loaded)
            return loaded
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may all have gone
            raise
        finally:
            del self._inflight[vkey]

    async def _guarded(self, fkey: FnKey, work: Awaitable[T]) -> T:
        breaker = self._breaker(fkey)
        try:
            with breaker.calling():
                return await work
        except pybreaker.CircuitBreakerError:
            if asyncio.iscoroutine(work):
                work.close()
            raise CircuitOpen(
                f"function {fkey[1]!r} is failing to load; not trying again for a while",
                retry_after=self._retry_after(breaker),
                function_id=fkey[1],
            ) from None

    def _breaker(self, fkey: FnKey) -> pybreaker.CircuitBreaker:
        breaker = self._breakers.get(fkey)
        if breaker is None:
            watch = _BreakerWatch(self._metrics.for_function(*fkey))
            breaker = pybreaker.CircuitBreaker(
                fail_max=self._fail_max,
                reset_timeout=self._reset_s,
                exclude=[_excluded],
                listeners=[watch],
                throw_new_error_on_trip=False,
                name=f"{fkey[0]}/{fkey[1]}",
            )
            self._breakers[fkey] = breaker
        return breaker

    def _retry_after(self, breaker: pybreaker.CircuitBreaker) -> float:
        opened = breaker._state_storage.opened_at  # pybreaker exposes it only here
        if opened is None:
            return self._reset_s
        elapsed = (datetime.now(UTC) - opened).total_seconds()
        return max(1.0, self._reset_s - elapsed)

    def invalidate(self, tenant: str, function_id: str) -> None:
        """Forget every cached version and the ``latest`` pointer of a function."""
        fkey = (tenant, function_id)
        self._generation[fkey] = self._generation.get(fkey, 0) + 1
        self.forget_pointers(tenant, function_id)
        for vkey in [k for k in self._cache if k[:2] == fkey]:
            self._unload_later(self._cache.pop(vkey))

    def forget_pointers(self, tenant: str, function_id: str) -> None:
        """Forget where a function's ``latest`` and aliases point (read again on its next call),
        keeping its loaded versions: versions never change, only what points at them."""
        self._forgotten += 1
        self._known.pop((tenant, function_id), None)

    def invalidate_all(self) -> None:
        for tenant, function_id in {key[:2] for key in self._cache} | set(self._known):
            self.invalidate(tenant, function_id)

    def cached(self) -> int:
        return len(self._cache)

    def _unload_later(self, loaded: LoadedFunction) -> None:
        if loaded.runtime is None:
            return
        task = asyncio.get_running_loop().create_task(loaded.runtime.unload(loaded.handle))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def close(self) -> None:
        for vkey in list(self._cache):
            self._unload_later(self._cache.pop(vkey))
        if self._unloads:
            await asyncio.gather(*self._unloads, return_exceptions=True)


def _excluded(exc: BaseException) -> bool:
    """What says nothing of a function's loads: a cancel, an unknown function, a runtime that
    cannot work here, a client error."""
    if isinstance(exc, asyncio.CancelledError | NotFound | RuntimeUnavailable):
        return True
    return _is_client_error(exc)


def _is_client_error(exc: BaseException) -> bool:
    """Errors that describe the request (4xx), not the health of storage or the runtime: the
    gateway's own 4xx errors and the 4xx errors of runtimes (no such runtime, code that does not
    compile or is too large, a full queue)."""
    if isinstance(exc, TiergateError):
        return exc.status < 500
    return isinstance(exc, (UnknownRuntime, CompileError, PayloadTooLarge, QueueFull))
