"""The two middlewares: problem rendering (outermost) and authentication."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .errors import TiergateError, Unauthenticated
from .keys import PRINCIPAL, SERVICES
from .problems import from_http_exception, problem_response

log = logging.getLogger("tiergate.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/ui",)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as a problem document; unexpected ones are logged, never leaked."""
    try:
        return await handler(request)
    except TiergateError as exc:
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


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but the public ones carries ``Authorization: Bearer <key>``."""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    svc = request.app[SERVICES]
    principal = await svc.keys.authenticate(token.strip())
    await svc.ratelimit.take(principal.key_id, principal.tenant)
    request[PRINCIPAL] = principal
    return await handler(request)
