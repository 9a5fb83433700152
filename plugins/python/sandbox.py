"""What a Python worker does to itself before it runs any user code.

The worker starts with a clean environment (the parent passes only the function's ``env``) in an
empty private working directory. Here it then:

* caps its address space (``RLIMIT_AS``) at what it uses now plus ``limits.memory_mb``, so user
  code gets exactly that much room and an allocation past it fails (``MemoryError``) or the
  kernel stops the process — either way only this worker;
* forbids core dumps and new processes beyond a handful (fork bombs);
* moves into a new, empty network namespace when it is not in one already (bubblewrap gives it
  one) and may (root, or ``CAP_SYS_ADMIN``): no interface but a loopback that is down, so no
  connection succeeds. Otherwise it keeps the host's network, and the ready frame says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource

CLONE_NEWNET = 0x40000000
MAX_PROCESSES = 64


def address_space_now() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def limit_memory(memory_mb: int) -> None:
    limit = address_space_now() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def limit_process() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    cap = MAX_PROCESSES if hard == resource.RLIM_INFINITY else min(MAX_PROCESSES, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))


def isolate_network() -> bool:
    """True when the worker is now in a network namespace of its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(CLONE_NEWNET) == 0


def enter(memory_mb: int) -> bool:
    """Apply every limit; returns whether the network is isolated (already, by bubblewrap, or
    now, by a namespace of our own)."""
    isolated = not _has_network() or isolate_network()
    limit_process()
    limit_memory(memory_mb)
    return isolated


def _has_network() -> bool:
    """Any interface up but loopback? (Inside bubblewrap there is none.)"""
    try:
        with open("/proc/net/dev") as dev:
            names = [line.split(":")[0].strip() for line in dev.readlines()[2:]]
    except OSError:
        return True
    return any(name != "lo" for name in names)
