"""The services one gateway process runs: what routes and middleware read (``services(request)``).

Built area by area in ``http/wiring.py`` and torn down in one place (``http/app.py``). A route
reads what it renders from here and calls one service method per change: ``functions`` (deploy,
rollback, delete), ``admin`` (keys, secrets, rate limits) and ``storage_admin`` (moving code
between stores) each make the change, tell the other processes and write the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.cluster.coherence import Coherence
from gateway.cluster.relay import LiveRelay
from gateway.cluster.worker_metrics import WorkerMetrics
from gateway.compose.dead_letters import DeadLetters
from gateway.compose.durable import DurableExecutions
from gateway.compose.events import Events
from gateway.compose.graphs import Graphs
from gateway.compose.idempotency import IdempotencyKeys
from gateway.compose.runs import GraphRuns
from gateway.functions.load import VersionLoader
from gateway.functions.registry import Registry
from gateway.functions.service import FunctionService
from gateway.functions.storage_admin import CodeStorageAdmin
from gateway.invoke.admission import Admission
from gateway.invoke.callbacks import Callbacks
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import Invoker
from gateway.invoke.live import LiveHub
from gateway.invoke.loader import Loader
from gateway.invoke.records import ExecutionRecords
from gateway.metrics import Metrics
from gateway.review.tasks import TaskService
from gateway.security.admin import SecurityAdmin
from gateway.security.audit import AuditLog
from gateway.security.auth import KeyStore, Principal
from gateway.security.ratelimit import RateLimiter
from gateway.security.secrets import SecretStore
from gateway.settings import Settings
from plugins.manager import RuntimeRegistry
from storage.kv.base import KV
from storage.objects.base import ObjectStore

if TYPE_CHECKING:
    from gateway.tracing.otel import Tracing


@dataclass(slots=True)
class Services:
    settings: Settings
    objects: ObjectStore
    kv: KV
    # changes: one call each
    functions: FunctionService
    admin: SecurityAdmin
    storage_admin: CodeStorageAdmin
    # reads, and the request path
    keys: KeyStore
    registry: Registry
    runtimes: RuntimeRegistry
    versions: VersionLoader
    loader: Loader
    admission: Admission
    records: ExecutionRecords
    invoker: Invoker
    live: LiveHub
    metrics: Metrics
    secrets: SecretStore
    ratelimit: RateLimiter
    audit: AuditLog
    tasks: TaskService
    callbacks: Callbacks
    coherence: Coherence
    relay: LiveRelay
    durable: DurableExecutions
    events: Events
    dead_letters: DeadLetters
    idempotency: IdempotencyKeys
    graphs: Graphs
    runs: GraphRuns
    worker_metrics: WorkerMetrics | None = None
    tracing: Tracing | None = None  # None: the gateway does not trace (gateway/tracing)

    async def cancel_execution(
        self, record: ExecutionRecord, principal: Principal
    ) -> ExecutionRecord:
        """Cancel an execution wherever it is: a person's task, the work queue, or running in
        some gateway process (``DELETE /executions/{id}``, and a graph run's cancel)."""
        if record.status == "awaiting_human" and record.task_id is not None:
            return await self.tasks.cancel(record.task_id, principal)
        if record.durable and record.status == "pending":  # in the work queue, not running
            return self.durable.cancel_waiting(record)
        return await self.coherence.cancel_execution(record.execution_id) or record
