"""Executions: read one, cancel one. Another tenant's execution answers 404, as if absent."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import ExecutionNotFound
from gateway.http.keys import PRINCIPAL
from gateway.http.routes.common import json_response, services
from gateway.http.views import execution_body
from gateway.invoke.execution import ExecutionRecord
from gateway.security.auth import Principal

routes = web.RouteTableDef()


async def visible_execution(request: web.Request) -> ExecutionRecord:
    """The execution the path names, if the caller may see it (also its event stream's)."""
    principal: Principal = request[PRINCIPAL]
    if not principal.roles & {"invoke", "deploy", "admin"}:
        principal.require("invoke")
    execution_id = request.match_info["execution_id"]
    record = await services(request).records.get(execution_id)
    if record is None or not (principal.is_admin or record.tenant == principal.tenant):
        raise ExecutionNotFound(f"execution {execution_id!r} not found", execution_id=execution_id)
    return record


@routes.get("/executions/{execution_id}")
async def get_execution(request: web.Request) -> web.Response:
    return json_response(execution_body(await visible_execution(request)))


@routes.delete("/executions/{execution_id}")
async def cancel_execution(request: web.Request) -> web.Response:
    principal: Principal = request[PRINCIPAL]
    principal.require("invoke")
    record = await services(request).cancel_execution(await visible_execution(request), principal)
    return json_response(execution_body(record))
