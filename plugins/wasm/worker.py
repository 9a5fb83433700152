"""A wasm worker process: ``python -m plugins.wasm.worker READ_FD WRITE_FD``.

It runs at the niceness of every process that runs a tenant's code (the compiler's, the
sandbox's): a tenant's wasm spinning in a worker never outranks another tenant's Python worker or
the gateway itself. It ignores ``SIGXFSZ``: WASI output is cut off by ``RLIMIT_FSIZE``
(``wasi_abi``), and a write past it must fail with ``EFBIG`` instead of killing the worker and
every call it holds. It answers ``tiergate.invoke`` by asking the gateway over its pipe
(``calls_abi``).
"""

from __future__ import annotations

import os
import signal

from plugins.workers.child import ask, serve

from . import calls_abi
from .compiler import NICENESS
from .engine import Ticker
from .executor import Executor


def main() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    calls_abi.enable(ask)
    executor = Executor()
    ticker = Ticker(executor.engines)
    try:
        serve(executor.handle)
    finally:
        ticker.stop()


if __name__ == "__main__":
    main()
