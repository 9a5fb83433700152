"""A wasm worker process: ``python -m plugins.wasm.worker READ_FD WRITE_FD``.

It runs at the niceness of every process that runs a tenant's code (the compiler's, the
sandbox's): a tenant's wasm spinning in a worker never outranks another tenant's Python worker or
the gateway itself. It ignores ``SIGXFSZ``: WASI output is cut off by ``RLIMIT_FSIZE``
(``wasi_abi``), and a write past it must fail with ``EFBIG`` instead of killing the worker and
every call it holds. It answers ``tiergate.invoke`` by asking the gateway over its pipe
(``calls_abi``), and sends a running call's log entries over it as they come (``log_flusher``).
A call the gateway gives up on (cancelled, its client gone) is interrupted at once, or never
started when it had not started yet (``plugins.workers.cancels``).
"""

from __future__ import annotations

import os
import signal

from plugins.workers.cancels import Cancels
from plugins.workers.child import ask, log, serve

from . import calls_abi
from .compiler import NICENESS
from .engine import Ticker
from .executor import Executor
from .log_flusher import LogFlusher


def main() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    flusher = LogFlusher(log)
    calls_abi.enable(ask, flusher.flush)
    executor = Executor(flusher=flusher)
    ticker = Ticker(executor.engines)
    cancels = Cancels.from_environment(executor.interrupt)
    if cancels is not None:
        executor.given_up = cancels.given_up
    try:
        serve(executor.handle, cancels=cancels)
    finally:
        ticker.stop()
        flusher.stop()


if __name__ == "__main__":
    main()
