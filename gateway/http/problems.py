"""Rendering errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import MethodNotAllowed, NotFound, PayloadTooLarge, TiergateError

log = logging.getLogger("tiergate.gateway")

PROBLEM_TYPE = "application/problem+json"


def problem_body(exc: TiergateError, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
    }
    if instance:
        body["instance"] = instance
    for key, value in exc.extensions.items():
        body.setdefault(key, value)
    return body


def problem_response(exc: TiergateError, instance: str | None = None) -> web.Response:
    """Never fails: this is what the middleware answers with when everything else has."""
    body = problem_body(exc, instance)
    try:
        data = orjson.dumps(body)
    except TypeError:  # an extension JSON cannot carry (an integer past 64 bits, an object)
        log.warning("problem %s: an extension is not JSON; sent as text", exc.code)
        data = orjson.dumps({key: _json_or_text(value) for key, value in body.items()})
    return web.Response(
        status=exc.status, body=data, content_type=PROBLEM_TYPE, headers=exc.headers
    )


def _json_or_text(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)
    return value


def from_http_exception(exc: web.HTTPException, path: str) -> TiergateError:
    """aiohttp's own errors (no route, wrong method, body too large) in our vocabulary."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(exc.text or "request body too large")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(
            f"{exc.method} is not allowed on {path}; use {allowed}",
            headers={"Allow": allowed},
        )
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no such endpoint: {path}")
    error = TiergateError(exc.reason)
    error.status = exc.status  # type: ignore[misc]
    return error
