"""Aliases of a function: ``/functions/{id}/aliases`` — list, show, create or move, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import BadRequest
from gateway.functions.aliases import Alias, AliasChange, check_alias_name
from gateway.functions.manifest import check_function_id
from gateway.http.routes.common import caller, json_response, read_json, services, tenant_of
from gateway.http.views import iso
from gateway.security.auth import Principal

routes = web.RouteTableDef()


@routes.get("/functions/{id}/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    aliases = await services(request).registry.aliases(tenant, function_id)
    return json_response({"id": function_id, "aliases": [alias_body(a) for a in aliases]})


@routes.get("/functions/{id}/aliases/{name}")
async def get_alias(request: web.Request) -> web.Response:
    _, tenant, function_id, name = _target(request)
    alias = await services(request).registry.alias(tenant, function_id, name)
    return json_response(alias_body(alias))


@routes.put("/functions/{id}/aliases/{name}")
async def put_alias(request: web.Request) -> web.Response:
    principal, tenant, function_id, name = _target(request)
    change = AliasChange.parse(await _read_body(request))
    functions = services(request).functions
    alias, created = await functions.put_alias(principal, tenant, function_id, name, change)
    if created:
        location = f"/functions/{function_id}/aliases/{name}"
        return json_response(alias_body(alias), status=201, headers={"Location": location})
    return json_response(alias_body(alias))


@routes.delete("/functions/{id}/aliases/{name}")
async def delete_alias(request: web.Request) -> web.Response:
    principal, tenant, function_id, name = _target(request)
    await services(request).functions.delete_alias(principal, tenant, function_id, name)
    return web.Response(status=204)


def _target(request: web.Request) -> tuple[Principal, str, str, str]:
    """The caller (role deploy), its tenant, and the function and alias the path names."""
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    return principal, tenant, function_id, check_alias_name(request.match_info["name"])


async def _read_body(request: web.Request) -> Any:
    try:
        return await read_json(request)
    except BadRequest as exc:  # empty, or not JSON
        exc.extensions.setdefault("field", "(body)")
        raise


def alias_body(alias: Alias) -> dict[str, Any]:
    return {
        "name": alias.name,
        "function_id": alias.function_id,
        "version": alias.version,
        "weights": dict(alias.weights),
        "description": alias.description,
        "created_at": iso(alias.created_at),
        "updated_at": iso(alias.updated_at),
    }
