"""Plugin discovery: built-in and external runtimes come in through the same entry-point door.

A plugin that fails to import, or whose hook raises, is recorded as *failed, with the reason*;
the gateway still starts and deploying to it answers ``unknown_runtime`` with that reason.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import pluggy

from . import hookspecs
from .errors import PluginError, RuntimeUnavailable, UnknownRuntime
from .runtime import PluginContext, Runtime, RuntimeSpec

log = logging.getLogger("tiergate.plugins")

RUNTIME_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

Status = Literal["active", "failed", "blocked"]


@dataclass(frozen=True, slots=True)
class RuntimeEntry:
    """One runtime as discovered: where it came from and whether it can be used."""

    name: str
    source: str
    status: Status
    description: str = ""
    reason: str = ""
    spec: RuntimeSpec | None = None


@dataclass(frozen=True, slots=True)
class RuntimeState:
    """One installed runtime as users are told of it (``tiergate runtimes``, ``GET /runtimes``,
    ``GET /readyz``): whether it can run code here and, when not, why. ``status`` is ``active``,
    ``unavailable`` (declared, but it cannot run code here: no sandbox, a missing interpreter),
    ``failed`` (its plugin did not load) or ``blocked`` (``TIERGATE_DISABLE_PLUGINS``)."""

    name: str
    status: Literal["active", "unavailable", "failed", "blocked"]
    source: str
    description: str = ""
    suffixes: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "active"

    @property
    def declared(self) -> bool:
        """Whether its plugin declared it (it may still be unable to run code here)."""
        return self.status in ("active", "unavailable")

    def label(self) -> str:
        """``active``, or the status with its reason (``unavailable: node not found …``)."""
        return f"{self.status}: {self.reason}" if self.reason else self.status


def create_plugin_manager(
    *,
    load_entrypoints: bool = True,
    extra: Iterable[object] = (),
    blocked: Iterable[str] = (),
    trace: bool = False,
) -> tuple[pluggy.PluginManager, list[RuntimeEntry]]:
    """A fresh plugin manager; returns it with entries for plugins that failed to load."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    failures: list[RuntimeEntry] = []
    blocked = list(blocked)
    for name in blocked:
        pm.set_blocked(name)
        failures.append(RuntimeEntry(name, "blocked by TIERGATE_DISABLE_PLUGINS", "blocked"))
    if load_entrypoints:
        failures.extend(_load_entrypoints(pm, set(blocked)))
    for plugin in extra:
        pm.register(plugin)
    pm.check_pending()
    if trace:
        pm.add_hookcall_monitoring(
            lambda name, impls, kw: log.info("hook %s -> %s", name, [i.plugin_name for i in impls]),
            lambda outcome, name, impls, kw: log.info("hook %s done", name),
        )
    return pm, failures


def _load_entrypoints(pm: pluggy.PluginManager, blocked: set[str]) -> list[RuntimeEntry]:
    failures = []
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
        if ep.name in blocked or pm.get_plugin(ep.name) is not None:
            continue
        try:  # one at a time, so that one broken plugin cannot keep the others out
            pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME, name=ep.name)
        except Exception as exc:  # a broken third-party plugin must not stop the gateway
            log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
            dist = ep.dist.name if ep.dist else ep.value
            failures.append(RuntimeEntry(ep.name, dist, "failed", reason=f"import failed: {exc}"))
    return failures


def _sources(pm: pluggy.PluginManager) -> dict[int, str]:
    sources = {}
    for plugin, dist in pm.list_plugin_distinfo():
        sources[id(plugin)] = f"{dist.project_name} {dist.version}"
    return sources


class RuntimeRegistry:
    """Runtimes by name, built once at startup; the hot path is a dict lookup, never a hook call."""

    def __init__(self, entries: Sequence[RuntimeEntry], context: PluginContext) -> None:
        self.entries = {e.name: e for e in entries}
        self._context = context
        self._instances: dict[str, Runtime[Any]] = {}
        self._started: set[str] = set()
        self._start_lock = asyncio.Lock()

    @classmethod
    def discover(
        cls, pm: pluggy.PluginManager, context: PluginContext, failures: Sequence[RuntimeEntry] = ()
    ) -> RuntimeRegistry:
        sources = _sources(pm)
        entries: dict[str, RuntimeEntry] = {f.name: f for f in failures}
        for impl in pm.hook.tiergate_runtimes.get_hookimpls():
            source = sources.get(id(impl.plugin), f"plugin {impl.plugin_name}")
            try:
                declared = impl.function(context=context) or ()
                specs = list(cast("Iterable[RuntimeSpec]", declared))  # each checked in _add
            except Exception as exc:
                log.warning("plugin %s failed to declare runtimes: %s", impl.plugin_name, exc)
                entries[impl.plugin_name] = RuntimeEntry(
                    impl.plugin_name, source, "failed", reason=f"tiergate_runtimes raised: {exc}"
                )
                continue
            for spec in specs:
                _add(entries, spec, source)
        return cls(list(entries.values()), context)

    def active(self) -> list[str]:
        return sorted(n for n, e in self.entries.items() if e.status == "active")

    def suffixes(self) -> dict[str, str]:
        """File suffix → the declared runtime that takes it (the first by name, on a clash):
        how ``serve --deploy`` tells a file's runtime. The SDK's ``deploy`` reads the same
        suffixes from ``GET /runtimes`` (``gateway.sdk.operations.suffix_map``)."""
        found: dict[str, str] = {}
        for name in sorted(self.entries):
            spec = self.entries[name].spec
            if spec is not None and self.entries[name].status == "active":
                for suffix in spec.suffixes:
                    found.setdefault(suffix, name)
        return found

    def states(self) -> list[RuntimeState]:
        """Every installed runtime by name, each checked (``get``) for whether it can run code
        here: the one answer ``tiergate runtimes``, ``GET /runtimes`` and ``GET /readyz`` give."""
        return [self._state(name) for name in sorted(self.entries)]

    def _state(self, name: str) -> RuntimeState:
        entry = self.entries[name]
        if entry.spec is None or entry.status != "active":
            return RuntimeState(name, entry.status, entry.source, entry.description,
                                reason=entry.reason)
        state = RuntimeState(name, "active", entry.source, entry.description,
                             tuple(entry.spec.suffixes))
        try:
            self.get(name)
        except Exception as exc:  # a plugin's factory may raise anything: say it, never crash
            cause = exc.__cause__ or exc
            why = getattr(cause, "detail", None) or str(cause) or type(cause).__name__
            return replace(state, status="unavailable", reason=why)
        return state

    def get(self, name: str) -> Runtime[Any]:
        """The runtime called ``name``, created on first use; ``UnknownRuntime`` when there is no
        such runtime, ``RuntimeUnavailable`` when it cannot work here (e.g. cannot isolate code)."""
        runtime = self._instances.get(name)
        if runtime is not None:
            return runtime
        entry = self.entries.get(name)
        if entry is None or entry.spec is None:
            reason = f": {entry.reason}" if entry and entry.reason else ""
            raise UnknownRuntime(
                f"runtime {name!r} is not available{reason}",
                runtime=name,
                available=self.active(),
            )
        runtime = entry.spec.factory(self._context)
        try:
            runtime.check()
        except RuntimeUnavailable as exc:
            raise RuntimeUnavailable(
                f"runtime {name!r} cannot run code here: {exc.detail}", runtime=name
            ) from exc
        self._instances[name] = runtime
        return runtime

    async def acquire(self, name: str) -> Runtime[Any]:
        """The runtime called ``name``, started (once) and ready for compile and load."""
        runtime = self.get(name)
        if name not in self._started:
            async with self._start_lock:
                if name not in self._started:
                    await runtime.start()
                    self._started.add(name)
        return runtime

    def started(self) -> Mapping[str, Runtime[Any]]:
        return {name: self._instances[name] for name in self._started}

    async def close(self) -> None:
        for name in self._started:
            await self._instances[name].close()
        self._instances.clear()
        self._started.clear()


def _add(entries: dict[str, RuntimeEntry], spec: RuntimeSpec, source: str) -> None:
    if not isinstance(spec, RuntimeSpec) or not RUNTIME_NAME.match(spec.name):
        raise PluginError(f"{source} declared an invalid runtime {spec!r}")
    if spec.name in entries and entries[spec.name].status == "active":
        other = entries[spec.name].source
        raise PluginError(f"runtime {spec.name!r} is declared twice: by {other} and by {source}")
    entries[spec.name] = RuntimeEntry(spec.name, source, "active", spec.description, spec=spec)
