"""Running the gateway process: event loop choice, signals, the one-time admin key banner."""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from .app import create_app
from .settings import Settings

log = logging.getLogger("tiergate.gateway")


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(settings: Settings, *, access_log: bool = False) -> None:
    _use_uvloop()

    def announce_key(key: str) -> None:
        print(
            "Created an admin key for tenant 'default'. It is shown only this once:\n"
            f"    {key}\n"
            f"It is saved in {settings.admin_key_path} (mode 0600); the CLI reads it from there.",
            flush=True,
        )

    app = create_app(settings, on_new_admin_key=announce_key)
    url = f"http://{settings.host}:{settings.port}"

    def banner(_: str) -> None:
        print(f"tiergate serving on {url} (data dir {settings.data_dir})", flush=True)

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,
        access_log=log if access_log else None,
        print=banner,
        shutdown_timeout=10,
    )
    sys.stdout.flush()
