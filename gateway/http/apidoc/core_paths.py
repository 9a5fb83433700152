"""OpenAPI paths: operations, functions, invocation, executions, storage admin."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import (
    EXEC,
    ID,
    IDEMPOTENCY_KEY,
    JSON_BODY,
    TENANT,
    json,
    op,
    param,
    ref,
)
from gateway.http.apidoc.stream_paths import FOLLOW_EVENTS, event_stream_content

RUNTIMES = {
    "type": "object",
    "required": ["runtimes"],
    "properties": {
        "runtimes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "description", "suffixes", "status", "ready"],
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "suffixes": {"type": "array", "items": {"type": "string"}},
                    "status": {"enum": ["active", "unavailable", "failed", "blocked"]},
                    "ready": {"type": "boolean", "description": "It can run code here"},
                    "reason": {
                        "type": "string",
                        "description": "Why not, when it is not ready (no sandbox, its plugin "
                        "failed to load…)",
                    },
                },
            },
        }
    },
}


def core_paths() -> dict[str, Any]:
    manifest_body = {
        "application/json": {"schema": ref("Manifest")},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["manifest"],
                "properties": {
                    "manifest": ref("Manifest"),
                    "code": {"type": "string", "contentMediaType": "application/octet-stream"},
                },
            }
        },
    }
    invoke_params = [
        param(
            "ref",
            "path",
            {"type": "string"},
            "`id`, `id@version` or `id:alias` (the alias picks a version per call by its weights).",
        ),
        TENANT,
        param(
            "start_tier",
            "query",
            {"enum": ["code", "generative", "agentic", "human"]},
            "First tier.",
        ),
        param("skip_tiers", "query", {"type": "string"}, "Comma-separated tiers to pass over."),
        param("parallel", "query", {"type": "boolean"}, "Start automated tiers together."),
        param("fallback", "query", {"type": "boolean"}, "Escalate on failure."),
        param("timeout_ms", "query", {"type": "integer"}, "Code tier timeout."),
        param(
            "Prefer",
            "header",
            {"type": "string"},
            "`respond-async` answers 202 at once: the call goes into the durable work queue.",
        ),
        IDEMPOTENCY_KEY,
        param("traceparent", "header", {"type": "string"}, "W3C trace context, propagated."),
        param(
            "X-Tiergate-Context",
            "header",
            {"type": "string", "maxLength": 4096},
            "JSON passed through to the code (Python: `context.custom`) and kept on the "
            "execution as `custom`.",
        ),
    ]
    logs_params = [
        ID,
        TENANT,
        param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": 1000},
            "Page size (50); a page ends early once its logs pass 4 MiB (go on with `before`).",
        ),
        param("before", "query", {"type": "string"}, "Only executions older than this id."),
        param(
            "follow",
            "query",
            {"enum": ["true", "false"]},
            "true: instead of a page, a text/event-stream of the function's log entries and "
            "endings as they happen, until the client closes it (limit and before do not apply)",
        ),
    ]
    logs_ok = json(ref("LogsPage"))
    logs_ok["content"].update(event_stream_content(FOLLOW_EVENTS))
    storage_body = {"application/json": {"schema": ref("StorageTarget")}}
    return {
        "/healthz": {"get": op("Liveness", None, json({"type": "object"}))},
        "/readyz": {
            "get": op(
                "Readiness: 200 only when the stores answer; `runtimes` says per runtime "
                "whether it can run code here (`ok`, or `unavailable: <why>`)",
                None,
                json(
                    {
                        "type": "object",
                        "properties": {
                            "status": {"const": "ready"},
                            "checks": {"type": "object"},
                            "runtimes": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    }
                ),
                (503,),
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                "admin",
                {
                    "description": "Prometheus text format; under `serve --workers N` every"
                    " worker's samples, labelled `worker`",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            )
        },
        "/openapi.json": {"get": op("This document", "any", json({"type": "object"}))},
        "/runtimes": {
            "get": op(
                "The installed runtimes: the file suffixes each takes (how `tiergate deploy` "
                "tells a file's runtime) and whether it can run code here, as `/readyz` says",
                "any",
                json(RUNTIMES),
            )
        },
        "/deploy": {
            "post": op(
                "Deploy a new version",
                "deploy",
                json(ref("DeployResult"), "Created"),
                (400, 413, 422, 429, 503),
                body=manifest_body,
                params=[TENANT],
                ok_status="201",
            )
        },
        "/functions": {
            "get": op("List functions", "deploy", json(ref("FunctionList")), params=[TENANT])
        },
        "/functions/{id}": {
            "get": op(
                "Describe a function (latest manifest, versions)",
                "deploy",
                json(ref("FunctionDetail")),
                (400, 404),
                params=[ID, TENANT],
            ),
            "delete": op(
                "Delete a function, its code and records",
                "deploy",
                {"description": "Deleted"},
                (400, 404),
                params=[ID, TENANT],
                ok_status="204",
            ),
        },
        "/functions/{id}/versions": {
            "get": op(
                "List versions",
                "deploy",
                json(ref("VersionList")),
                (400, 404),
                params=[ID, TENANT],
            )
        },
        "/functions/{id}/rollback": {
            "post": op(
                "Point latest at an earlier version",
                "deploy",
                json(
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "latest_version": {"type": "integer"},
                        },
                    }
                ),
                (400, 404),
                params=[ID, TENANT],
                body={
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["version"],
                            "properties": {"version": {"type": "integer", "minimum": 1}},
                        }
                    }
                },
            )
        },
        "/functions/{id}/logs": {
            "get": op(
                "Recent executions with their logs, newest first; or, with follow=true, "
                "their log entries live (Server-Sent Events)",
                "deploy",
                logs_ok,
                (400, 404, 429),
                params=logs_params,
            )
        },
        **alias_paths(),
        "/invoke/{ref}": {
            "post": {
                **op(
                    "Invoke a function",
                    "invoke",
                    json(ref("Execution")),
                    (400, 404, 409, 413, 429, 500, 503, 504),
                    body=JSON_BODY,
                    params=invoke_params,
                ),
                "x-accepted": "202 with an Accepted body for Prefer: respond-async or a human tier",
            }
        },
        "/executions/{execution_id}": {
            "get": op("Read an execution", "invoke", json(ref("Execution")), (404,), params=[EXEC]),
            "delete": op(
                "Cancel a pending, running or awaiting_human execution",
                "invoke",
                json(ref("Execution")),
                (404,),
                params=[EXEC],
            ),
        },
        "/admin/storage/migrate": {
            "post": op(
                "Copy a function's code from the KV into the object store",
                "admin",
                json(
                    {
                        "type": "object",
                        "properties": {"status": {"enum": ["migrated", "already_migrated"]}},
                    }
                ),
                (400, 404, 503),
                body=storage_body,
                params=[TENANT],
            )
        },
        "/admin/storage/cleanup-kv": {
            "post": op(
                "Remove KV copies whose object copy is verified",
                "admin",
                json(
                    {
                        "type": "object",
                        "properties": {
                            "removed": {"type": "array", "items": {"type": "string"}},
                            "kept": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
                (400, 404, 503),
                body=storage_body,
                params=[TENANT],
            )
        },
    }


def alias_paths() -> dict[str, Any]:
    name = param(
        "name",
        "path",
        {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,62}$"},
        "Alias name (not all digits, not `latest`).",
    )
    put = op(
        "Create or move an alias",
        "deploy",
        json(ref("Alias"), "Moved"),
        (400, 404),
        body={"application/json": {"schema": ref("AliasRequest")}},
        params=[ID, name, TENANT],
    )
    put["responses"]["201"] = json(ref("Alias"), "Created (`Location` names the alias)")
    return {
        "/functions/{id}/aliases": {
            "get": op(
                "List a function's aliases",
                "deploy",
                json(ref("AliasList")),
                (400, 404),
                params=[ID, TENANT],
            )
        },
        "/functions/{id}/aliases/{name}": {
            "get": op(
                "Show an alias",
                "deploy",
                json(ref("Alias")),
                (400, 404),
                params=[ID, name, TENANT],
            ),
            "put": put,
            "delete": op(
                "Delete an alias",
                "deploy",
                {"description": "Deleted"},
                (400, 404),
                params=[ID, name, TENANT],
                ok_status="204",
            ),
        },
    }
