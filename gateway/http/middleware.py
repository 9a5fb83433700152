"""The middlewares: problem rendering (outermost), the request body's deadline, authentication."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import StreamReader, web

from gateway.errors import REPORTED, RequestTimeout, TiergateError, Unauthenticated
from gateway.http.keys import PRINCIPAL, SERVICES, SETTINGS
from gateway.http.problems import from_http_exception, problem_response

log = logging.getLogger("tiergate.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/ui",)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as a problem document; unexpected ones are logged, never leaked."""
    try:
        return await handler(request)
    except REPORTED as exc:
        return problem_response(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(from_http_exception(exc, request.path), request.path)
    except Exception:
        log.exception("unhandled error: %s %s", request.method, request.path)
        return problem_response(
            TiergateError("unexpected error; see the gateway log"), request.path
        )


class _BodyLate(TimeoutError):
    """Set on a request body that missed its deadline. A ``TimeoutError`` because aiohttp, which
    reads what is left of a body after the answer, takes that as the end and closes quietly."""


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body must arrive within ``read_timeout_s`` of its headers (the headers themselves are
    bounded by the server's keep-alive timer, see ``server.py``): a client that sends it slower
    gets 408 ``request_timeout`` and a closed connection instead of holding both for as long as
    it likes. A body that arrived with its headers, the usual case, costs no timer."""
    body = request.content
    if body.is_eof():
        return await handler(request)
    seconds = request.app[SETTINGS].read_timeout_s
    timer = asyncio.get_running_loop().call_later(seconds, _body_late, body)
    try:
        return await handler(request)
    except _BodyLate:
        raise RequestTimeout(f"the request body did not arrive within {seconds:g} s") from None
    finally:
        timer.cancel()


def _body_late(body: StreamReader) -> None:
    if not body.is_eof():
        body.set_exception(_BodyLate())


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but the public ones carries ``Authorization: Bearer <key>``; only an admin
    key may name another tenant; every key but an admin's spends from its rate limit."""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    svc = request.app[SERVICES]
    principal = await svc.keys.authenticate(token.strip())
    if request.query_string:  # on every route, also those that ignore ?tenant=
        for tenant in request.query.getall("tenant", ()):
            principal.act_for(tenant)
    if not principal.is_admin:  # an admin can always lift a limit, its own tenant's included
        await svc.ratelimit.take(principal.key_id, principal.tenant)
    request[PRINCIPAL] = principal
    return await handler(request)
