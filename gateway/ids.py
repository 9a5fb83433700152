"""Time-ordered identifiers: 12 hex digits of Unix milliseconds + 14 random hex digits, so
execution ids sort by start time and ``?before=<id>`` pagination is a string comparison. Within
one process they strictly increase: ids made in the same millisecond count up from the first
one's random part (as ULIDs do), so a page never swaps two calls that started together.

``random.getrandbits`` rather than ``os.urandom``: ids are not secrets (every read is checked
against the caller's tenant), and the ``getrandom`` syscall costs a GIL hand-off on the hot path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import socket
import time

_random = random.Random()


_last = [0, 0]  # the last id's milliseconds and random part


def new_id() -> str:
    now = time.time_ns() // 1_000_000
    if now > _last[0]:
        _last[0], _last[1] = now, _random.getrandbits(55)  # room to count up within the ms
    else:
        _last[1] += 1
    return f"{_last[0]:012x}{_last[1]:014x}"


def new_trace_id() -> str:
    return f"{_random.getrandbits(128):032x}"


def new_span_id() -> str:
    return f"{_random.getrandbits(64):016x}"


@functools.cache
def process_id() -> str:
    """This process among all gateway processes sharing the stores (host, pid, and a random
    part, since pids repeat across containers and restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{_random.getrandbits(32):08x}"


@functools.cache
def process_tag() -> str:
    """``process_id`` as clients may see it (a stream's ``X-Tiergate-Process``): it tells two
    processes apart without naming a host or a pid."""
    return hashlib.sha256(process_id().encode()).hexdigest()[:12]
