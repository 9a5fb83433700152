"""The reviewer page: static files, no build step. Public: the page holds no data; its calls to
the API carry the reviewer's key."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent.parent / "static"

routes = web.RouteTableDef()


@routes.get("/ui/")
async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def add_static(app: web.Application) -> None:
    app.router.add_static("/ui/static/", STATIC)
    app.router.add_get("/ui", lambda r: web.HTTPFound("/ui/"))
