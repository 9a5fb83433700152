"""The reviewer page and the graph run page: static files, no build step. Public: the pages hold
no data; their calls to the API carry the signed-in key.

Every answer under ``/ui`` carries a strict Content-Security-Policy (scripts, styles and API calls
from this origin only, no inline code, never framed) and the headers that go with it: the page
handles API keys, so it must not run injected code, be framed for clickjacking or leak its URL.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent.parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

routes = web.RouteTableDef()


@routes.get("/ui/")
async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


@routes.get("/ui/run")
async def run_page(request: web.Request) -> web.FileResponse:
    """``/ui/run?graph=ID&run=RUN_ID``: a graph run drawn as its nodes and edges, refreshed while
    it runs."""
    return web.FileResponse(STATIC / "run.html")


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


def add_static(app: web.Application) -> None:
    """The pages' files, the ``/ui`` redirect, and the headers on every answer under ``/ui``."""
    app.router.add_static("/ui/static/", STATIC)
    app.router.add_get("/ui", _to_page)
    app.on_response_prepare.append(_protect)


async def _protect(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/ui" or request.path.startswith("/ui/"):
        response.headers.update(SECURITY_HEADERS)
