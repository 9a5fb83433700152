"""The services one gateway process runs, built and torn down in one place (``app.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.cluster.coherence import Coherence
from gateway.cluster.worker_metrics import WorkerMetrics
from gateway.functions.registry import Registry
from gateway.functions.service import FunctionService
from gateway.invoke.admission import Admission
from gateway.invoke.callbacks import Callbacks
from gateway.invoke.invoker import Invoker
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.metrics import Metrics
from gateway.review.tasks import TaskService
from gateway.security.audit import AuditLog
from gateway.security.auth import KeyStore
from gateway.security.ratelimit import RateLimiter
from gateway.security.secrets import SecretStore
from gateway.settings import Settings
from plugins.manager import RuntimeRegistry
from storage.hybrid import HybridCodeStore
from storage.kv.base import KV
from storage.objects.base import ObjectStore


@dataclass
class Services:
    settings: Settings
    objects: ObjectStore
    kv: KV
    code: HybridCodeStore
    keys: KeyStore
    registry: Registry
    runtimes: RuntimeRegistry
    functions: FunctionService
    loader: Loader
    admission: Admission
    records: ExecutionRecords
    invoker: Invoker
    metrics: Metrics
    secrets: SecretStore
    ratelimit: RateLimiter
    audit: AuditLog
    tasks: TaskService
    callbacks: Callbacks
    coherence: Coherence
    worker_metrics: WorkerMetrics | None = None
