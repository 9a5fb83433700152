"""OpenAPI paths: human review tasks and the reviewer page."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import TENANT, json, op, param, ref

TASK_ID = param("task_id", "path", {"type": "string"}, "Task id.")


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
                        "properties": {"tasks": {"type": "array", "items": ref("Task")}},
                    }
                ),
                (400,),
                params=[status, TENANT],
            )
        },
        "/tasks/{task_id}": {
            "get": op(
                "One task, with the function's output schema",
                "review",
                json(ref("Task")),
                (404,),
                params=[TASK_ID],
            )
        },
        "/tasks/{task_id}/claim": {
            "post": op(
                "Reserve the task for your key for 15 minutes",
                "review",
                json(ref("Task")),
                (400, 404, 409),
                params=[TASK_ID],
            )
        },
        "/tasks/{task_id}/release": {
            "post": op(
                "Give a claimed task back",
                "review",
                json(ref("Task")),
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
