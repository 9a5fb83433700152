"""OpenAPI paths: events and dead letters (composition)."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import EXEC, IDEMPOTENCY_KEY, TENANT, json, op, param, ref


def compose_paths() -> dict[str, Any]:
    event_body = {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {
                    "type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,127}$"},
                    "data": {},
                },
            }
        }
    }
    published = {
        "type": "object",
        "properties": {
            "event_id": {"type": "string"},
            "started": {"type": "array", "items": {"type": "string"}},
        },
    }
    function_filter = param("function_id", "query", {"type": "string"}, "Only this function's.")
    return {
        "/events": {
            "post": op(
                "Publish an event: starts, as queued executions, the tenant's functions whose "
                "triggers match it",
                "invoke",
                json(published, "Accepted"),
                (400, 429, 503),
                body=event_body,
                params=[TENANT, IDEMPOTENCY_KEY],
                ok_status="202",
            )
        },
        "/dead-letters": {
            "get": op(
                "Asynchronous executions whose retries are spent",
                "deploy",
                json(
                    {
                        "type": "object",
                        "properties": {
                            "dead_letters": {"type": "array", "items": ref("DeadLetter")}
                        },
                    }
                ),
                (400,),
                params=[TENANT, function_filter],
            )
        },
        "/dead-letters/{execution_id}/redrive": {
            "post": op(
                "Run a dead letter's input again, by its function's latest version (the letter "
                "leaves the list)",
                "deploy",
                json(ref("Accepted"), "Accepted"),
                (404, 429),
                params=[EXEC, TENANT],
                ok_status="202",
            )
        },
        "/dead-letters/{execution_id}": {
            "delete": op(
                "Delete a dead letter",
                "deploy",
                {"description": "Deleted"},
                (404,),
                params=[EXEC, TENANT],
                ok_status="204",
            )
        },
    }
