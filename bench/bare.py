"""The ceiling: a bare aiohttp handler that echoes a JSON body with orjson.

Usage: python bench/bare.py PORT [--uvloop]   (several may serve one port: SO_REUSEPORT)
"""

from __future__ import annotations

import asyncio
import sys

import orjson
from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    value = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def main() -> None:
    port = int(sys.argv[1])
    if "--uvloop" in sys.argv:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/healthz", lambda r: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, reuse_port=True)


if __name__ == "__main__":
    main()
