"""Time-ordered identifiers: 12 hex digits of Unix milliseconds + 14 random hex digits, so
execution ids sort by start time and ``?before=<id>`` pagination is a string comparison.

``random.getrandbits`` rather than ``os.urandom``: ids are not secrets (every read is checked
against the caller's tenant), and the ``getrandom`` syscall costs a GIL hand-off on the hot path.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import time

_random = random.Random()


def new_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(56):014x}"


def new_trace_id() -> str:
    return f"{_random.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{_random.getrandbits(64):016x}"


@functools.cache
def process_id() -> str:
    """This process among all gateway processes sharing the stores (host, pid, and a random
    part, since pids repeat across containers and restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{_random.getrandbits(32):08x}"
