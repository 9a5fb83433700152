"""OpenAPI paths: human review tasks, the reviewer page, and ``/whoami`` (which the page uses to
say who is signed in)."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import TENANT, json, op, param, ref

TASK_ID = param("task_id", "path", {"type": "string"}, "Task id.")
# What a task document carries beyond the ``Task`` schema.
TASK = {
    "allOf": [
        ref("Task"),
        {
            "type": "object",
            "properties": {
                "version": {"type": "integer"},
                "claimed_by_id": {
                    "type": ["string", "null"],
                    "description": "The key id holding the claim (`claimed_by` is its name)",
                },
                "claimed_until": {"type": ["string", "null"], "format": "date-time"},
                "answered_by": {"type": "string"},
                "reason": {"type": "string"},
            },
        },
    ]
}
LOG_LINE = {
    "type": "object",
    "properties": {
        "ts": {"type": ["string", "null"], "format": "date-time"},
        "stream": {"type": "string"},
        "message": {"type": "string"},
        "level": {"type": "string"},
    },
}
TASK_FOR_REVIEWER = {
    "allOf": [
        TASK,
        {
            "type": "object",
            "properties": {
                "logs": {
                    "type": "array",
                    "items": LOG_LINE,
                    "description": "The last 50 log lines of the earlier attempts (tracebacks "
                    "included)",
                },
                "logs_total": {"type": "integer", "description": "How many log lines in all"},
            },
        },
    ]
}
WHOAMI = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string"},
        "name": {"type": "string"},
        "tenant": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
    },
}


def review_paths() -> dict[str, Any]:
    answer = {
        "application/json": {
            "schema": {"type": "object", "required": ["output"], "properties": {"output": {}}}
        }
    }
    reason = {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string"}},
            }
        }
    }
    status = param(
        "status",
        "query",
        {"enum": ["pending", "completed", "rejected", "expired", "cancelled", "all"]},
        "Which tasks (pending).",
    )
    return {
        "/tasks": {
            "get": op(
                "Review tasks of your tenant (an admin's: every tenant's), oldest first",
                "review",
                json(
                    {
                        "type": "object",
                        "properties": {"tasks": {"type": "array", "items": TASK}},
                    }
                ),
                (400,),
                params=[status, TENANT],
            )
        },
        "/tasks/{task_id}": {
            "get": op(
                "One task, with the function's output schema and the end of its logs",
                "review",
                json(TASK_FOR_REVIEWER),
                (404,),
                params=[TASK_ID],
            )
        },
        "/tasks/{task_id}/claim": {
            "post": op(
                "Reserve the task for your key for 15 minutes",
                "review",
                json(TASK),
                (400, 404, 409),
                params=[TASK_ID],
            )
        },
        "/tasks/{task_id}/release": {
            "post": op(
                "Give a claimed task back",
                "review",
                json(TASK),
                (400, 404, 409),
                params=[TASK_ID],
            )
        },
        "/tasks/{task_id}/complete": {
            "post": op(
                "Answer the task; the output is checked against the output schema",
                "review",
                json(ref("Execution")),
                (400, 404, 409),
                params=[TASK_ID],
                body=answer,
            )
        },
        "/tasks/{task_id}/reject": {
            "post": op(
                "Reject the task; the execution ends failed",
                "review",
                json(ref("Execution")),
                (400, 404, 409),
                params=[TASK_ID],
                body=reason,
            )
        },
        "/whoami": {
            "get": op("The calling key: its id, name, tenant and roles", "any", json(WHOAMI))
        },
        "/ui/": {
            "get": op(
                "The reviewer page (HTML; its calls carry the key)",
                None,
                {"description": "The page", "content": {"text/html": {}}},
            )
        },
        "/ui/run": {
            "get": op(
                "The graph run page (HTML; ?graph=ID&run=RUN_ID; its calls carry the key)",
                None,
                {"description": "The page", "content": {"text/html": {}}},
            )
        },
    }
