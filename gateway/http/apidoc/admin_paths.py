"""OpenAPI paths: keys, secrets, rate limits, audit."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import TENANT, json, op, param, ref


def admin_paths() -> dict[str, Any]:
    key_id = param("key_id", "path", {"type": "string"}, "Key id.")
    tenant = param("tenant", "path", {"type": "string"}, "Tenant.")
    name = param(
        "name",
        "path",
        {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
        "Secret name.",
    )
    rate = {"application/json": {"schema": ref("RateLimit")}}
    return {
        "/admin/keys": {
            "post": op(
                "Create an API key (the key is shown once)",
                "admin",
                json(ref("NewKey"), "Created"),
                (400,),
                ok_status="201",
                body={"application/json": {"schema": ref("KeyRequest")}},
            ),
            "get": op(
                "List API keys (never the keys themselves)",
                "admin",
                json(
                    {
                        "type": "object",
                        "properties": {"keys": {"type": "array", "items": ref("KeyInfo")}},
                    }
                ),
                (400,),
                params=[TENANT],
            ),
        },
        "/admin/keys/{key_id}": {
            "delete": op(
                "Revoke a key (never the last one holding the admin role)",
                "admin",
                {"description": "Revoked"},
                (404, 409),
                params=[key_id],
                ok_status="204",
            )
        },
        "/admin/secrets/{tenant}": {
            "get": op(
                "List a tenant's secret names",
                "admin",
                json(
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
            "put": op(
                "Set a secret (encrypted at rest, never returned)",
                "admin",
                json({"type": "object"}),
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
            "delete": op(
                "Delete a secret",
                "admin",
                {"description": "Deleted"},
                (400, 404),
                params=[tenant, name],
                ok_status="204",
            ),
        },
        "/admin/tenants/{tenant}/rate-limit": {
            "get": op(
                "A tenant's rate limit per key",
                "admin",
                json(ref("RateLimit")),
                (400,),
                params=[tenant],
            ),
            "put": op(
                "Override a tenant's rate limit per key",
                "admin",
                json(ref("RateLimit")),
                (400,),
                params=[tenant],
                body=rate,
            ),
            "delete": op(
                "Drop a tenant's override",
                "admin",
                {"description": "Dropped"},
                (400,),
                params=[tenant],
                ok_status="204",
            ),
        },
        "/admin/audit": {
            "get": op(
                "Admin actions and deploys, newest first",
                "admin",
                json(
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
                    param("limit", "query", {"type": "integer"}, "Page size (100)."),
                    param("before", "query", {"type": "string"}, "Older than this id."),
                ],
            )
        },
    }
