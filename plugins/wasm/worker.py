"""A wasm worker process: ``python -m plugins.wasm.worker READ_FD WRITE_FD``."""

from __future__ import annotations

from plugins.workers.child import serve

from .engine import Ticker
from .executor import Executor


def main() -> None:
    executor = Executor()
    ticker = Ticker(executor.engines)
    try:
        serve(executor.handle)
    finally:
        ticker.stop()


if __name__ == "__main__":
    main()
