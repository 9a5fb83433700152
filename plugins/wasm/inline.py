"""Short calls of core-ABI modules, run in the gateway's own process instead of a worker's.

A round trip to a wasm worker costs the event loop more than the call itself (a frame each way,
a pipe write, a wake-up: 70-75 µs of loop CPU and ~100 µs in the worker, against ~10-30 µs for a
fresh instance through the C API here). So a function whose calls are measured quick runs on the
loop, with the same executor the workers use (a fresh store and instance per call, the same log,
output, memory and table bounds), under an epoch budget of ``BUDGET_S``: a call still running
then is interrupted — a wasm call has no effect outside its instance, so stopping it loses
nothing — and run again, from the start, in a worker with the time it has left, and the function
is not run here again until ``DEMOTED_S`` have passed — unless the call used less than half its
budget of CPU (the loop was preempted on a busy machine, the function is not slow).

What counts as quick is learnt from the workers' own timings (CPU time: a core-ABI call cannot
wait on anything): ``SAMPLES`` calls in a row each under ``QUICK_S``. WASI modules stay in the
workers (their stdout and stderr are files cut off by a per-process file-size limit, which the
gateway's own files must not share), and so do modules metered with fuel.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .engine import Ticker
from .executor import Executor, WarmSlot

TICK_S = 0.002
POOLED_INSTANCES = 16
BUDGET_S = 0.004
QUICK_S = 0.001
SAMPLES = 3
DEMOTED_S = 60.0


@dataclass
class Speed:
    """What is known of one loaded module's calls (kept with it, so a redeploy starts afresh):
    quick once its last ``SAMPLES`` calls in a worker each took less than ``QUICK_S``."""

    recent: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    demoted_until: float = 0.0

    def measured(self, seconds: float) -> None:
        self.recent.append(seconds)

    @property
    def quick(self) -> bool:
        return (
            len(self.recent) == SAMPLES
            and max(self.recent) < QUICK_S
            and time.monotonic() >= self.demoted_until
        )

    def overran(self, cpu_s: float) -> None:
        """An inline call ran out of its budget having used ``cpu_s`` of CPU: slow (demoted for
        ``DEMOTED_S``) if it used at least half the budget; otherwise the process was only made to
        wait (the epoch budget is wall-clock time, and a busy machine preempts the loop), and
        the function stays quick."""
        if cpu_s >= BUDGET_S / 2:
            self.demoted_until = time.monotonic() + DEMOTED_S


class Inline:
    """The gateway process's own executor, engines and (shorter) epoch ticker."""

    def __init__(self) -> None:
        self._executor = Executor(tick_s=TICK_S, pooled=POOLED_INSTANCES)
        self._ticker = Ticker(self._executor.engines, TICK_S)

    def run(
        self, meta: list[Any], data: bytes, warm: WarmSlot | None = None
    ) -> tuple[list[Any], bytes]:
        """One call on the loop, at most ``BUDGET_S`` of it (``meta`` as a worker's frame), on a
        fresh instance, or on ``warm``'s."""
        if warm is not None:
            return self._executor.handle_warm(meta, data, warm)
        return self._executor.handle(meta, data)

    def drop(self, key: str) -> None:
        self._executor.drop(key)

    def close(self) -> None:
        self._ticker.stop()
