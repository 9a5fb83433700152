"""Events: ``POST /events`` starts the tenant's functions whose triggers match."""

from __future__ import annotations

from aiohttp import web

from gateway.compose.events import check_event_type
from gateway.errors import BadRequest
from gateway.http.routes.common import caller, json_response, read_json, services, tenant_of

routes = web.RouteTableDef()


@routes.post("/events")
async def post_event(request: web.Request) -> web.Response:
    principal = caller(request, "invoke")
    tenant = tenant_of(request, principal)
    event = await read_json(request, "event")
    if not isinstance(event, dict):
        raise BadRequest('an event is a JSON object: {"type": "order.created", "data": ...}')
    unknown = sorted(set(event) - {"type", "data"})
    if unknown:
        raise BadRequest(f"unknown event field(s): {', '.join(unknown)} (use type and data)")
    kind = check_event_type(event.get("type"))
    published = await services(request).events.publish(
        tenant, kind, event.get("data"), idempotency_key=request.headers.get("Idempotency-Key")
    )
    return json_response(published, status=202)
