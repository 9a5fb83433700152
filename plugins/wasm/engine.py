"""wasmtime engines, their artifact keys, and the epoch ticker.

Two engine variants exist because fuel metering is an engine-wide setting that slows every call
(x2.4 on tight loops): functions without ``limits.fuel`` use the plain engine. Both interrupt on
epochs; a ticker advances them every ``TICK_S``, so a call's deadline is counted in ticks.
"""

from __future__ import annotations

import importlib.metadata
import math
import threading

import wasmtime

TICK_S = 0.01
WASMTIME_VERSION = importlib.metadata.version("wasmtime")


def make_engine(*, fuel: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    return wasmtime.Engine(config)


def engine_key(fuel: int | None) -> str:
    """Artifacts compiled by one variant load only into that variant and that version."""
    return f"wasmtime-{WASMTIME_VERSION}+epoch" + ("+fuel" if fuel is not None else "")


def ticks_until(remaining_s: float) -> int:
    return max(1, math.ceil(remaining_s / TICK_S) + 1)


class Engines:
    """Both variants, created once per process."""

    def __init__(self) -> None:
        self.plain = make_engine(fuel=False)
        self.fuel = make_engine(fuel=True)

    def for_fuel(self, fuel: int | None) -> wasmtime.Engine:
        return self.plain if fuel is None else self.fuel


class Ticker:
    """Advances the engines' epochs from a daemon thread (only where wasm actually runs)."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self._engines.plain.increment_epoch()
            self._engines.fuel.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
