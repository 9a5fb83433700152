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
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway import logformat
from gateway.http.app import create_app
from gateway.settings import Settings
from storage.errors import StorageUnavailable

log = logging.getLogger("tiergate.gateway")

RESTART_BACKOFF_S = 1.0


class ServeFailed(RuntimeError):
    """The gateway could not start serving (the port is taken, a worker died before serving)."""


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # not on this platform: the default loop works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _announce_key(settings: Settings) -> Callable[[str], None]:
    def announce(key: str) -> None:
        print(
            "Created an admin key for tenant 'default'. It is shown only this once:\n"
            f"    {key}\n"
            f"It is saved in {settings.admin_key_path} (mode 0600); the CLI reads it from there.",
            flush=True,
        )

    return announce


def _banner(settings: Settings) -> str:
    workers = f", {settings.processes} workers" if settings.processes > 1 else ""
    return (
        f"tiergate serving on http://{settings.host}:{settings.port}"
        f" (data dir {settings.data_dir}{workers})"
    )


def run(settings: Settings, *, access_log: bool = False) -> None:
    if settings.processes > 1:
        _run_workers(settings, access_log)
        return
    _use_uvloop()
    app = create_app(settings, on_new_admin_key=_announce_key(settings))
    _serve(
        app,
        settings,
        access_log,
        reuse_port=False,
        serving=lambda: print(_banner(settings), flush=True),
    )


def _serve(
    app: web.Application,
    settings: Settings,
    access_log: bool,
    *,
    reuse_port: bool,
    serving: Callable[[], None],
) -> None:
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            handler_cancellation=True,
            # aiohttp closes a connection that has not sent a whole request head this long after
            # it opened or got its last answer: that is the header read timeout (a slowloris
            # client trickling headers is cut off); the body's is ``body_deadline_middleware``.
            keepalive_timeout=settings.read_timeout_s,
            access_log=log if access_log else None,
            print=lambda _: serving(),  # called once every site listens
            shutdown_timeout=10,
            reuse_port=reuse_port,
        )
    except StorageUnavailable as exc:  # the KV is needed to start (keys, events)
        raise ServeFailed(f"cannot start: {exc.detail}") from None
    except OSError as exc:
        raise ServeFailed(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    sys.stdout.flush()


def _worker_main(settings: Settings, access_log: bool, ready: Any, index: int) -> None:
    logformat.configure(settings.log_level, settings.log_format)
    _use_uvloop()
    pid = multiprocessing.current_process().pid
    try:
        _serve(
            create_app(settings, worker=index),
            settings,
            access_log,
            reuse_port=True,
            serving=lambda: ready.put(pid),
        )
    except ServeFailed as exc:
        log.error("worker %s: %s", pid, exc)
        sys.exit(1)


async def _prepare(settings: Settings) -> None:
    """The start-up a single process runs (admin key, preloads), once, then closed again."""
    runner = web.AppRunner(create_app(settings, on_new_admin_key=_announce_key(settings)))
    try:
        await runner.setup()
    except StorageUnavailable as exc:
        raise ServeFailed(f"cannot start: {exc.detail}") from None
    await runner.cleanup()


def _run_workers(settings: Settings, access_log: bool) -> None:
    asyncio.run(_prepare(settings))
    worker_settings = settings.with_overrides(preload=())
    context = multiprocessing.get_context("spawn")
    ready = context.SimpleQueue()
    serving: set[int | None] = set()
    stopping = False

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker_main, args=(worker_settings, access_log, ready, index), daemon=False
        )
        process.start()
        return process

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers = [start(index) for index in range(settings.processes)]
    announced = False
    try:
        while not stopping:
            time.sleep(0.1)
            while not ready.empty():
                serving.add(ready.get())
            if not announced and all(process.pid in serving for process in workers):
                print(_banner(settings), flush=True)  # the banner means: all N are serving
                announced = True
            for index, process in enumerate(workers):
                if process.is_alive() or stopping:
                    continue
                if process.pid not in serving:
                    raise ServeFailed(
                        f"a worker exited with code {process.exitcode} before serving"
                        " (its log is above)"
                    )
                log.error(
                    "worker %d exited with code %s; starting another", process.pid, process.exitcode
                )
                time.sleep(RESTART_BACKOFF_S)
                workers[index] = start(index)
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
