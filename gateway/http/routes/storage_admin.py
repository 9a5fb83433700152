"""Storage administration (role admin): move code from the KV into the object store."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import BadRequest
from gateway.functions.manifest import check_function_id
from gateway.http.routes.common import caller, json_response, read_json, services, tenant_of

routes = web.RouteTableDef()


async def _target(request: web.Request) -> tuple[str, str, int | None]:
    """The tenant, function id and version (None: every version) a request names."""
    principal = caller(request, "admin")
    tenant = tenant_of(request, principal)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest('send {"id": "<function>", "version": N}')
    function_id = check_function_id(body.get("id"))
    version: Any = body.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise BadRequest("version must be a version number from 1")
    return tenant, function_id, version


@routes.post("/admin/storage/migrate")
async def migrate(request: web.Request) -> web.Response:
    tenant, function_id, version = await _target(request)
    status = await services(request).storage_admin.migrate(tenant, function_id, version)
    return json_response({"id": function_id, "status": status})


@routes.post("/admin/storage/cleanup-kv")
async def cleanup_kv(request: web.Request) -> web.Response:
    tenant, function_id, version = await _target(request)
    result = await services(request).storage_admin.cleanup_kv(tenant, function_id, version)
    return json_response({"id": function_id, "removed": result.removed, "kept": result.kept})
