"""Graph runs (API.md, "Dependency graphs"): each node starts, as an ordinary queued execution
with cause ``graph``, as soon as every node it needs has completed; at most ``parallel`` nodes
of a run run at once; a node that fails skips what depends on it, the other branches go on.

A run is one record in the KV, ``grun/<tenant>/<run_id>``, and each node's output one more,
``grout/<tenant>/<run_id>/<node>``, so any instance can carry a run on and the run record stays
small however large the outputs. Every change to a run is a *step*: read the record, note what
ended, decide what starts (or is reused, or skipped), and compare-and-set the record; executions
are accepted into the work queue only once the step that chose them has landed, with the
execution ids the step wrote, so two instances stepping one run at once start each node once.

What makes a run step:
- an execution of one of its nodes ends, or starts waiting for a person: ``Followups`` hands the
  record over (``node_ended``) in the process where that happened, before its queued job is done;
- its *watch* job in the work queue, every ``WATCH_S`` while nodes run (``WATCH_IDLE_S`` while
  it waits for a person): it reads the nodes' records itself, so an ending whose process died
  before it stepped the run is noticed, and a node chosen by a step whose process died before it
  queued the execution is queued again ``GRACE_S`` later.

Incremental runs (``base_run``): a node whose function version and resolved input (hashed as
canonical JSON) equal the base run's node, which completed, is ``reused``: its output is copied
and no execution runs. A node that ran again and produced the same output leaves its dependents'
inputs unchanged, so they are reused in turn. Each node says why in ``reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache

from gateway.compose.dispatcher import Later
from gateway.compose.durable import DurableExecutions, refused
from gateway.compose.graphs import Graph, Graphs
from gateway.errors import REPORTED, BadRequest, InvalidInput, RunNotFound
from gateway.expressions import ExpressionError
from gateway.functions.registry import FunctionRef, Registry
from gateway.ids import new_id, new_trace_id
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import InvokeOptions
from gateway.invoke.records import ExecutionRecords
from gateway.periodic import Periodic
from gateway.security.auth import Principal
from plugins.errors import PayloadTooLarge
from storage.errors import QueueFull as WorkQueueFull
from storage.kv.base import KV
from storage.queue.base import Job, WorkQueue

log = logging.getLogger("tiergate.graphs")

GRAPH = "graph"  # the watch job's kind
WATCH_S = 5.0
WATCH_IDLE_S = 60.0
GRACE_S = 30.0
RUN_FINAL = frozenset({"completed", "failed", "cancelled"})
NODE_FINAL = frozenset({"completed", "failed", "skipped", "reused"})
DONE = frozenset({"completed", "reused"})
LIVE = frozenset({"running", "awaiting_human"})
WAIT_POLL_S = 0.25
WAIT_TO_START = frozenset({"queue_full", "storage_unavailable", "circuit_open"})
MAX_SCOPE_BYTES = 16 * 1024 * 1024  # the outputs one mapping reads, together
BODY_OUTPUT_BYTES = 8 * 1024 * 1024  # the node outputs one run body shows, together

Cancel = Callable[[ExecutionRecord, Principal], Awaitable[object]]


@dataclass(slots=True)
class NodeRun:
    function_id: str
    version: int | None
    status: str = "pending"
    execution_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    input_hash: str | None = None
    output_hash: str | None = None
    output_bytes: int = 0
    reason: str | None = None
    error: str | None = None


@dataclass(slots=True)
class GraphRun:
    run_id: str
    tenant: str
    graph_id: str
    graph_uid: str
    version: int
    input: Any
    nodes: dict[str, NodeRun]
    trace_id: str
    created_at: float
    created_by: str
    status: str = "running"
    base_run: str | None = None
    output: Any = None
    error: str | None = None
    ended_at: float | None = None

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes) -> GraphRun:
        data = orjson.loads(raw)
        data["nodes"] = {name: NodeRun(**node) for name, node in data["nodes"].items()}
        return cls(**data)


@dataclass(slots=True)
class _Step:
    """What one step decided besides the record: outputs to store, executions to queue."""

    outputs: dict[str, Any] = field(default_factory=dict)
    start: dict[str, Any] = field(default_factory=dict)
    again: list[str] = field(default_factory=list)


class GraphRuns:
    def __init__(
        self,
        kv: KV,
        graphs: Graphs,
        registry: Registry,
        durable: DurableExecutions,
        records: ExecutionRecords,
        queue: WorkQueue,
        *,
        wake: Callable[[], None],
        parallel: int,
        max_input_bytes: int,
        tenant_share: int,
        retention_s: float,
        purge_interval: float,
    ) -> None:
        self._kv = kv
        self._graphs = graphs
        self._registry = registry
        self._durable = durable
        self._records = records
        self._queue = queue
        self._wake = wake
        self._parallel = parallel
        self._max_input = max_input_bytes
        self._tenant_share = tenant_share
        self._retention_s = retention_s
        self._purge_interval = purge_interval
        self._cancel: Cancel | None = None
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._inbox: dict[str, dict[str, ExecutionRecord]] = {}
        self._failed_starts: dict[str, str] = {}
        self._waiters: dict[str, _Waiter] = {}
        self._decoded: LRUCache[str, tuple[bytes, GraphRun]] = LRUCache(maxsize=256)
        self._ended: LRUCache[str, GraphRun] = LRUCache(maxsize=64)  # base runs, which never change
        self._background = Periodic("graph runs")

    def bind(self, cancel: Cancel) -> None:
        """How an execution is cancelled wherever it is (bound by the app factory: that reaches
        across the queue, the review desk and the cluster)."""
        self._cancel = cancel

    def start_sweeping(self) -> None:
        self._background.every(self._purge_interval, self.purge)

    async def close(self) -> None:
        await self._background.close()

    # ---- the API -------------------------------------------------------------------------

    async def start(
        self, tenant: str, graph_id: str, body: bytes, *, base_run: str | None, principal: str
    ) -> GraphRun:
        """Start a run of the graph's latest version with ``body`` (JSON) as its input."""
        graph = await self._graphs.latest(tenant, graph_id)
        if len(body) > self._max_input:
            raise PayloadTooLarge(
                f"a graph run's input is kept until it ends: at most {self._max_input} bytes, "
                f"got {len(body)} (TIERGATE_ASYNC_MAX_INPUT_BYTES)"
            )
        value = _parse_input(body)
        if base_run is not None:
            base = await self.get(tenant, base_run)
            if base.graph_id != graph_id:
                raise BadRequest(
                    f"base_run: run {base_run!r} is a run of graph {base.graph_id!r}, "
                    f"not {graph_id!r}"
                )
        run = GraphRun(
            run_id=new_id(),
            tenant=tenant,
            graph_id=graph_id,
            graph_uid=graph.uid,
            version=graph.version,
            input=value,
            nodes=await self._pin_versions(tenant, graph),
            trace_id=new_trace_id(),
            created_at=time.time(),
            created_by=principal,
            base_run=base_run,
        )
        await self._watch(run, time.time() + WATCH_S)  # first, so a refusal stores nothing
        await self._kv.set(_run_key(tenant, run.run_id), run.encode())
        return await self._advance(tenant, run.run_id) or run

    async def get(self, tenant: str, run_id: str) -> GraphRun:
        raw = await self._kv.get(_run_key(tenant, run_id))
        if raw is None:
            raise RunNotFound(f"graph run {run_id!r} not found", run_id=run_id)
        return GraphRun.decode(raw)

    async def outputs(self, run: GraphRun) -> dict[str, Any]:
        """The outputs of the run's nodes that have one, by node name, up to
        ``BODY_OUTPUT_BYTES`` together; past that ``{"truncated": true, "size": N}`` (each is
        whole on its execution): a thousand nodes of 6 MiB each must not become one answer."""
        shown: dict[str, Any] = {}
        budget = BODY_OUTPUT_BYTES
        for name, node in run.nodes.items():
            if node.status not in DONE:
                continue
            if node.output_bytes > budget:
                shown[name] = {"truncated": True, "size": node.output_bytes}
                continue
            raw = await self._kv.get(_output_key(run.tenant, run.run_id, name))
            if raw is not None:
                budget -= len(raw)
                shown[name] = orjson.loads(raw)
        return shown

    async def wait(self, tenant: str, run_id: str, timeout_s: float) -> GraphRun:
        """The run once it has ended or waits for a person, or as it is after ``timeout_s``.
        A step in this process says what the run's status became (no read, no decode while it
        is still running); a step on another instance is seen by reading, every
        ``WAIT_POLL_S``."""
        deadline = time.monotonic() + timeout_s
        waiter = self._waiters.setdefault(run_id, _Waiter())
        try:
            run = await self.get(tenant, run_id)
            while run.status == "running" and time.monotonic() < deadline:
                waiter.changed.clear()
                left = deadline - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.changed.wait(), min(left, WAIT_POLL_S))
                if waiter.changed.is_set() and waiter.status == "running":
                    continue
                run = await self.get(tenant, run_id)
            return run
        finally:
            self._waiters.pop(run_id, None)

    async def cancel(self, tenant: str, run_id: str, principal: Principal) -> GraphRun:
        """End a run: its pending nodes are skipped, the executions of its running ones are
        cancelled. A run that has ended already is answered as it is."""
        key = _run_key(tenant, run_id)
        while True:
            raw = await self._kv.get(key)
            if raw is None:
                raise RunNotFound(f"graph run {run_id!r} not found", run_id=run_id)
            run = GraphRun.decode(raw)
            if run.status in RUN_FINAL:
                return run
            now = time.time()
            live = [node.execution_id for node in run.nodes.values() if node.status in LIVE]
            for node in run.nodes.values():
                if node.status in LIVE:
                    node.status, node.ended_at, node.error = "failed", now, "cancelled with the run"
                elif node.status == "pending":
                    node.status, node.ended_at, node.reason = (
                        "skipped",
                        now,
                        "the run was cancelled",
                    )
            run.status, run.ended_at, run.error = "cancelled", now, "cancelled by request"
            if await self._kv.compare_and_set(key, raw, run.encode()):
                break
        self._forget_starts(run)
        self._notify(run)
        for execution_id in live:
            record = await self._records.get(execution_id) if execution_id else None
            if record is not None and record.ended_at is None and self._cancel is not None:
                await self._cancel(record, principal)
        return run

    # ---- what moves a run on ---------------------------------------------------------------

    async def node_ended(self, record: ExecutionRecord) -> None:
        """An execution of a node ended or waits for a person (``Followups``)."""
        run_id = (record.cause or {}).get("run_id")
        if not isinstance(run_id, str):
            return
        self._inbox.setdefault(run_id, {})[record.execution_id] = record
        await self._advance(record.tenant, run_id, inbox=True)

    async def watch(self, job: Job) -> Later | None:
        """The watch job of a run (see the module's docstring)."""
        work = orjson.loads(job.body)
        run = await self._advance(work["tenant"], work["run_id"], poll=True)
        if run is None or run.status in RUN_FINAL:
            return None
        wait = WATCH_IDLE_S if run.status == "awaiting_human" else WATCH_S
        return Later(time.time() + wait)

    async def purge(self) -> None:
        """Drop runs (and their outputs) that ended longer ago than the retention, and graph
        versions nothing names any more."""
        oldest = time.time() - self._retention_s
        expired = []
        async for _, raw in self._kv.scan("grun/"):
            run = GraphRun.decode(raw)
            if run.status in RUN_FINAL and (run.ended_at or run.created_at) < oldest:
                expired.append(run)
        for run in expired:
            prefix = _output_prefix(run.tenant, run.run_id)
            outputs = [key async for key, _ in self._kv.scan(prefix)]
            for key in outputs:
                await self._kv.delete(key)
            await self._kv.delete(_run_key(run.tenant, run.run_id))
        await self._graphs.purge(oldest)

    async def _advance(
        self, tenant: str, run_id: str, *, poll: bool = False, inbox: bool = False
    ) -> GraphRun | None:
        """One step at a time per run in this process: endings that arrive while a step runs
        wait in the inbox and are taken by the next step together (``inbox``: the caller put
        one there; nothing to do when an earlier step took it)."""
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
        async with lock:
            observed = self._inbox.pop(run_id, {})
            if inbox and not observed:
                return None
            return await self._step(tenant, run_id, observed, poll)

    async def _step(
        self, tenant: str, run_id: str, observed: dict[str, ExecutionRecord], poll: bool
    ) -> GraphRun | None:
        key = _run_key(tenant, run_id)
        while True:
            raw = await self._kv.get(key)
            if raw is None:
                return None
            run = self._decode(run_id, raw)
            if run.status in RUN_FINAL:
                self._forget_starts(run)
                return run
            graph = await self._graphs.find(tenant, run.graph_id, run.graph_uid, run.version)
            step = _Step()
            if graph is None:
                _end(run, "failed", error=f"graph {run.graph_id!r} version {run.version} is gone")
            else:
                await self._observe(run, observed, poll, step)
                await self._progress(run, graph, step)
            new = run.encode()
            if new == raw:
                self._decoded[run_id] = (raw, run)
                return run
            for name, output in step.outputs.items():
                await self._kv.set(_output_key(tenant, run_id, name), orjson.dumps(output))
            if not await self._kv.compare_and_set(key, raw, new):
                continue  # another instance stepped it meanwhile: again, from what it wrote
            if run.status not in RUN_FINAL:
                self._decoded[run_id] = (new, run)
            else:
                self._forget_starts(run)
            self._notify(run)
            if step.start and await self._queue_nodes(run, step.start):
                continue  # some could not start: record why
            return run

    async def _observe(
        self, run: GraphRun, observed: dict[str, ExecutionRecord], poll: bool, step: _Step
    ) -> None:
        now = time.time()
        for name, node in run.nodes.items():
            if node.status not in LIVE or node.execution_id is None:
                continue
            error = self._failed_starts.pop(node.execution_id, None)
            if error is not None:
                node.status, node.ended_at, node.error = "failed", now, error
                continue
            record = observed.get(node.execution_id)
            if record is None and poll:
                record = await self._records.get(node.execution_id)
                if record is None:
                    if now - (node.started_at or now) > GRACE_S:
                        step.again.append(name)
                    continue
            if record is not None:
                _note(node, record, step.outputs, name)

    async def _progress(self, run: GraphRun, graph: Graph, step: _Step) -> None:
        now = time.time()
        outputs = _Outputs(self._kv, run, step.outputs)
        base = await self._base(run)
        running = sum(1 for node in run.nodes.values() if node.status == "running")
        for name, spec in graph.nodes.items():
            node = run.nodes[name]
            again = name in step.again
            if node.status != "pending" and not again:
                continue
            blocked = [
                need for need in spec.needs if run.nodes[need].status in ("failed", "skipped")
            ]
            if blocked:
                need = blocked[0]
                node.status, node.ended_at = "skipped", now
                node.reason = f"needs {need!r}, which {_ended_as(run.nodes[need].status)}"
                continue
            if not all(run.nodes[need].status in DONE for need in spec.needs):
                continue
            # ready: its input is worked out (and compared with the base run) once; a node that
            # must run and finds no free slot waits, and is looked at again when one frees
            decided = node.input_hash is not None
            full = running >= self._parallel
            if full and not again and (decided or base is None):
                continue
            size = sum(run.nodes[need].output_bytes for need in spec.needs)
            if size > MAX_SCOPE_BYTES:
                node.status, node.ended_at = "failed", now
                node.error = (
                    f"the outputs it needs are {size} bytes together; a node's input mapping "
                    f"reads at most {MAX_SCOPE_BYTES}"
                )
                continue
            scope = {"input": run.input, **{need: await outputs.get(need) for need in spec.needs}}
            try:
                value = spec.input.apply(scope, run.input)
            except ExpressionError as exc:
                node.status, node.ended_at = "failed", now
                node.error = f"nodes.{name}.input: {exc}"
                continue
            if node.version is None:
                node.status, node.ended_at = "failed", now
                node.error = f"function {node.function_id!r} not found"
                continue
            if again:
                node.started_at = now
                step.start[name] = value
                continue
            if not decided:
                node.input_hash = _hash(value)
                reused, reason = await self._reuse(run, base, name, node)
                node.reason = reason
                if reused is not None:
                    node.status, node.started_at, node.ended_at = "reused", now, now
                    node.execution_id, node.output_hash, node.output_bytes = reused
                    step.outputs[name] = await self._base_output(run, name)
                    continue
            if running >= self._parallel:
                continue
            running += 1
            node.status, node.started_at, node.execution_id = "running", now, new_id()
            step.start[name] = value
        await _settle(run, graph, outputs)

    async def _reuse(
        self, run: GraphRun, base: GraphRun | None, name: str, node: NodeRun
    ) -> tuple[tuple[str | None, str | None, int] | None, str]:
        """``((execution_id, output_hash, output_bytes), why)`` when the base run's node can
        stand in for this one, else ``(None, why it runs)``."""
        if run.base_run is None:
            return None, "ran: no base run"
        if base is None:
            return None, f"ran: base run {run.base_run!r} is gone"
        was = base.nodes.get(name)
        if was is None:
            return None, "ran: the base run has no such node"
        if was.status not in DONE:
            return None, f"ran: in the base run it was {was.status}"
        if (was.function_id, was.version) != (node.function_id, node.version):
            return None, (
                f"ran: function changed ({was.function_id}@{was.version} → "
                f"{node.function_id}@{node.version})"
            )
        if was.input_hash != node.input_hash:
            return None, "ran: its input changed"
        if not await self._kv_has(_output_key(base.tenant, base.run_id, name)):
            return None, "ran: the base run's output is gone"
        return (
            (was.execution_id, was.output_hash, was.output_bytes),
            f"reused: same function version and input as in run {base.run_id}",
        )

    async def _kv_has(self, key: str) -> bool:
        return await self._kv.get(key) is not None

    async def _base(self, run: GraphRun) -> GraphRun | None:
        if run.base_run is None:
            return None
        base = self._ended.get(run.base_run)
        if base is None:
            raw = await self._kv.get(_run_key(run.tenant, run.base_run))
            base = None if raw is None else GraphRun.decode(raw)
            if base is not None and base.status in RUN_FINAL:
                self._ended[run.base_run] = base
        return base

    async def _base_output(self, run: GraphRun, name: str) -> Any:
        raw = await self._kv.get(_output_key(run.tenant, run.base_run or "", name))
        return None if raw is None else orjson.loads(raw)

    async def _queue_nodes(self, run: GraphRun, start: dict[str, Any]) -> bool:
        """Queue the executions a step chose; True when some were refused for good (their nodes
        fail in the next step). A full queue or a store away leaves the node to the watch job."""
        cause = {"kind": "graph", "run_id": run.run_id, "graph_id": run.graph_id}

        async def queue(name: str, value: Any) -> bool:
            node = run.nodes[name]
            assert node.execution_id is not None and node.version is not None
            try:
                await self._durable.accept(
                    run.tenant,
                    FunctionRef(node.function_id, node.version),
                    orjson.dumps(value),
                    InvokeOptions(trace_id=run.trace_id),
                    cause={**cause, "node": name},
                    execution_id=node.execution_id,
                )
            except REPORTED as exc:
                code = getattr(exc, "code", "storage_unavailable")
                if code in WAIT_TO_START:
                    log.warning("run %s: node %s waits to start: %s", run.run_id, name, exc)
                    return False
                self._failed_starts[node.execution_id] = f"{code}: {exc.detail}"
                return True
            return False

        refused_now = await asyncio.gather(*(queue(n, v) for n, v in start.items()))
        return any(refused_now)

    async def _pin_versions(self, tenant: str, graph: Graph) -> dict[str, NodeRun]:
        """Each node's function version, fixed when the run starts (``fid`` means the latest
        then); a function deleted since the deploy makes its node fail when it would start."""
        latest: dict[str, int | None] = {}
        nodes = {}
        for name, spec in graph.nodes.items():
            ref = spec.function
            version = ref.version
            if version is None:
                if ref.function_id not in latest:
                    try:
                        latest[ref.function_id] = await self._registry.resolve(
                            tenant, ref.function_id, None
                        )
                    except REPORTED as exc:
                        if getattr(exc, "status", 0) != 404:
                            raise
                        latest[ref.function_id] = None
                version = latest[ref.function_id]
            nodes[name] = NodeRun(ref.function_id, version)
        return nodes

    async def _watch(self, run: GraphRun, due: float) -> None:
        body = orjson.dumps({"tenant": run.tenant, "run_id": run.run_id})
        try:
            await self._queue.put(
                GRAPH, body, due=due, group=run.tenant, group_bound=self._tenant_share
            )
        except WorkQueueFull as exc:
            raise refused(exc, run.tenant, self._tenant_share) from None

    def _decode(self, run_id: str, raw: bytes) -> GraphRun:
        """The run record as this process last wrote it, when nothing changed it since (a wide
        run's record is hundreds of KB, and its steps come one after another); else decoded."""
        cached = self._decoded.pop(run_id, None)
        if cached is not None and cached[0] == raw:
            return cached[1]
        return GraphRun.decode(raw)

    def _forget_starts(self, run: GraphRun) -> None:
        """An ended run's refused starts will not be observed by another step."""
        for node in run.nodes.values():
            if node.execution_id is not None:
                self._failed_starts.pop(node.execution_id, None)

    def _notify(self, run: GraphRun) -> None:
        waiter = self._waiters.get(run.run_id)
        if waiter is not None:
            waiter.status = run.status
            waiter.changed.set()


@dataclass(slots=True)
class _Waiter:
    """A sync ``POST /graphs/{id}/runs`` waiting for its run: the status the last step left."""

    status: str = "running"
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class _Outputs:
    """Node outputs for one step: those the step noted, else from the KV (read once each)."""

    def __init__(self, kv: KV, run: GraphRun, noted: dict[str, Any]) -> None:
        self._kv = kv
        self._run = run
        self._noted = noted  # grows while the step goes on (nodes reused)
        self._known: dict[str, Any] = {}

    async def get(self, name: str) -> Any:
        if name in self._noted:
            return self._noted[name]
        if name not in self._known:
            raw = await self._kv.get(_output_key(self._run.tenant, self._run.run_id, name))
            self._known[name] = None if raw is None else orjson.loads(raw)
        return self._known[name]


def _note(node: NodeRun, record: ExecutionRecord, outputs: dict[str, Any], name: str) -> None:
    """What an execution's record says about its node."""
    status = record.status
    if status == "completed":
        node.status, node.ended_at = "completed", record.ended_at
        node.output_hash = _hash(record.output)
        node.output_bytes = len(orjson.dumps(record.output))
        outputs[name] = record.output
    elif status in ("failed", "timeout", "cancelled"):
        node.status, node.ended_at = "failed", record.ended_at
        node.error = record.error or status
    elif status == "awaiting_human":
        node.status = "awaiting_human"


async def _settle(run: GraphRun, graph: Graph, outputs: _Outputs) -> None:
    """The run's status from its nodes' (and its output, once every node is done)."""
    statuses = [node.status for node in run.nodes.values()]
    size = sum(node.output_bytes for node in run.nodes.values())
    if all(status in DONE for status in statuses) and size > MAX_SCOPE_BYTES:
        _end(
            run,
            "failed",
            error=f"output: the nodes' outputs are {size} bytes together; "
            f"the run's output mapping reads at most {MAX_SCOPE_BYTES}",
        )
    elif all(status in DONE for status in statuses):
        scope: dict[str, Any] = {"input": run.input}
        for name in graph.sinks if graph.output.is_default else graph.nodes:
            scope[name] = await outputs.get(name)
        default = {name: scope[name] for name in graph.sinks}
        try:
            _end(run, "completed", output=graph.output.apply(scope, default))
        except ExpressionError as exc:
            _end(run, "failed", error=f"output: {exc}")
    elif all(status in NODE_FINAL for status in statuses):
        failed = next(n for n, node in run.nodes.items() if node.status == "failed")
        _end(run, "failed", error=f"node {failed!r} failed: {run.nodes[failed].error}")
    elif "running" not in statuses and "awaiting_human" in statuses:
        run.status = "awaiting_human"
    else:
        run.status = "running"


def _end(run: GraphRun, status: str, *, output: Any = None, error: str | None = None) -> None:
    run.status, run.output, run.error, run.ended_at = status, output, error, time.time()


def _ended_as(status: str) -> str:
    return "failed" if status == "failed" else "was skipped"


def _hash(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _parse_input(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the run input is not valid JSON: {exc}") from None


def _run_key(tenant: str, run_id: str) -> str:
    return f"grun/{tenant}/{run_id}"


def _output_prefix(tenant: str, run_id: str) -> str:
    return f"grout/{tenant}/{run_id}/"


def _output_key(tenant: str, run_id: str, name: str) -> str:
    return f"{_output_prefix(tenant, run_id)}{name}"
