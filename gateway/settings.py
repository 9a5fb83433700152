"""Settings: one frozen object built once from defaults, then the environment, then CLI flags.

Nothing else reads ``os.environ``; components receive what they need from ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from plugins.workers.budget import PER_FUNCTION, PER_TENANT

MIB = 1024 * 1024


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name}: must not be negative, got {value}")
    return value


def _positive(name: str, raw: str) -> float:
    value = _float(name, raw)
    if value == 0:
        raise SettingsError(f"{name}: must be more than 0")
    return value


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".tiergate")
    object_store: str | None = None
    s3_endpoint_url: str | None = None
    kv: str | None = None
    admin_key: str | None = None
    secret_key: str | None = None
    rate_limit_rps: float = 0.0
    rate_limit_burst: int = 0
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    llm_model: str | None = None
    prefer_object: bool = True
    write_to_object: bool = True
    auto_migrate: bool = False
    max_body_bytes: int = 6 * MIB
    max_code_bytes: int = 50 * MIB
    read_timeout_s: float = 30.0
    cache_size: int = 256
    concurrency: int = field(default_factory=lambda: max(4, 4 * (os.cpu_count() or 1)))
    queue_size: int = 1024
    record_input_bytes: int = 4096
    retention_days: float = 7.0
    retention_sweep_s: float = 3600.0
    breaker_fail_max: int = 5
    breaker_reset_s: float = 30.0
    verify_s: float = 5.0
    orphan_after_s: float = 30.0
    work_queue_max: int = 10_000
    work_queue_max_per_tenant: int = 1_000
    async_max_input_bytes: int = 256 * 1024
    work_lease_s: float = 30.0
    work_concurrency: int = 64
    graph_parallel: int = 8
    max_graph_nodes: int = 1000
    max_graphs_per_tenant: int = 1000
    workers: int = 0  # 0: auto, see ``processes``
    callback_allow_private: bool = False
    egress_allow_private: bool = False
    egress_max_mb: int = 256
    task_sweep_s: float = 5.0
    wasm_workers: int = 0
    sandbox: str = "bubblewrap"
    bwrap: str | None = None
    sandbox_uid: int = 65534
    sandbox_processes: int = 64
    max_functions_per_tenant: int = 1000
    max_concurrent_deploys_per_tenant: int = 2
    max_streams_per_tenant: int = 32
    stream_queue_events: int = 10_000
    stream_heartbeat_s: float = 15.0
    stream_poll_s: float = 1.0
    max_workers_per_tenant: int = PER_TENANT
    max_workers_per_function: int = PER_FUNCTION
    max_memory_mb: int = 1024
    max_timeout_ms: int = 900_000
    max_output_kb: int = 6144
    wasm_inline: bool = True
    wasm_max_module_mb: int | None = None  # None: the wasm runtime's default
    compile_timeout_s: float | None = None
    preload: tuple[Path, ...] = ()
    plugin_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    disable_plugins: tuple[str, ...] = ()
    trace_plugins: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    # tracing (gateway/tracing): TIERGATE_TRACING, and OpenTelemetry's own variables that say
    # whether an exporter is configured (the SDK reads the rest of them itself)
    tracing: str = "auto"
    otlp_endpoint: str | None = None
    otlp_traces_endpoint: str | None = None
    otel_traces_exporter: str | None = None
    otel_sdk_disabled: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``TIERGATE_*``/``OPENAI_*`` variables (and the ``OTEL_*`` ones that say
        whether to trace), then ``overrides`` (CLI flags)."""
        values: dict[str, Any] = {}
        for name, (attr, parse) in _ENV.items():
            raw = env.get(name)
            if raw is not None and raw != "":
                values[attr] = parse(name, raw)
        values["plugin_options"] = _plugin_options(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __post_init__(self) -> None:
        # Sandboxes and worker processes run in other directories: relative paths would break.
        object.__setattr__(self, "data_dir", Path(self.data_dir).absolute())

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"

    @property
    def retention_s(self) -> float:
        """How long finished execution records and dead letters are kept."""
        return self.retention_days * 86400

    @property
    def processes(self) -> int:
        """Processes serving the port: ``workers``, or one per core when auto; port 0 allows
        only one (each process would pick a port of its own)."""
        if self.workers:
            return self.workers
        return 1 if self.port == 0 else cores()

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"


def cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's ``--cpus``), which ``os.cpu_count`` ignores."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return count
    if quota == "max":
        return count
    return max(1, min(count, -(-int(quota) // int(period))))


def workers(name: str, raw: str) -> int:
    """``auto`` (0 here: one process per core) or a whole number of processes, at least 1."""
    return 0 if raw.strip().lower() == "auto" else _int(name, raw, 1)


def _str(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _names(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(*allowed: str) -> Any:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise SettingsError(f"{name}: expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{name}: expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


_ENV: dict[str, tuple[str, Any]] = {
    "TIERGATE_HOST": ("host", _str),
    "TIERGATE_PORT": ("port", lambda n, r: _int(n, r, 0)),
    "TIERGATE_DATA_DIR": ("data_dir", _path),
    "TIERGATE_OBJECT_STORE": ("object_store", _str),
    "TIERGATE_S3_ENDPOINT_URL": ("s3_endpoint_url", _str),
    "TIERGATE_KV": ("kv", _str),
    "TIERGATE_ADMIN_KEY": ("admin_key", _str),
    "TIERGATE_SECRET_KEY": ("secret_key", _str),
    "TIERGATE_RATE_LIMIT_RPS": ("rate_limit_rps", _float),
    "TIERGATE_RATE_LIMIT_BURST": ("rate_limit_burst", lambda n, r: _int(n, r, 0)),
    "OPENAI_BASE_URL": ("openai_base_url", _str),
    "OPENAI_API_KEY": ("openai_api_key", _str),
    "TIERGATE_LLM_MODEL": ("llm_model", _str),
    "TIERGATE_PREFER_OBJECT": ("prefer_object", _bool),
    "TIERGATE_WRITE_TO_OBJECT": ("write_to_object", _bool),
    "TIERGATE_AUTO_MIGRATE": ("auto_migrate", _bool),
    "TIERGATE_MAX_BODY_BYTES": ("max_body_bytes", lambda n, r: _int(n, r, 1024)),
    "TIERGATE_MAX_CODE_BYTES": ("max_code_bytes", lambda n, r: _int(n, r, 1024)),
    "TIERGATE_READ_TIMEOUT_S": ("read_timeout_s", _positive),
    "TIERGATE_CACHE_SIZE": ("cache_size", lambda n, r: _int(n, r, 1)),
    "TIERGATE_CONCURRENCY": ("concurrency", lambda n, r: _int(n, r, 1)),
    "TIERGATE_QUEUE_SIZE": ("queue_size", lambda n, r: _int(n, r, 0)),
    "TIERGATE_RECORD_INPUT_BYTES": ("record_input_bytes", lambda n, r: _int(n, r, 0)),
    "TIERGATE_RETENTION_DAYS": ("retention_days", _float),
    "TIERGATE_RETENTION_SWEEP_S": ("retention_sweep_s", _float),
    "TIERGATE_BREAKER_FAIL_MAX": ("breaker_fail_max", lambda n, r: _int(n, r, 1)),
    "TIERGATE_BREAKER_RESET_S": ("breaker_reset_s", _float),
    "TIERGATE_VERIFY_S": ("verify_s", _float),
    "TIERGATE_ORPHAN_AFTER_S": ("orphan_after_s", _positive),
    "TIERGATE_WORK_QUEUE_MAX": ("work_queue_max", lambda n, r: _int(n, r, 1)),
    "TIERGATE_WORK_QUEUE_MAX_PER_TENANT": ("work_queue_max_per_tenant", lambda n, r: _int(n, r, 1)),
    "TIERGATE_ASYNC_MAX_INPUT_BYTES": ("async_max_input_bytes", lambda n, r: _int(n, r, 1024)),
    "TIERGATE_WORK_LEASE_S": ("work_lease_s", _positive),
    "TIERGATE_WORK_CONCURRENCY": ("work_concurrency", lambda n, r: _int(n, r, 1)),
    "TIERGATE_GRAPH_PARALLEL": ("graph_parallel", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_GRAPH_NODES": ("max_graph_nodes", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_GRAPHS_PER_TENANT": ("max_graphs_per_tenant", lambda n, r: _int(n, r, 1)),
    "TIERGATE_WORKERS": ("workers", lambda n, r: workers(n, r)),
    "TIERGATE_CALLBACK_ALLOW_PRIVATE": ("callback_allow_private", _bool),
    "TIERGATE_EGRESS_ALLOW_PRIVATE": ("egress_allow_private", _bool),
    "TIERGATE_EGRESS_MAX_MB": ("egress_max_mb", lambda n, r: _int(n, r, 1)),
    "TIERGATE_TASK_SWEEP_S": ("task_sweep_s", _float),
    "TIERGATE_WASM_WORKERS": ("wasm_workers", lambda n, r: _int(n, r, 0)),
    "TIERGATE_SANDBOX": ("sandbox", _choice("bubblewrap", "none")),
    "TIERGATE_BWRAP": ("bwrap", _str),
    "TIERGATE_SANDBOX_UID": ("sandbox_uid", lambda n, r: _int(n, r, 1)),
    "TIERGATE_SANDBOX_PROCESSES": ("sandbox_processes", lambda n, r: _int(n, r, 4)),
    "TIERGATE_MAX_FUNCTIONS_PER_TENANT": ("max_functions_per_tenant", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT": (
        "max_concurrent_deploys_per_tenant",
        lambda n, r: _int(n, r, 1),
    ),
    "TIERGATE_MAX_STREAMS_PER_TENANT": ("max_streams_per_tenant", lambda n, r: _int(n, r, 1)),
    "TIERGATE_STREAM_QUEUE_EVENTS": ("stream_queue_events", lambda n, r: _int(n, r, 1)),
    "TIERGATE_STREAM_HEARTBEAT_S": ("stream_heartbeat_s", _positive),
    "TIERGATE_STREAM_POLL_S": ("stream_poll_s", _positive),
    "TIERGATE_MAX_WORKERS_PER_TENANT": ("max_workers_per_tenant", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_WORKERS_PER_FUNCTION": ("max_workers_per_function", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_MEMORY_MB": ("max_memory_mb", lambda n, r: _int(n, r, 2)),
    "TIERGATE_MAX_TIMEOUT_MS": ("max_timeout_ms", lambda n, r: _int(n, r, 1)),
    "TIERGATE_MAX_OUTPUT_KB": ("max_output_kb", lambda n, r: _int(n, r, 1)),
    "TIERGATE_WASM_INLINE": ("wasm_inline", _bool),
    "TIERGATE_WASM_MAX_MODULE_MB": ("wasm_max_module_mb", lambda n, r: _int(n, r, 1)),
    "TIERGATE_COMPILE_TIMEOUT_S": ("compile_timeout_s", _positive),
    "TIERGATE_DISABLE_PLUGINS": ("disable_plugins", _names),
    "TIERGATE_TRACE_PLUGINS": ("trace_plugins", _bool),
    "TIERGATE_LOG_LEVEL": ("log_level", _level),
    "TIERGATE_LOG_FORMAT": ("log_format", _choice("text", "json")),
    "TIERGATE_TRACING": ("tracing", _choice("auto", "on", "off")),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp_endpoint", _str),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("otlp_traces_endpoint", _str),
    "OTEL_TRACES_EXPORTER": ("otel_traces_exporter", lambda n, r: r.strip().lower()),
    # as OpenTelemetry's SDKs read it: only "true" disables
    "OTEL_SDK_DISABLED": ("otel_sdk_disabled", lambda n, r: r.strip().lower() == "true"),
}


def _plugin_options(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``TIERGATE_<RUNTIME>_<OPTION>`` variables that are not settings of the gateway's own are
    handed to that runtime as ``PluginContext.options[runtime][option]`` (e.g.
    ``TIERGATE_JAVASCRIPT_NODE``), so plugins never need to read the environment themselves."""
    options: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith("TIERGATE_") or name in _ENV:
            continue
        runtime, _, option = name[len("TIERGATE_") :].lower().partition("_")
        if runtime and option:
            options.setdefault(runtime, {})[option] = value
    return options


ENV_VARIABLES = tuple(_ENV)
SETTING_NAMES = tuple(f.name for f in fields(Settings))
