"""The OpenAPI 3.1 document of the API. Written out (not derived from the routes) so that a test
can hold the two against each other: every route is documented and every documented path exists."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from .manifest import MANIFEST_SCHEMA

ERROR_CODES = {
    400: [
        "invalid_request",
        "invalid_function_id",
        "invalid_manifest",
        "unknown_runtime",
        "invalid_input",
        "invalid_output",
    ],
    401: ["unauthenticated"],
    403: ["forbidden"],
    404: [
        "not_found",
        "function_not_found",
        "version_not_found",
        "execution_not_found",
        "task_not_found",
        "secret_not_found",
        "key_not_found",
    ],
    405: ["method_not_allowed"],
    409: ["task_claimed", "execution_cancelled"],
    413: ["payload_too_large"],
    422: ["compile_error"],
    429: ["rate_limited", "queue_full"],
    500: ["cascade_exhausted", "internal_error"],
    503: ["circuit_open", "storage_unavailable"],
    504: ["timeout"],
}

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": ", ".join(ERROR_CODES[status]),
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _op(
    summary: str,
    role: str | None,
    ok: dict[str, Any],
    errors: tuple[int, ...] = (),
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    ok_status: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok_status: ok}}
    if role is None:
        op["security"] = []
    else:
        op["description"] = f"Role: `{role}`."
        errors = (401, 403, *errors)
    for status in sorted(set(errors)):
        op["responses"][str(status)] = _problem(status)
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if params:
        op["parameters"] = params
    return op


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


_ID = _param(
    "id", "path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "Function id."
)
_TENANT = _param("tenant", "query", {"type": "string"}, "Admin keys only: act for this tenant.")
_EXEC = _param("execution_id", "path", {"type": "string"}, "Execution id.")
_JSON_BODY = {"application/json": {"schema": {}}}


def _paths() -> dict[str, Any]:
    manifest_body = {
        "application/json": {"schema": _ref("Manifest")},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["manifest"],
                "properties": {
                    "manifest": _ref("Manifest"),
                    "code": {"type": "string", "contentMediaType": "application/octet-stream"},
                },
            }
        },
    }
    invoke_params = [
        _param("ref", "path", {"type": "string"}, "`id` or `id@version`."),
        _TENANT,
        _param(
            "start_tier",
            "query",
            {"enum": ["code", "generative", "agentic", "human"]},
            "First tier.",
        ),
        _param("skip_tiers", "query", {"type": "string"}, "Comma-separated tiers to pass over."),
        _param("parallel", "query", {"type": "boolean"}, "Start automated tiers together."),
        _param("fallback", "query", {"type": "boolean"}, "Escalate on failure."),
        _param("timeout_ms", "query", {"type": "integer"}, "Code tier timeout."),
        _param("Prefer", "header", {"type": "string"}, "`respond-async` answers 202 at once."),
        _param("traceparent", "header", {"type": "string"}, "W3C trace context, propagated."),
    ]
    logs_params = [
        _ID,
        _TENANT,
        _param(
            "limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (50)."
        ),
        _param("before", "query", {"type": "string"}, "Only executions older than this id."),
    ]
    storage_body = {"application/json": {"schema": _ref("StorageTarget")}}
    return {
        "/healthz": {"get": _op("Liveness", None, _json({"type": "object"}))},
        "/readyz": {
            "get": _op(
                "Readiness: 200 only when the stores answer",
                None,
                _json({"type": "object"}),
                (503,),
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                "admin",
                {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            )
        },
        "/openapi.json": {"get": _op("This document", "any", _json({"type": "object"}))},
        "/deploy": {
            "post": _op(
                "Deploy a new version",
                "deploy",
                _json(_ref("DeployResult"), "Created"),
                (400, 413, 422, 503),
                body=manifest_body,
                params=[_TENANT],
                ok_status="201",
            )
        },
        "/functions": {
            "get": _op("List functions", "deploy", _json(_ref("FunctionList")), params=[_TENANT])
        },
        "/functions/{id}": {
            "get": _op(
                "Describe a function (latest manifest, versions)",
                "deploy",
                _json(_ref("FunctionDetail")),
                (400, 404),
                params=[_ID, _TENANT],
            ),
            "delete": _op(
                "Delete a function, its code and records",
                "deploy",
                {"description": "Deleted"},
                (400, 404),
                params=[_ID, _TENANT],
                ok_status="204",
            ),
        },
        "/functions/{id}/versions": {
            "get": _op(
                "List versions",
                "deploy",
                _json(_ref("VersionList")),
                (400, 404),
                params=[_ID, _TENANT],
            )
        },
        "/functions/{id}/rollback": {
            "post": _op(
                "Point latest at an earlier version",
                "deploy",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "latest_version": {"type": "integer"},
                        },
                    }
                ),
                (400, 404),
                params=[_ID, _TENANT],
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
            "get": _op(
                "Recent executions with their logs, newest first",
                "deploy",
                _json(_ref("LogsPage")),
                (400, 404),
                params=logs_params,
            )
        },
        "/invoke/{ref}": {
            "post": {
                **_op(
                    "Invoke a function",
                    "invoke",
                    _json(_ref("Execution")),
                    (400, 404, 409, 413, 429, 500, 503, 504),
                    body=_JSON_BODY,
                    params=invoke_params,
                ),
                "x-accepted": "202 with an Accepted body for Prefer: respond-async or a human tier",
            }
        },
        "/executions/{execution_id}": {
            "get": _op(
                "Read an execution", "invoke", _json(_ref("Execution")), (404,), params=[_EXEC]
            ),
            "delete": _op(
                "Cancel a pending, running or awaiting_human execution",
                "invoke",
                _json(_ref("Execution")),
                (404,),
                params=[_EXEC],
            ),
        },
        **_admin_paths(),
        "/admin/storage/migrate": {
            "post": _op(
                "Copy a function's code from the KV into the object store",
                "admin",
                _json(
                    {
                        "type": "object",
                        "properties": {"status": {"enum": ["migrated", "already_migrated"]}},
                    }
                ),
                (400, 404, 503),
                body=storage_body,
                params=[_TENANT],
            )
        },
        "/admin/storage/cleanup-kv": {
            "post": _op(
                "Remove KV copies whose object copy is verified",
                "admin",
                _json(
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
                params=[_TENANT],
            )
        },
    }


def _admin_paths() -> dict[str, Any]:
    key_id = _param("key_id", "path", {"type": "string"}, "Key id.")
    tenant = _param("tenant", "path", {"type": "string"}, "Tenant.")
    name = _param(
        "name",
        "path",
        {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
        "Secret name.",
    )
    rate = {"application/json": {"schema": _ref("RateLimit")}}
    return {
        "/admin/keys": {
            "post": _op(
                "Create an API key (the key is shown once)",
                "admin",
                _json(_ref("NewKey"), "Created"),
                (400,),
                ok_status="201",
                body={"application/json": {"schema": _ref("KeyRequest")}},
            ),
            "get": _op(
                "List API keys (never the keys themselves)",
                "admin",
                _json(
                    {
                        "type": "object",
                        "properties": {"keys": {"type": "array", "items": _ref("KeyInfo")}},
                    }
                ),
                (400,),
                params=[_TENANT],
            ),
        },
        "/admin/keys/{key_id}": {
            "delete": _op(
                "Revoke a key",
                "admin",
                {"description": "Revoked"},
                (404,),
                params=[key_id],
                ok_status="204",
            )
        },
        "/admin/secrets/{tenant}": {
            "get": _op(
                "List a tenant's secret names",
                "admin",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "tenant": {"type": "string"},
                            "secrets": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string"},
                                        "updated_at": {"type": "string", "format": "date-time"},
                                    },
                                },
                            },
                        },
                    }
                ),
                (400,),
                params=[tenant],
            )
        },
        "/admin/secrets/{tenant}/{name}": {
            "put": _op(
                "Set a secret (encrypted at rest, never returned)",
                "admin",
                _json({"type": "object"}),
                (400,),
                params=[tenant, name],
                body={
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["value"],
                            "properties": {"value": {"type": "string"}},
                        }
                    }
                },
            ),
            "delete": _op(
                "Delete a secret",
                "admin",
                {"description": "Deleted"},
                (400, 404),
                params=[tenant, name],
                ok_status="204",
            ),
        },
        "/admin/tenants/{tenant}/rate-limit": {
            "get": _op(
                "A tenant's rate limit per key",
                "admin",
                _json(_ref("RateLimit")),
                (400,),
                params=[tenant],
            ),
            "put": _op(
                "Override a tenant's rate limit per key",
                "admin",
                _json(_ref("RateLimit")),
                (400,),
                params=[tenant],
                body=rate,
            ),
            "delete": _op(
                "Drop a tenant's override",
                "admin",
                {"description": "Dropped"},
                (400,),
                params=[tenant],
                ok_status="204",
            ),
        },
        "/admin/audit": {
            "get": _op(
                "Admin actions and deploys, newest first",
                "admin",
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "entries": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "at": {"type": "string", "format": "date-time"},
                                        "key_id": {"type": "string"},
                                        "tenant": {"type": "string"},
                                        "action": {"type": "string"},
                                        "target": {"type": "string"},
                                        "details": {"type": "object"},
                                    },
                                },
                            }
                        },
                    }
                ),
                (400,),
                params=[
                    _param("limit", "query", {"type": "integer"}, "Page size (100)."),
                    _param("before", "query", {"type": "string"}, "Older than this id."),
                ],
            )
        },
    }


def _schemas() -> dict[str, Any]:
    manifest = {k: v for k, v in MANIFEST_SCHEMA.items() if k != "$schema"}
    attempt = {
        "type": "object",
        "properties": {
            "tier": {"enum": ["code", "generative", "agentic", "human"]},
            "attempt": {"type": "integer"},
            "status": {"enum": ["succeeded", "failed", "timeout", "skipped", "cancelled"]},
            "error": {"type": ["string", "null"]},
            "duration_ms": {"type": "number"},
        },
    }
    log_entry = {
        "type": "object",
        "properties": {
            "ts": {"type": "string", "format": "date-time"},
            "stream": {"enum": ["stdout", "stderr", "log"]},
            "message": {"type": "string"},
            "level": {"type": "string"},
        },
    }
    status = {
        "enum": [
            "pending",
            "running",
            "awaiting_human",
            "completed",
            "failed",
            "timeout",
            "cancelled",
        ]
    }
    version = {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "runtime": {"type": ["string", "null"]},
            "code_sha256": {"type": ["string", "null"]},
            "code_size": {"type": "integer"},
            "deployed_at": {"type": "string", "format": "date-time"},
            "precompiled": {"type": "boolean"},
        },
    }
    return {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"enum": sorted({c for cs in ERROR_CODES.values() for c in cs})},
                "instance": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object"}},
                "attempts": {"type": "array", "items": attempt},
            },
        },
        "Manifest": manifest,
        "DeployResult": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "version": {"type": "integer"},
                "runtime": {"type": ["string", "null"]},
                "code_sha256": {"type": ["string", "null"]},
                "code_size": {"type": "integer"},
                "deployed_at": {"type": "string", "format": "date-time"},
                "precompiled": {"type": "boolean"},
            },
        },
        "FunctionList": {
            "type": "object",
            "properties": {
                "functions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "latest_version": {"type": "integer"},
                            "runtime": {"type": ["string", "null"]},
                            "description": {"type": "string"},
                            "updated_at": {"type": "string", "format": "date-time"},
                            "tenant": {"type": "string"},
                        },
                    },
                }
            },
        },
        "FunctionDetail": {
            "allOf": [
                _ref("Manifest"),
                {
                    "type": "object",
                    "properties": {
                        "latest_version": {"type": "integer"},
                        "versions": {"type": "array", "items": version},
                    },
                },
            ]
        },
        "VersionList": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "latest_version": {"type": "integer"},
                "versions": {"type": "array", "items": version},
            },
        },
        "Execution": {
            "type": "object",
            "properties": {
                "execution_id": {"type": "string"},
                "function_id": {"type": "string"},
                "version": {"type": "integer"},
                "status": status,
                "tier": {"type": ["string", "null"]},
                "output": {},
                "error": {"type": "string"},
                "attempts": {"type": "array", "items": attempt},
                "logs": {"type": "array", "items": log_entry},
                "metrics": {
                    "type": "object",
                    "properties": {
                        "duration_ms": {"type": ["number", "null"]},
                        "queue_ms": {"type": "number"},
                        "cold_start": {"type": "boolean"},
                        "cache_hit": {"type": "boolean"},
                    },
                },
            },
        },
        "Accepted": {
            "type": "object",
            "properties": {
                "execution_id": {"type": "string"},
                "status": status,
                "status_url": {"type": "string"},
            },
        },
        "LogsPage": {
            "type": "object",
            "properties": {
                "executions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "execution_id": {"type": "string"},
                            "version": {"type": "integer"},
                            "status": status,
                            "tier": {"type": ["string", "null"]},
                            "started_at": {"type": "string"},
                            "ended_at": {"type": ["string", "null"]},
                            "duration_ms": {"type": ["number", "null"]},
                            "error": {"type": ["string", "null"]},
                            "logs": {"type": "array", "items": log_entry},
                        },
                    },
                }
            },
        },
        "KeyRequest": {
            "type": "object",
            "required": ["tenant", "roles"],
            "properties": {
                "tenant": {"type": "string"},
                "name": {"type": "string"},
                "roles": {
                    "type": "array",
                    "items": {"enum": ["admin", "deploy", "invoke", "review"]},
                },
            },
        },
        "KeyInfo": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "tenant": {"type": "string"},
                "name": {"type": "string"},
                "roles": {"type": "array", "items": {"type": "string"}},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "NewKey": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "key": {"type": "string"},
                "tenant": {"type": "string"},
                "roles": {"type": "array", "items": {"type": "string"}},
                "name": {"type": "string"},
            },
        },
        "RateLimit": {
            "type": "object",
            "required": ["rate"],
            "properties": {
                "rate": {"type": "number", "minimum": 0},
                "burst": {"type": "integer", "minimum": 1},
            },
        },
        "StorageTarget": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "version": {"type": "integer", "minimum": 1}},
        },
    }


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tiergate",
            "version": "0.1.0",
            "description": "Serverless function gateway with a 4-tier cascade.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }


def openapi_document(app: web.Application | None = None) -> dict[str, Any]:
    return _document()
