"""Building blocks of the OpenAPI document: operations, parameters, problem responses."""

from __future__ import annotations

from typing import Any

ERROR_CODES = {
    400: [
        "invalid_request",
        "invalid_function_id",
        "invalid_manifest",
        "unknown_runtime",
        "invalid_input",
        "invalid_output",
        "invalid_graph",
    ],
    401: ["unauthenticated"],
    403: ["forbidden", "quota_exceeded"],
    404: [
        "not_found",
        "function_not_found",
        "version_not_found",
        "alias_not_found",
        "execution_not_found",
        "task_not_found",
        "secret_not_found",
        "key_not_found",
        "graph_not_found",
        "run_not_found",
    ],
    405: ["method_not_allowed"],
    408: ["request_timeout"],
    409: ["task_claimed", "execution_cancelled", "last_admin_key"],
    413: ["payload_too_large"],
    422: ["compile_error"],
    429: ["rate_limited", "queue_full", "too_many_deploys", "too_many_streams"],
    500: ["cascade_exhausted", "internal_error"],
    503: ["circuit_open", "storage_unavailable", "runtime_unavailable"],
    504: ["timeout"],
}

REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problem(status: int) -> dict[str, Any]:
    return {
        "description": ", ".join(ERROR_CODES[status]),
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def op(
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
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
        errors = (*errors, 408)  # a body that comes too slowly
    for status in sorted(set(errors)):
        op["responses"][str(status)] = problem(status)
    if params:
        op["parameters"] = params
    return op


def param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


ID = param(
    "id", "path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "Function id."
)
TENANT = param("tenant", "query", {"type": "string"}, "Admin keys only: act for this tenant.")
EXEC = param("execution_id", "path", {"type": "string"}, "Execution id.")
JSON_BODY: dict[str, Any] = {"application/json": {"schema": {}}}
IDEMPOTENCY_KEY = param(
    "Idempotency-Key",
    "header",
    {"type": "string", "maxLength": 255},
    "The same key (per tenant, 24 h) answers with the first request's result instead of "
    "starting anything again.",
)
