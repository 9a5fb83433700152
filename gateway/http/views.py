"""How records look on the wire: ISO-8601 times, the API's field names, nothing internal.

HTTP's: the finisher that sends callbacks is handed ``execution_body`` by the app factory, and
times come from ``gateway.times``, so nothing below ``http`` imports this. Each function renders
one typed record (``ExecutionRecord``, ``ReviewTask``) as the API document
the contract fixes; nothing else in the gateway builds these documents.
"""

from __future__ import annotations

from typing import Any

from gateway.compose.graphs import Graph, GraphHead
from gateway.compose.runs import GraphRun
from gateway.invoke.execution import ExecutionRecord
from gateway.review.task import ReviewTask
from gateway.times import iso
from tiers.attempt import Attempt, attempts_json

__all__ = [
    "accepted_body",
    "execution_body",
    "graph_body",
    "graph_summary",
    "iso",
    "log_entry_body",
    "run_body",
    "task_body",
]


def execution_body(record: ExecutionRecord, *, full: bool = True) -> dict[str, Any]:
    """The API's execution document: ``POST /invoke`` 200 (``full=False``: the contract's fields
    and the trace id only, on the hot path) and ``GET /executions/{id}`` (with input and times)."""
    body = {
        "execution_id": record.execution_id,
        "trace_id": record.trace_id,
        "function_id": record.function_id,
        "version": record.version,
        "status": record.status,
        "tier": record.tier,
        "output": record.output,
        "attempts": list(map(Attempt.as_json, record.attempts)),  # hot path: no helper call
        "logs": record.logs,
        "metrics": {
            "duration_ms": record.duration_ms,
            "queue_ms": record.queue_ms,
            "cold_start": record.cold_start,
            "cache_hit": record.cache_hit,
        },
    }
    if record.cache_hit_result is not None:  # only versions with a result cache
        body["metrics"]["cache_hit_result"] = record.cache_hit_result
    if record.egress is not None:  # only versions with network
        body["metrics"]["egress"] = record.egress
    if record.alias is not None:
        body["alias"] = record.alias
    if record.error is not None:
        body["error"] = record.error
    if record.details:
        body["details"] = record.details
    if not full:
        return body
    if record.input is not None:
        body["input"] = record.input
    if record.review is not None:
        body["review"] = review = record.review.as_json()
        review["at"] = iso(record.review.at)  # kept as Unix seconds, shown as ISO-8601
    if record.task_id is not None:
        body["task_id"] = record.task_id
    body["started_at"] = iso(record.started_at)
    body["ended_at"] = iso(record.ended_at)
    body["cause"] = record.cause or {"kind": "invoke"}
    if record.caller is not None:
        body["caller"] = record.caller
    if record.custom is not None:
        body["custom"] = record.custom
    body["children"] = record.children
    body["retries"] = record.retries
    if record.next_attempt_at is not None:
        body["next_attempt_at"] = iso(record.next_attempt_at)
    if record.callback is not None:
        body["callback"] = record.callback
    if record.follow_errors:
        body["follow_errors"] = record.follow_errors
    return body


def log_entry_body(record: ExecutionRecord) -> dict[str, Any]:
    """One item of ``GET /functions/{id}/logs``."""
    entry = {
        "execution_id": record.execution_id,
        "version": record.version,
        "status": record.status,
        "tier": record.tier,
        "started_at": iso(record.started_at),
        "ended_at": iso(record.ended_at),
        "duration_ms": record.duration_ms,
        "error": record.error,
        "logs": record.logs,
    }
    if record.alias is not None:
        entry["alias"] = record.alias
    return entry


def accepted_body(record: ExecutionRecord) -> dict[str, Any]:
    """The 202 answer for async calls and calls waiting for a human."""
    return {
        "execution_id": record.execution_id,
        "status": record.status,
        "status_url": f"/executions/{record.execution_id}",
    }


def task_body(task: ReviewTask) -> dict[str, Any]:
    """A review task as ``GET /tasks`` and the reviewer page show it: who holds it by name."""
    shown: dict[str, Any] = {
        "id": task.id,
        "function_id": task.function_id,
        "execution_id": task.execution_id,
        "input": task.input,
        "instructions": task.instructions,
        "attempts": attempts_json(task.attempts),
        "status": task.status,
        "version": task.version,
        "created_at": iso(task.created_at),
        "expires_at": iso(task.expires_at),
        "claimed_by": task.claimed_name or task.claimed_by,
        "claimed_by_id": task.claimed_by,  # the key id: names need not be unique
        "claimed_until": iso(task.claimed_until),
    }
    if task.answered_name:
        shown["answered_by"] = task.answered_name
    if task.reason:
        shown["reason"] = task.reason
    return shown


def graph_summary(head: GraphHead) -> dict[str, Any]:
    """A graph in ``GET /graphs``."""
    return {
        "id": head.id,
        "version": head.latest,
        "description": head.description,
        "versions": head.versions,
        "created_at": iso(head.created_at),
        "updated_at": iso(head.updated_at),
    }


def graph_body(graph: Graph, head: GraphHead) -> dict[str, Any]:
    """``GET /graphs/{id}``: a version as it was deployed, with the graph's versions."""
    document = graph.document
    return {
        "id": graph.id,
        "version": graph.version,
        "latest": head.latest,
        "versions": head.versions,
        "description": document.get("description"),
        "nodes": document["nodes"],
        "output": document.get("output"),
        "order": list(graph.nodes),
        "created_at": iso(graph.created_at),
        "created_by": graph.created_by,
    }


def run_body(run: GraphRun, outputs: dict[str, Any]) -> dict[str, Any]:
    """A graph run (``POST /graphs/{id}/runs``, ``GET``/``DELETE`` on the run): each node's
    status, execution, times, output, and why it ran, was reused or was skipped."""
    return {
        "run_id": run.run_id,
        "graph_id": run.graph_id,
        "version": run.version,
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "base_run": run.base_run,
        "trace_id": run.trace_id,
        "created_at": iso(run.created_at),
        "ended_at": iso(run.ended_at),
        "nodes": {
            name: {
                "status": node.status,
                "function": node.function_id,
                "function_version": node.version,
                "execution_id": node.execution_id,
                "started_at": iso(node.started_at),
                "ended_at": iso(node.ended_at),
                "output": outputs.get(name),
                "reason": node.reason,
                "error": node.error,
            }
            for name, node in run.nodes.items()
        },
    }
