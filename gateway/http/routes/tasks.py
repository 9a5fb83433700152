"""Human review (role review): list, read, claim, release, complete and reject tasks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import BadRequest
from gateway.http.routes.common import caller, json_response, read_json, services, tenant_of
from gateway.http.views import execution_body, task_body
from gateway.review.task import ReviewTask

routes = web.RouteTableDef()

STATUSES = ("pending", "completed", "rejected", "expired", "cancelled")
# The reviewer sees the end of the earlier attempts' logs (where a traceback is); a review key
# cannot read the execution itself (GET /executions needs invoke, deploy or admin).
LOG_LINES = 50


@routes.get("/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    status: str | None = request.query.get("status", "pending")
    if status == "all":
        status = None
    elif status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)} or all, got {status!r}")
    everyone = principal.is_admin and "tenant" not in request.query
    tenant = None if everyone else tenant_of(request, principal)
    tasks = await services(request).tasks.list(tenant, status)
    return json_response({"tasks": [task_body(t) for t in tasks]})


@routes.get("/tasks/{task_id}")
async def get_task(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    task = await services(request).tasks.get(request.match_info["task_id"], principal)
    return json_response(await _for_reviewer(request, task))


async def _for_reviewer(request: web.Request, task: ReviewTask) -> dict[str, Any]:
    """The task plus what the reviewer page needs: the function's output schema (to build its
    form) and description, and the last ``LOG_LINES`` log lines of the earlier attempts
    (``logs_total``: how many there are in all)."""
    svc = services(request)
    shown = task_body(task)
    try:
        fn, _ = await svc.loader.get(task.tenant, task.function_id, task.version)
        shown.update(output_schema=fn.output_schema, description=fn.description)
    except Exception:  # the function may have been deleted since; the task still stands
        shown.update(output_schema=None, description="")
    record = await svc.records.get(task.execution_id)
    logs = record.logs if record is not None else []
    shown.update(logs=logs[-LOG_LINES:], logs_total=len(logs))
    return shown


@routes.post("/tasks/{task_id}/claim")
async def claim(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    task = await services(request).tasks.claim(request.match_info["task_id"], principal)
    return json_response(task_body(task))


@routes.post("/tasks/{task_id}/release")
async def release(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    task = await services(request).tasks.release(request.match_info["task_id"], principal)
    return json_response(task_body(task))


@routes.post("/tasks/{task_id}/complete")
async def complete(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    body = await read_json(request)
    if not isinstance(body, dict) or "output" not in body:
        raise BadRequest('send {"output": <the answer>}')
    record = await services(request).tasks.complete(
        request.match_info["task_id"], principal, body["output"]
    )
    return json_response(execution_body(record))


@routes.post("/tasks/{task_id}/reject")
async def reject(request: web.Request) -> web.Response:
    principal = caller(request, "review")
    body = await read_json(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest('send {"reason": "why the task is rejected"}')
    record = await services(request).tasks.reject(
        request.match_info["task_id"], principal, reason.strip()
    )
    return json_response(execution_body(record))
