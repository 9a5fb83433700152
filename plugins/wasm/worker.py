"""A wasm worker process: ``python -m plugins.wasm.worker READ_FD WRITE_FD``.

It ignores ``SIGXFSZ``: WASI output is cut off by ``RLIMIT_FSIZE`` (``wasi_abi``), and a write past
it must fail with ``EFBIG`` instead of killing the worker and every call it holds.
"""

from __future__ import annotations

import signal

from plugins.workers.child import serve

from .engine import Ticker
from .executor import Executor


def main() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    executor = Executor()
    ticker = Ticker(executor.engines)
    try:
        serve(executor.handle)
    finally:
        ticker.stop()


if __name__ == "__main__":
    main()
