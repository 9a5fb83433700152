"""What one gateway process runs, built area by area for ``create_app`` (``app.py``).

Each ``build_*`` makes one area from the areas built before it, registers each part's cleanup on
the exit stack as soon as the part exists (so a start-up that fails half-way closes only what
started, in reverse), and returns what it made. The order is the order of dependence:

    stores → security → tiers → functions → invoke → review → tier ports → compose → cluster
    → changes

``bind_tier_ports`` is the one place where the tiers' ports meet the gateway services behind them.
``build_changes`` comes last because a change reaches across areas: it mutates one, tells the
cluster and writes the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cluster.coherence import Coherence
from gateway.cluster.orphans import OrphanSweeper
from gateway.cluster.relay import LiveRelay
from gateway.cluster.worker_metrics import WorkerMetrics
from gateway.compose.chains import Chains
from gateway.compose.dead_letters import DeadLetters
from gateway.compose.dispatcher import Dispatcher
from gateway.compose.durable import EXECUTION, DurableExecutions
from gateway.compose.events import Events
from gateway.compose.followups import CALLBACK, Followups
from gateway.compose.graphs import Graphs
from gateway.compose.idempotency import IdempotencyKeys
from gateway.compose.runs import GRAPH, GraphRuns
from gateway.compose.schedules import Scheduler
from gateway.compose.versions import LatestCompositions
from gateway.functions.deploy import Deployer, TierCheck
from gateway.functions.load import VersionLoader
from gateway.functions.quotas import DeployQuotas
from gateway.functions.registry import Registry
from gateway.functions.runtimes import runtime_registry, sandbox, worker_budget
from gateway.functions.service import FunctionService
from gateway.functions.storage_admin import CodeStorageAdmin
from gateway.http.views import execution_body
from gateway.ids import process_id
from gateway.invoke.admission import Admission
from gateway.invoke.callbacks import Callbacks
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.finish import Finisher
from gateway.invoke.invoker import Invoker
from gateway.invoke.live import LiveHub
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.invoke.result_cache import ResultCache
from gateway.metrics import Metrics
from gateway.review.tasks import TaskService
from gateway.security.admin import SecurityAdmin
from gateway.security.audit import AuditLog
from gateway.security.auth import KeyStore
from gateway.security.ratelimit import Rate, RateLimiter
from gateway.security.secrets import SecretStore, master_key
from gateway.settings import Settings
from plugins.manager import RuntimeRegistry
from plugins.workers import WorkerBudget
from storage.executions.base import ExecutionStore
from storage.hybrid import HybridCodeStore
from storage.kv.base import KV
from storage.objects.base import ObjectStore
from storage.urls import (
    open_buckets,
    open_events,
    open_execution_store,
    open_kv,
    open_object_store,
    open_queue,
)
from tiers.agentic import AgenticTier
from tiers.base import TIER_ORDER
from tiers.code import CodeTier
from tiers.config import tier_checker
from tiers.engine import CascadeEngine
from tiers.function import LoadedFunction
from tiers.generative import GenerativeTier
from tiers.human import HumanTier
from tiers.llm import LLMEndpoint

if TYPE_CHECKING:
    from gateway.tracing.otel import Tracing

Stack = contextlib.AsyncExitStack


@dataclass(frozen=True, slots=True)
class Stores:
    objects: ObjectStore
    kv: KV
    executions: ExecutionStore
    code: HybridCodeStore
    registry_kv: KV
    """``kv`` as the registry reads it: with ``code``, what a cold load reads (traced reads while
    the gateway traces)."""


def build_stores(settings: Settings, stack: Stack, tracing: Tracing | None = None) -> Stores:
    """The object store, the KV and the execution store, opened from their URLs."""
    _private_dir(settings.data_dir)
    objects = open_object_store(
        settings.object_store, settings.data_dir, endpoint_url=settings.s3_endpoint_url or ""
    )
    stack.push_async_callback(objects.close)
    kv = open_kv(settings.kv, settings.data_dir)
    stack.push_async_callback(kv.close)
    executions = open_execution_store(settings.kv, settings.data_dir)
    stack.push_async_callback(executions.close)
    code_objects, code_kv = objects, kv
    if tracing is not None:
        code_objects, code_kv = tracing.objects(objects), tracing.kv(kv)
    code = HybridCodeStore(
        code_objects,
        code_kv,
        prefer_object=settings.prefer_object,
        write_to_object=settings.write_to_object,
        auto_migrate=settings.auto_migrate,
    )
    return Stores(objects, kv, executions, code, code_kv)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # keys and the database are for this user only
        path.chmod(0o700)


@dataclass(frozen=True, slots=True)
class Security:
    keys: KeyStore
    secrets: SecretStore
    ratelimit: RateLimiter
    audit: AuditLog


def build_security(settings: Settings, stores: Stores, stack: Stack) -> Security:
    """API keys, encrypted secrets, rate limits (buckets beside the KV) and the audit trail."""
    secrets = SecretStore(stores.kv, master_key(settings.secret_key, settings.secret_key_path))
    buckets = open_buckets(settings.kv, stores.kv, processes=settings.processes)
    stack.push_async_callback(buckets.close)
    burst = settings.rate_limit_burst or int(settings.rate_limit_rps) or 1
    ratelimit = RateLimiter(stores.kv, Rate(settings.rate_limit_rps, burst), buckets)
    return Security(KeyStore(stores.kv), secrets, ratelimit, AuditLog(stores.kv))


@dataclass(frozen=True, slots=True)
class Tiers:
    engine: CascadeEngine
    """The cascade; its tiers join it in ``bind_tier_ports``, once the services they call exist."""
    llm: LLMEndpoint
    check: TierCheck
    """The deploy-time check of a manifest's ``tiers`` against every tier the engine gets."""
    tracing: Tracing | None
    """Spans for each tier attempt and runtime call, while the gateway traces."""


def build_tiers(
    settings: Settings, metrics: Metrics, stack: Stack, tracing: Tracing | None = None
) -> Tiers:
    """The cascade engine and the LLM endpoint its model tiers share."""
    llm = LLMEndpoint(settings.openai_base_url, settings.openai_api_key, settings.llm_model)
    stack.push_async_callback(llm.close)
    if tracing is None:
        engine = CascadeEngine(report_attempt=metrics.attempt)
    else:
        engine = tracing.cascade_engine(metrics.attempt)
    return Tiers(engine, llm, tier_checker(TIER_ORDER, settings.llm_model), tracing)


@dataclass(frozen=True, slots=True)
class Functions:
    registry: Registry
    runtimes: RuntimeRegistry
    deployer: Deployer
    versions: VersionLoader


async def build_functions(
    settings: Settings,
    stores: Stores,
    security: Security,
    tiers: Tiers,
    metrics: Metrics,
    stack: Stack,
) -> Functions:
    """The registry of versions, the runtime plugins, and deploying and loading functions."""
    budget = worker_budget(settings)
    metrics.gauge_by(
        "tiergate_tenant_workers",
        "Worker processes running or starting per tenant, across its functions' pools",
        ("tenant",),
        budget.in_use,
    )
    runtimes = await _runtimes(settings, budget)
    stack.push_async_callback(runtimes.close)
    metrics.gauge_by(
        "tiergate_runtime_stat",
        "Counters the runtimes report (the wasm runtime: calls by where they ran)",
        ("runtime", "stat"),
        lambda: _runtime_stats(runtimes),
    )
    registry = Registry(stores.registry_kv, stores.code)
    quotas = DeployQuotas(settings)
    deployer = Deployer(registry, stores.code, runtimes, tiers.check, security.secrets, quotas)
    versions = VersionLoader(registry, stores.code, runtimes, metrics, quotas)
    return Functions(registry, runtimes, deployer, versions)


def _runtime_stats(runtimes: RuntimeRegistry) -> dict[tuple[str, ...], float]:
    return {
        (name, stat): value
        for name, runtime in runtimes.started().items()
        for stat, value in runtime.stats().items()
    }


async def _runtimes(settings: Settings, budget: WorkerBudget) -> RuntimeRegistry:
    box = sandbox(settings)
    await asyncio.get_running_loop().run_in_executor(None, box.probe)
    box.report()
    registry = runtime_registry(settings, box, budget)
    if not registry.active():
        raise RuntimeError("no runtimes found — is tiergate installed (pip install -e .)?")
    return registry


@dataclass(frozen=True, slots=True)
class Invoke:
    loader: Loader
    records: ExecutionRecords
    admission: Admission
    callbacks: Callbacks
    finisher: Finisher
    invoker: Invoker
    live: LiveHub


def build_invoke(
    settings: Settings,
    stores: Stores,
    security: Security,
    functions: Functions,
    tiers: Tiers,
    metrics: Metrics,
    stack: Stack,
) -> Invoke:
    """The loader's cache, execution records, admission, callbacks, the result cache, the
    invoker and the hub live streams follow executions through."""
    loader = Loader(
        functions.registry,
        functions.versions.load,
        metrics,
        size=settings.cache_size,
        fail_max=settings.breaker_fail_max,
        reset_s=settings.breaker_reset_s,
        verify_s=settings.verify_s,
    )
    stack.push_async_callback(loader.close)
    records = _records(settings, stores, metrics, stack, tiers.tracing)
    admission = Admission(settings.concurrency, settings.queue_size, metrics)
    callbacks = Callbacks(allow_private=settings.callback_allow_private)
    stack.push_async_callback(callbacks.close)
    finisher = Finisher(records, metrics)
    live = LiveHub(
        queue_events=settings.stream_queue_events,
        max_streams_per_tenant=settings.max_streams_per_tenant,
    )
    records.watch(live)
    result_cache = ResultCache(stores.kv)
    result_cache.start()
    stack.push_async_callback(result_cache.close)
    invoker = Invoker(
        loader,
        admission,
        tiers.engine,
        records,
        security.secrets.resolve,
        finisher,
        record_input_bytes=settings.record_input_bytes,
        result_cache=result_cache,
        live=live,
        tracing=tiers.tracing,
    )
    return Invoke(loader, records, admission, callbacks, finisher, invoker, live)


def _records(
    settings: Settings,
    stores: Stores,
    metrics: Metrics,
    stack: Stack,
    tracing: Tracing | None,
) -> ExecutionRecords:
    records = ExecutionRecords(
        stores.executions,
        retention_s=settings.retention_s,
        purge_interval=settings.retention_sweep_s,
        on_written=None if tracing is None else tracing.records_written,
    )
    records.start()
    stack.push_async_callback(records.close)
    metrics.gauge(
        "tiergate_records_unsaved",
        "Execution records waiting to be written (grows while the store is away)",
        records.unsaved,
    )
    return records


@dataclass(frozen=True, slots=True)
class Review:
    tasks: TaskService


def build_review(settings: Settings, stores: Stores, invoke: Invoke, stack: Stack) -> Review:
    """Durable human review tasks, with their expiry sweep running."""
    tasks = TaskService(
        stores.kv, invoke.records, invoke.loader, invoke.finisher, sweep_s=settings.task_sweep_s
    )
    tasks.start()
    stack.push_async_callback(tasks.close)
    return Review(tasks)


def bind_tier_ports(tiers: Tiers, invoke: Invoke, review: Review) -> None:
    """The tiers join the engine with their ports bound to what serves them: an agent's tools
    are functions called through this gateway's own invoke path (``ToolGateway``); a human
    tier's work is a review task (``ReviewDesk``). Every tier is added, as the deploy check in
    ``build_tiers`` assumes."""
    tracing = tiers.tracing
    tiers.engine.add(
        CodeTier(invoke.invoker) if tracing is None else tracing.code_tier(invoke.invoker),
        GenerativeTier(tiers.llm),
        AgenticTier(tiers.llm, invoke.invoker),
        HumanTier(review.tasks),
    )


@dataclass(frozen=True, slots=True)
class Compose:
    durable: DurableExecutions
    events: Events
    dead_letters: DeadLetters
    idempotency: IdempotencyKeys
    dispatcher: Dispatcher
    graphs: Graphs
    runs: GraphRuns


def build_compose(
    settings: Settings,
    stores: Stores,
    functions: Functions,
    invoke: Invoke,
    stack: Stack,
    tracing: Tracing | None = None,
) -> Compose:
    """The work queue and its consumer, and what runs from it: queued executions with their
    retries and dead letters, what follows an ending (callbacks, chains, execution events,
    graph runs' next steps), events with their triggers, schedules and dependency graphs. The
    finisher hands endings over from now on."""
    queue = open_queue(settings.kv, settings.data_dir, bound=settings.work_queue_max)
    stack.push_async_callback(queue.close)
    dispatcher = Dispatcher(
        queue,
        consumer=process_id(),
        concurrency=settings.work_concurrency,
        lease_s=settings.work_lease_s,
        before_stop=invoke.invoker.closing,
    )
    followups = Followups(
        invoke.records,
        queue,
        invoke.callbacks,
        execution_body,
        lambda record: _loaded(invoke.loader, record),
        wake=dispatcher.wake,
    )
    stack.push_async_callback(followups.close)
    dead_letters = DeadLetters(
        stores.kv, retention_s=settings.retention_s, purge_interval=settings.retention_sweep_s
    )
    dead_letters.start()
    stack.push_async_callback(dead_letters.close)
    durable = DurableExecutions(
        invoke.invoker,
        invoke.records,
        queue,
        invoke.finisher,
        dead_letters,
        followups,
        wake=dispatcher.wake,
        tenant_share=settings.work_queue_max_per_tenant,
        max_input_bytes=settings.async_max_input_bytes,
        tracing=tracing,
    )
    idempotency = IdempotencyKeys(stores.kv)
    idempotency.start()
    stack.push_async_callback(idempotency.close)
    latest = LatestCompositions(functions.registry)
    events = Events(latest, idempotency, durable, execution_body)
    graphs = Graphs(
        stores.kv,
        functions.registry,
        max_nodes=settings.max_graph_nodes,
        max_graphs=settings.max_graphs_per_tenant,
    )
    runs = GraphRuns(
        stores.kv,
        graphs,
        functions.registry,
        durable,
        invoke.records,
        queue,
        wake=dispatcher.wake,
        parallel=settings.graph_parallel,
        max_input_bytes=settings.async_max_input_bytes,
        tenant_share=settings.work_queue_max_per_tenant,
        retention_s=settings.retention_s,
        purge_interval=settings.retention_sweep_s,
    )
    runs.start_sweeping()
    stack.push_async_callback(runs.close)
    followups.bind(Chains(durable, execution_body), events, runs)
    invoke.finisher.follow_with(followups)
    scheduler = Scheduler(latest, stores.kv, durable)
    scheduler.start()
    stack.push_async_callback(scheduler.close)
    dispatcher.handle(
        {EXECUTION: durable.run, CALLBACK: followups.deliver_callback, GRAPH: runs.watch}
    )
    dispatcher.start()
    stack.push_async_callback(dispatcher.close)
    return Compose(durable, events, dead_letters, idempotency, dispatcher, graphs, runs)


async def _loaded(loader: Loader, record: ExecutionRecord) -> LoadedFunction:
    fn, _ = await loader.get(record.tenant, record.function_id, record.version)
    return fn


@dataclass(frozen=True, slots=True)
class Cluster:
    coherence: Coherence
    relay: LiveRelay
    worker_metrics: WorkerMetrics | None


async def build_cluster(
    settings: Settings,
    stores: Stores,
    security: Security,
    invoke: Invoke,
    metrics: Metrics,
    worker: int | None,
    stack: Stack,
) -> Cluster:
    """What keeps this process coherent with the others sharing its stores: events, live
    streams' events across processes, the sweep for executions whose process died, and (under
    ``serve --workers``) per-worker metrics."""
    events = open_events(settings.kv, stores.kv, origin=process_id())
    relay = LiveRelay(events, invoke.live, invoke.invoker.logs_so_far, process_id())
    coherence = Coherence(
        events,
        invoke.loader,
        security.keys,
        security.ratelimit,
        invoke.invoker,
        invoke.records,
        relay,
    )
    await coherence.start()
    stack.push_async_callback(coherence.close)
    relay.start()
    stack.push_async_callback(relay.close)
    orphans = OrphanSweeper(
        stores.kv,
        invoke.records,
        invoke.finisher,
        process_id(),
        orphan_after_s=settings.orphan_after_s,
    )
    orphans.start()
    stack.push_async_callback(orphans.close)
    worker_metrics = None
    if worker is not None:
        worker_metrics = WorkerMetrics(metrics, settings.data_dir / "metrics", worker)
        worker_metrics.start()
        stack.push_async_callback(worker_metrics.close)
    return Cluster(coherence, relay, worker_metrics)


@dataclass(frozen=True, slots=True)
class Changes:
    functions: FunctionService
    admin: SecurityAdmin
    storage_admin: CodeStorageAdmin


def build_changes(
    stores: Stores, security: Security, functions: Functions, invoke: Invoke, cluster: Cluster
) -> Changes:
    """The services every change goes through (one call each: mutate, tell, audit)."""
    return Changes(
        functions=FunctionService(
            functions.deployer,
            functions.registry,
            cluster.coherence,
            invoke.records,
            security.audit,
        ),
        admin=SecurityAdmin(
            security.keys, security.secrets, security.ratelimit, cluster.coherence, security.audit
        ),
        storage_admin=CodeStorageAdmin(functions.registry, stores.code),
    )
