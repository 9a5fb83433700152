"""Running the gateway: one process, or ``--workers N`` processes sharing one port.

With several workers the parent does the once-only work (the admin key, ``--deploy`` preloads)
through the same app start-up a single process runs, then starts N processes that bind the port
with ``SO_REUSEPORT`` (the kernel spreads connections) and restarts any that dies. The workers
share nothing in memory: every state lives in the stores, and changes travel on the event bus.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
import time
from typing import Any

from aiohttp import web

from .app import create_app
from .settings import Settings

log = logging.getLogger("tiergate.gateway")

RESTART_BACKOFF_S = 1.0
EARLY_EXIT_S = 10.0


class WorkerFailed(RuntimeError):
    """A worker died while starting: restarting it would only fail again."""


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _announce_key(settings: Settings) -> Any:
    def announce(key: str) -> None:
        print(
            "Created an admin key for tenant 'default'. It is shown only this once:\n"
            f"    {key}\n"
            f"It is saved in {settings.admin_key_path} (mode 0600); the CLI reads it from there.",
            flush=True,
        )

    return announce


def _banner(settings: Settings) -> str:
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    return (
        f"tiergate serving on http://{settings.host}:{settings.port}"
        f" (data dir {settings.data_dir}{workers})"
    )


def run(settings: Settings, *, access_log: bool = False) -> None:
    if settings.workers > 1:
        _run_workers(settings, access_log)
        return
    _use_uvloop()
    app = create_app(settings, on_new_admin_key=_announce_key(settings))
    _serve(app, settings, access_log, banner=True, reuse_port=False)


def _serve(
    app: web.Application, settings: Settings, access_log: bool, *, banner: bool, reuse_port: bool
) -> None:
    def printed(_: str) -> None:
        if banner:
            print(_banner(settings), flush=True)

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        handler_cancellation=True,
        access_log=log if access_log else None,
        print=printed,
        shutdown_timeout=10,
        reuse_port=reuse_port,
    )
    sys.stdout.flush()


def _worker_main(settings: Settings, access_log: bool) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _use_uvloop()
    _serve(create_app(settings), settings, access_log, banner=False, reuse_port=True)


async def _prepare(settings: Settings) -> None:
    """The start-up a single process runs (admin key, preloads), once, then closed again."""
    runner = web.AppRunner(create_app(settings, on_new_admin_key=_announce_key(settings)))
    await runner.setup()
    await runner.cleanup()


def _run_workers(settings: Settings, access_log: bool) -> None:
    asyncio.run(_prepare(settings))
    worker_settings = settings.with_overrides(workers=1, preload=())
    context = multiprocessing.get_context("spawn")
    stopping = False

    started: dict[int, float] = {}

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker_main, args=(worker_settings, access_log), daemon=False
        )
        process.start()
        started[id(process)] = time.monotonic()
        return process

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = [start() for _ in range(settings.workers)]
    print(_banner(settings), flush=True)
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started.pop(id(process)) < EARLY_EXIT_S:
                    raise WorkerFailed(
                        f"a worker exited with code {process.exitcode} while starting"
                        " (its log is above)"
                    )
                log.error("worker %d exited with code %s; starting another", process.pid,
                          process.exitcode)
                time.sleep(RESTART_BACKOFF_S)
                workers[index] = start()
    finally:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                process.terminate()
        for process in workers:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
