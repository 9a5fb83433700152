"""Live streams (Server-Sent Events): one execution's events, one function's logs as they come.

The same visibility as the documents they follow: an execution's events for whoever may read
``GET /executions/{id}`` (another tenant's answers 404), a function's logs for whoever may read
``GET /functions/{id}/logs``. What the streams send and how they are bounded: ``gateway.http.sse``.
A stream of what may run in another process holds a lease on it meanwhile, so that process
forwards its events (``gateway.cluster.relay``).
"""

from __future__ import annotations

from aiohttp import web

from gateway.http.keys import PRINCIPAL
from gateway.http.routes.common import services
from gateway.http.routes.executions import visible_execution
from gateway.http.sse import EventStream, ExecutionFollower, FunctionFollower, Pace, serve
from gateway.invoke.live import ENDED
from gateway.security.auth import Principal

routes = web.RouteTableDef()


@routes.get("/executions/{execution_id}/events")
async def execution_events(request: web.Request) -> web.StreamResponse:
    record = await visible_execution(request)
    principal: Principal = request[PRINCIPAL]
    svc = services(request)
    sub = svc.live.subscribe(principal.tenant, execution_id=record.execution_id)
    backlog = svc.invoker.logs_so_far(record.execution_id)  # at once: none falls in between
    follower = ExecutionFollower(
        EventStream(request), sub, svc.records, _pace(request), record, backlog
    )
    elsewhere = backlog is None and record.status not in ENDED  # or not started yet
    with svc.relay.watching(record.execution_id if elsewhere else None):
        return await serve(svc.live, follower)


async def follow_function_logs(
    request: web.Request, principal: Principal, tenant: str, function_id: str
) -> web.StreamResponse:
    """``GET /functions/{id}/logs?follow=true`` (the function is known to exist and be the
    caller's to read)."""
    svc = services(request)
    sub = svc.live.subscribe(principal.tenant, function=(tenant, function_id))
    follower = FunctionFollower(
        EventStream(request),
        sub,
        svc.records,
        _pace(request),
        (tenant, function_id),
        svc.invoker.logs_so_far,
    )
    with svc.relay.watching((tenant, function_id)):
        return await serve(svc.live, follower)


def _pace(request: web.Request) -> Pace:
    settings = services(request).settings
    return Pace(settings.stream_poll_s, settings.stream_heartbeat_s)
