"""What every handler needs: the caller, its tenant, JSON in and out."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import BadRequest
from gateway.http.keys import PRINCIPAL, SERVICES
from gateway.security.auth import Principal
from gateway.services import Services

TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def caller(request: web.Request, role: str) -> Principal:
    principal: Principal = request[PRINCIPAL]
    principal.require(role)
    return principal


def tenant_of(request: web.Request, principal: Principal) -> str:
    """The caller's tenant; admin keys may act for another with ``?tenant=``."""
    wanted = request.query.get("tenant") if request.query_string else None
    if wanted is None or wanted == principal.tenant:
        return principal.tenant
    principal.act_for(wanted)
    if not TENANT.match(wanted):
        raise BadRequest(f"invalid tenant {wanted!r}")
    return wanted


def whole_number(raw: str, name: str, low: int, high: int, setting: str = "") -> int:
    """A query parameter as a whole number from ``low`` to ``high`` (400 ``invalid_request``
    otherwise, naming the ``setting`` that sets ``high`` if one does). ASCII digits only, and no
    longer than ``high``: ``str.isdigit`` also takes '²', which ``int`` refuses, and ``int``
    refuses strings of 4300 digits and more."""
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    ceiling = f" ({setting})" if setting else ""
    raise BadRequest(
        f"{name} must be a whole number from {low} to {high}{ceiling}, got {raw[:20]!r}"
    )


async def read_json(request: web.Request, what: str = "request body") -> Any:
    body = await request.read()
    if not body.strip():
        raise BadRequest(f"the {what} is empty; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the {what} is not valid JSON: {exc}") from None


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )
