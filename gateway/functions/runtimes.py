"""Runtime plugins as the gateway and the CLI see them: discovered through pluggy, given their
options and the sandbox function code runs in."""

from __future__ import annotations

from gateway.settings import Settings
from plugins.manager import RuntimeRegistry, create_plugin_manager
from plugins.runtime import PluginContext
from plugins.sandbox import Sandbox, SandboxSettings
from plugins.workers import WorkerBudget
from storage.urls import local_paths


def sandbox(settings: Settings) -> Sandbox:
    """Not probed yet: call ``probe`` (blocking) before runtimes use it."""
    private = local_paths(settings.object_store, settings.kv, settings.data_dir)
    return Sandbox(
        SandboxSettings(
            mode="none" if settings.sandbox == "none" else "bubblewrap",
            bwrap=settings.bwrap,
            private=tuple(private),
            processes=settings.sandbox_processes,
            uid=settings.sandbox_uid,
            egress_allow_private=settings.egress_allow_private,
            egress_max_bytes=settings.egress_max_mb << 20,
        )
    )


def worker_budget(settings: Settings) -> WorkerBudget:
    return WorkerBudget(settings.max_workers_per_tenant, settings.max_workers_per_function)


def runtime_registry(settings: Settings, box: Sandbox, budget: WorkerBudget) -> RuntimeRegistry:
    pm, failures = create_plugin_manager(
        blocked=settings.disable_plugins, trace=settings.trace_plugins
    )
    context = PluginContext(
        data_dir=settings.data_dir / "runtimes",
        options={
            **settings.plugin_options,
            "wasm": {
                "inline": settings.wasm_inline,
                "workers": settings.wasm_workers,
                "max_module_mb": settings.wasm_max_module_mb,
                "compile_timeout_s": settings.compile_timeout_s,
            },
        },
        sandbox=box,
        worker_budget=budget,
    )
    return RuntimeRegistry.discover(pm, context, failures)
