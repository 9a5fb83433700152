"""Rendering errors as RFC 9457 problem documents (``application/problem+json``).

This is the one boundary where errors become HTTP. The gateway's own errors (``TiergateError``)
carry their status; the errors raised below the gateway (storage, runtime plugins, the cascade's
verdict) carry only their ``code``, ``detail`` and ``extensions``, and ``STATUSES`` gives each
its status and title here. ``Retry-After`` comes from an error's ``retry_after``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import RAISED_BELOW, MethodNotAllowed, NotFound, TiergateError
from plugins.errors import (
    CompileError,
    PayloadTooLarge,
    PluginError,
    QueueFull,
    RuntimeUnavailable,
    UnknownRuntime,
)
from storage.errors import StorageUnavailable
from tiers.errors import CascadeExhausted, InvocationError, InvocationTimeout

log = logging.getLogger("tiergate.gateway")

PROBLEM_TYPE = "application/problem+json"

STATUSES: Mapping[type[Exception], tuple[int, str]] = {
    StorageUnavailable: (503, "Storage unavailable"),
    PluginError: (500, "Internal error"),
    CompileError: (422, "Compile error"),
    UnknownRuntime: (400, "Unknown runtime"),
    PayloadTooLarge: (413, "Payload too large"),
    QueueFull: (429, "Queue full"),
    RuntimeUnavailable: (503, "Runtime unavailable"),
    InvocationError: (500, "Internal error"),
    CascadeExhausted: (500, "Cascade exhausted"),
    InvocationTimeout: (504, "Timeout"),
}
"""The HTTP status and title of each error raised below the gateway (``gateway.errors.REPORTED``);
a subclass not listed takes its nearest listed base's."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem document before it is serialised."""

    code: str
    status: int
    title: str
    detail: str
    headers: Mapping[str, str]
    extensions: Mapping[str, Any]


def problem_of(exc: BaseException) -> Problem:
    """The problem an error is reported as; anything not reported is ``internal_error``."""
    if isinstance(exc, TiergateError):
        return Problem(exc.code, exc.status, exc.title, exc.detail, exc.headers, exc.extensions)
    if isinstance(exc, RAISED_BELOW):
        status, title = next(STATUSES[c] for c in type(exc).__mro__ if c in STATUSES)
        retry_after = getattr(exc, "retry_after", None)
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return Problem(exc.code, status, title, exc.detail, headers, exc.extensions)
    return problem_of(TiergateError())


def problem_body(problem: Problem, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if instance:
        body["instance"] = instance
    for key, value in problem.extensions.items():
        body.setdefault(key, value)
    return body


def problem_response(exc: BaseException | Problem, instance: str | None = None) -> web.Response:
    """Never fails: this is what the middleware answers with when everything else has."""
    problem = exc if isinstance(exc, Problem) else problem_of(exc)
    body = problem_body(problem, instance)
    try:
        data = orjson.dumps(body)
    except TypeError:  # an extension JSON cannot carry (an integer past 64 bits, an object)
        log.warning("problem %s: an extension is not JSON; sent as text", problem.code)
        data = orjson.dumps({key: _json_or_text(value) for key, value in body.items()})
    return web.Response(
        status=problem.status, body=data, content_type=PROBLEM_TYPE, headers=problem.headers
    )


def _json_or_text(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)
    return value


def from_http_exception(exc: web.HTTPException, path: str) -> Problem:
    """aiohttp's own errors (no route, wrong method, body too large) in our vocabulary."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return problem_of(PayloadTooLarge(exc.text or "request body too large"))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return problem_of(
            MethodNotAllowed(
                f"{exc.method} is not allowed on {path}; use {allowed}",
                headers={"Allow": allowed},
            )
        )
    if isinstance(exc, web.HTTPNotFound):
        return problem_of(NotFound(f"no such endpoint: {path}"))
    error = TiergateError(exc.reason)
    return Problem(error.code, exc.status, error.title, error.detail, {}, {})
