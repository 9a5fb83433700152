"""The services one gateway process runs, built and torn down in one place (``app.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from plugins.manager import RuntimeRegistry
from storage.hybrid import HybridCodeStore
from storage.kv.base import KV
from storage.objects.base import ObjectStore

from .audit import AuditLog
from .auth import KeyStore
from .callbacks import Callbacks
from .coherence import Coherence
from .executor import Admission
from .functions import FunctionService
from .invoker import Invoker
from .loader import Loader
from .metrics import Metrics
from .ratelimit import RateLimiter
from .records import ExecutionRecords
from .registry import Registry
from .secrets import SecretStore
from .settings import Settings
from .tasks import TaskService
from .worker_metrics import WorkerMetrics


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
