"""Administration (role admin): API keys, tenant secrets, tenant rate limits, the audit trail."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway.errors import BadRequest
from gateway.http.routes.common import (
    TENANT,
    caller,
    json_response,
    read_json,
    services,
    whole_number,
)
from gateway.security.auth import ROLES, Principal
from gateway.security.ratelimit import Rate

routes = web.RouteTableDef()

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _tenant(value: Any) -> str:
    if not isinstance(value, str) or not TENANT.match(value):
        raise BadRequest(
            f"invalid tenant {value!r}: use 1-63 lowercase letters, digits, '-' or '_'"
        )
    return value


@routes.post("/admin/keys")
async def create_key(request: web.Request) -> web.Response:
    principal = caller(request, "admin")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest('send {"tenant": "...", "roles": [...], "name": "..."}')
    tenant = _tenant(body.get("tenant"))
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles or not all(r in ROLES for r in roles):
        raise BadRequest(f"roles must be a non-empty list of {', '.join(ROLES)}")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise BadRequest("name must be a string of at most 200 characters")
    record, token = await services(request).admin.create_key(principal, tenant, roles, name)
    return json_response(
        {
            "id": record["id"],
            "key": token,
            "tenant": tenant,
            "roles": record["roles"],
            "name": name,
        },
        status=201,
    )


@routes.get("/admin/keys")
async def list_keys(request: web.Request) -> web.Response:
    caller(request, "admin")
    tenant = request.query.get("tenant")
    keys = await services(request).keys.list(_tenant(tenant) if tenant else None)
    return json_response({"keys": keys})


@routes.delete("/admin/keys/{key_id}")
async def revoke_key(request: web.Request) -> web.Response:
    principal = caller(request, "admin")
    await services(request).admin.revoke_key(principal, request.match_info["key_id"])
    return web.Response(status=204)


def _secret_target(request: web.Request) -> tuple[Principal, str, str]:
    principal = caller(request, "admin")
    tenant = _tenant(request.match_info["tenant"])
    name = request.match_info.get("name", "")
    if "name" in request.match_info and not SECRET_NAME.match(name):
        raise BadRequest(f"invalid secret name {name!r}: use letters, digits and '_'")
    return principal, tenant, name


@routes.put("/admin/secrets/{tenant}/{name}")
async def put_secret(request: web.Request) -> web.Response:
    principal, tenant, name = _secret_target(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise BadRequest('send {"value": "<the secret as a string>"}')
    await services(request).admin.put_secret(principal, tenant, name, body["value"])
    return json_response({"tenant": tenant, "name": name})


@routes.get("/admin/secrets/{tenant}")
async def list_secrets(request: web.Request) -> web.Response:
    _, tenant, _ = _secret_target(request)
    return json_response(
        {"tenant": tenant, "secrets": await services(request).secrets.names(tenant)}
    )


@routes.delete("/admin/secrets/{tenant}/{name}")
async def delete_secret(request: web.Request) -> web.Response:
    principal, tenant, name = _secret_target(request)
    await services(request).admin.delete_secret(principal, tenant, name)
    return web.Response(status=204)


@routes.put("/admin/tenants/{tenant}/rate-limit")
async def put_rate_limit(request: web.Request) -> web.Response:
    principal = caller(request, "admin")
    tenant = _tenant(request.match_info["tenant"])
    rate = Rate.parse(await read_json(request))
    await services(request).admin.set_rate_limit(principal, tenant, rate)
    return json_response({"tenant": tenant, "rate": rate.rate, "burst": rate.burst})


@routes.get("/admin/tenants/{tenant}/rate-limit")
async def get_rate_limit(request: web.Request) -> web.Response:
    caller(request, "admin")
    tenant = _tenant(request.match_info["tenant"])
    limiter = services(request).ratelimit
    override = await limiter.override(tenant)
    rate = override or limiter.default
    return json_response(
        {"tenant": tenant, "rate": rate.rate, "burst": rate.burst, "override": override is not None}
    )


@routes.delete("/admin/tenants/{tenant}/rate-limit")
async def delete_rate_limit(request: web.Request) -> web.Response:
    principal = caller(request, "admin")
    tenant = _tenant(request.match_info["tenant"])
    await services(request).admin.clear_rate_limit(principal, tenant)
    return web.Response(status=204)


@routes.get("/admin/audit")
async def audit(request: web.Request) -> web.Response:
    caller(request, "admin")
    limit = whole_number(request.query.get("limit", "100"), "limit", 1, 1000)
    entries = await services(request).audit.list(limit=limit, before=request.query.get("before"))
    return json_response({"entries": entries})
