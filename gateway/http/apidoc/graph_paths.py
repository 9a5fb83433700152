"""OpenAPI paths and schemas: dependency graphs and their runs."""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import JSON_BODY, TENANT, json, op, param, ref

GRAPH = param(
    "id", "path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "Graph id."
)
RUN = param("run_id", "path", {"type": "string"}, "Run id.")
MAPPING = {
    "description": "A JMESPath expression (string), or an object whose values are mappings; "
    "evaluated over {input: the run input, NAME: the output of each needed node}"
}
TIME = {"type": ["string", "null"], "format": "date-time"}
NODE_NAME = "^[A-Za-z_][A-Za-z0-9_]{0,63}$"


def graph_schemas() -> dict[str, Any]:
    node = {
        "type": "object",
        "required": ["function"],
        "additionalProperties": False,
        "properties": {
            "function": {
                "type": "string",
                "description": '"fid" (latest when a run starts) or "fid@version"',
            },
            "needs": {"type": "array", "items": {"type": "string", "pattern": NODE_NAME}},
            "input": {
                **MAPPING,
                "description": "Default: the run input. " + MAPPING["description"],
            },
        },
    }
    node_run = {
        "type": "object",
        "properties": {
            "status": {
                "enum": [
                    "pending",
                    "running",
                    "completed",
                    "failed",
                    "skipped",
                    "reused",
                    "awaiting_human",
                ]
            },
            "function": {"type": "string"},
            "function_version": {"type": ["integer", "null"]},
            "execution_id": {
                "type": ["string", "null"],
                "description": "The execution that ran it (for a reused node: the base run's)",
            },
            "started_at": TIME,
            "ended_at": TIME,
            "output": {},
            "reason": {
                "type": ["string", "null"],
                "description": "Why it ran, was reused or was skipped",
            },
            "error": {"type": ["string", "null"]},
        },
    }
    return {
        "GraphDocument": {
            "type": "object",
            "required": ["id", "nodes"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
                "description": {"type": "string", "maxLength": 1024},
                "nodes": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1000,
                    "propertyNames": {"pattern": NODE_NAME, "not": {"const": "input"}},
                    "additionalProperties": node,
                },
                "output": {
                    **MAPPING,
                    "description": "The run's output. Default: {NAME: output} of the nodes "
                    "nothing needs. " + MAPPING["description"],
                },
            },
        },
        "GraphSummary": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "version": {"type": "integer"},
                "description": {"type": ["string", "null"]},
                "versions": {"type": "array", "items": {"type": "integer"}},
                "created_at": TIME,
                "updated_at": TIME,
            },
        },
        "GraphVersion": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "version": {"type": "integer"},
                "latest": {"type": "integer"},
                "versions": {"type": "array", "items": {"type": "integer"}},
                "description": {"type": ["string", "null"]},
                "nodes": {"type": "object", "additionalProperties": node},
                "output": {},
                "order": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The nodes, each after the nodes it needs",
                },
                "created_at": TIME,
                "created_by": {"type": "string"},
            },
        },
        "GraphRun": {
            "type": "object",
            "properties": {
                "run_id": {"type": "string"},
                "graph_id": {"type": "string"},
                "version": {"type": "integer"},
                "status": {
                    "enum": ["running", "completed", "failed", "awaiting_human", "cancelled"]
                },
                "output": {},
                "error": {"type": ["string", "null"]},
                "base_run": {"type": ["string", "null"]},
                "trace_id": {"type": "string"},
                "created_at": TIME,
                "ended_at": TIME,
                "nodes": {"type": "object", "additionalProperties": node_run},
            },
        },
    }


def graph_paths() -> dict[str, Any]:
    deployed = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "version": {"type": "integer"},
            "nodes": {"type": "array", "items": {"type": "string"}},
        },
    }
    run_params = [
        GRAPH,
        TENANT,
        param(
            "base_run",
            "query",
            {"type": "string"},
            "Reuse the nodes of this earlier run of the graph whose function version and "
            "resolved input are unchanged.",
        ),
        param(
            "timeout_ms",
            "query",
            {"type": "integer", "minimum": 0},
            "How long to wait for the run to end before answering 202 (default 30000).",
        ),
        param("Prefer", "header", {"type": "string"}, "`respond-async`: answer 202 at once."),
    ]
    start = op(
        "Run the graph's latest version with the body as its input; 200 when it ended within "
        "timeout_ms, else 202 (also while a node waits for a person)",
        "invoke",
        json(ref("GraphRun"), "Ended (completed, failed or cancelled)"),
        (400, 404, 413, 429, 503),
        body=JSON_BODY,
        params=run_params,
    )
    start["responses"]["202"] = {
        "description": "Still running, or waiting for a person; Location names the run",
        "headers": {"Location": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": ref("GraphRun")}},
    }
    return {
        "/graphs": {
            "post": op(
                "Deploy a graph (a new version when the id exists)",
                "deploy",
                json(deployed, "Created"),
                (400, 403, 413),
                body={"application/json": {"schema": ref("GraphDocument")}},
                params=[TENANT],
                ok_status="201",
            ),
            "get": op(
                "The tenant's graphs",
                "deploy",
                json(
                    {
                        "type": "object",
                        "properties": {"graphs": {"type": "array", "items": ref("GraphSummary")}},
                    }
                ),
                (400,),
                params=[TENANT],
            ),
        },
        "/graphs/{id}": {
            "get": op(
                "A graph version as deployed (latest unless ?version=)",
                "deploy",
                json(ref("GraphVersion")),
                (400, 404),
                params=[
                    GRAPH,
                    TENANT,
                    param("version", "query", {"type": "integer"}, "This version."),
                ],
            ),
            "delete": op(
                "Delete a graph (runs already started go on)",
                "deploy",
                {"description": "Deleted"},
                (404,),
                params=[GRAPH, TENANT],
                ok_status="204",
            ),
        },
        "/graphs/{id}/runs": {"post": start},
        "/graphs/{id}/runs/{run_id}": {
            "get": op(
                "A run", "invoke", json(ref("GraphRun")), (404,), params=[GRAPH, RUN, TENANT]
            ),
            "delete": op(
                "Cancel a run: pending nodes are skipped, running ones cancelled",
                "invoke",
                json(ref("GraphRun")),
                (404,),
                params=[GRAPH, RUN, TENANT],
            ),
        },
    }
