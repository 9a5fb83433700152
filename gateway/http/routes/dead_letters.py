"""Dead letters: asynchronous executions whose retries are spent — list, redrive, delete."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.compose.dead_letters import DeadLetter
from gateway.errors import ExecutionNotFound
from gateway.functions.manifest import check_function_id
from gateway.http.routes.common import caller, json_response, services, tenant_of
from gateway.times import iso

routes = web.RouteTableDef()


@routes.get("/dead-letters")
async def list_dead_letters(request: web.Request) -> web.Response:
    tenant = tenant_of(request, caller(request, "deploy"))
    function_id = request.query.get("function_id") if request.query_string else None
    if function_id is not None:
        check_function_id(function_id)
    letters = await services(request).dead_letters.list(tenant, function_id)
    return json_response({"dead_letters": [_letter_body(letter) for letter in letters]})


@routes.post("/dead-letters/{execution_id}/redrive")
async def redrive(request: web.Request) -> web.Response:
    tenant = tenant_of(request, caller(request, "deploy"))
    svc = services(request)
    letter = await _letter(request, tenant)
    record = await svc.durable.redrive(letter)
    await svc.dead_letters.remove(tenant, letter.execution_id)
    return json_response(
        {"execution_id": record.execution_id, "status_url": f"/executions/{record.execution_id}"},
        status=202,
        headers={"Location": f"/executions/{record.execution_id}"},
    )


@routes.delete("/dead-letters/{execution_id}")
async def delete_dead_letter(request: web.Request) -> web.Response:
    tenant = tenant_of(request, caller(request, "deploy"))
    letter = await _letter(request, tenant)
    await services(request).dead_letters.remove(tenant, letter.execution_id)
    return web.Response(status=204)


async def _letter(request: web.Request, tenant: str) -> DeadLetter:
    execution_id = request.match_info["execution_id"]
    letter = await services(request).dead_letters.get(tenant, execution_id)
    if letter is None:
        raise ExecutionNotFound(
            f"no dead letter for execution {execution_id!r}", execution_id=execution_id
        )
    return letter


def _letter_body(letter: DeadLetter) -> dict[str, Any]:
    return {
        "execution_id": letter.execution_id,
        "function_id": letter.function_id,
        "version": letter.version,
        "cause": letter.cause,
        "error": letter.error,
        "attempts": letter.attempts,
        "retries": letter.retries,
        "failed_at": iso(letter.failed_at),
        "input": orjson.loads(letter.input),
    }
