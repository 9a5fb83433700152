"""OpenAPI component schemas."""

from __future__ import annotations

from typing import Any

from gateway.functions.manifest import MANIFEST_SCHEMA
from gateway.http.apidoc.helpers import ERROR_CODES, ref


def schemas() -> dict[str, Any]:
    manifest = {k: v for k, v in MANIFEST_SCHEMA.items() if k != "$schema"}
    attempt = {
        "type": "object",
        "properties": {
            "tier": {"enum": ["code", "generative", "agentic", "human"]},
            "attempt": {"type": "integer"},
            "status": {"enum": ["succeeded", "failed", "timeout", "skipped", "cancelled"]},
            "error": {"type": ["string", "null"]},
            "code": {
                "type": "string",
                "description": "a stable name for the failure, when it has one (output_too_large)",
            },
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
    cause = {
        "type": "object",
        "description": "What started the execution",
        "properties": {
            "kind": {"enum": ["invoke", "event", "chain", "schedule", "retry", "redrive", "graph"]},
            "event_id": {"type": "string"},
            "execution_id": {"type": "string"},
            "run_id": {"type": "string"},
            "graph_id": {"type": "string"},
            "node": {"type": "string", "description": "The graph node this execution ran"},
        },
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
            "environment": {
                "type": "object",
                "description": "A Python package's resolved requirements: the environment's "
                "name (sha256, shared by every version with the same lock) and the lock, "
                "`name==version --hash=sha256:…` per distribution",
                "properties": {
                    "sha256": {"type": "string"},
                    "lock": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    }
    alias_name = {
        "type": "string",
        "description": "Calls made as `id:alias`: the alias that picked `version`",
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
                "warnings": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "present when the deploy was accepted with something worth "
                    "saying, each naming its field: a chain to a function the tenant does not "
                    "have (yet)",
                },
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
                ref("Manifest"),
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
                "alias": alias_name,
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
                        "cache_hit_result": {
                            "type": "boolean",
                            "description": "Only for versions with a result cache (manifest "
                            "cache): true when the output came from it and no tier ran",
                        },
                        "egress": {
                            "type": "object",
                            "description": "Only for versions with network: the connections "
                            "its code asked the egress proxy for (allowed and made, refused, or "
                            "allowed but unreachable) and the bytes sent and received through "
                            "them, over all its code attempts",
                            "properties": {
                                name: {"type": "integer"}
                                for name in (
                                    "allowed",
                                    "refused",
                                    "failed",
                                    "bytes_sent",
                                    "bytes_received",
                                )
                            },
                        },
                    },
                },
                "cause": cause,
                "caller": {
                    "type": "object",
                    "description": "The API key that asked for it (absent for work the gateway "
                    "started: see cause)",
                    "properties": {
                        "key_id": {"type": "string"},
                        "tenant": {"type": "string"},
                        "roles": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "custom": {"description": "The caller's X-Tiergate-Context header, as JSON"},
                "children": {"type": "array", "items": {"type": "string"}},
                "retries": {"type": "integer"},
                "next_attempt_at": {"type": "string", "format": "date-time"},
                "callback": {
                    "type": "object",
                    "properties": {
                        "status": {"enum": ["pending", "retrying", "delivered", "failed"]},
                        "attempts": {"type": "integer"},
                        "last_error": {"type": ["string", "null"]},
                    },
                },
                "follow_errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "chain": {"type": "string"},
                            "event": {"type": "string"},
                            "to": {"type": "string"},
                            "code": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
        "DeadLetter": {
            "type": "object",
            "properties": {
                "execution_id": {"type": "string"},
                "function_id": {"type": "string"},
                "version": {"type": "integer"},
                "cause": cause,
                "error": {"type": ["string", "null"]},
                "attempts": {"type": "array", "items": attempt},
                "retries": {"type": "integer"},
                "failed_at": {"type": "string", "format": "date-time"},
                "input": {},
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
                            "alias": alias_name,
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
        **alias_schemas(),
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
        "Task": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "function_id": {"type": "string"},
                "execution_id": {"type": "string"},
                "input": {},
                "instructions": {"type": "string"},
                "attempts": {"type": "array", "items": attempt},
                "status": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
                "claimed_by": {"type": ["string", "null"]},
                "output_schema": {},
                "description": {"type": "string"},
            },
        },
        "StorageTarget": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string"}, "version": {"type": "integer", "minimum": 1}},
        },
    }


def alias_schemas() -> dict[str, Any]:
    weights = {
        "type": "object",
        "description": "Version (a string) → the share of calls sent there; `version` gets "
        "1 - their sum",
        "propertyNames": {"pattern": "^[1-9][0-9]{0,9}$"},
        "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "maxProperties": 4,
    }
    alias = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "function_id": {"type": "string"},
            "version": {"type": "integer"},
            "weights": weights,
            "description": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "Alias": alias,
        "AliasList": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "aliases": {"type": "array", "items": ref("Alias")},
            },
        },
        "AliasRequest": {
            "type": "object",
            "required": ["version"],
            "additionalProperties": False,
            "properties": {
                "version": {"type": "integer", "minimum": 1},
                "weights": weights,
                "description": {"type": "string", "maxLength": 256},
            },
        },
    }
