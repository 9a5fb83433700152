"""What a Python worker does to itself before it runs any user code, inside its sandbox.

The sandbox (``plugins.sandbox``) gives it namespaces, a read-only file system, no network, an
unprivileged uid, a process cap and a seccomp filter. What is left is memory: the address space
(``RLIMIT_AS``) is capped at what the interpreter uses now plus ``memory_mb - tmp_mb``, because the
scratch tmpfs (``tmp_mb``) is memory too. An allocation past the cap fails with ``MemoryError``, or
the kernel stops the process; either way only this worker.
"""

from __future__ import annotations

import os
import resource

MIB = 1024 * 1024


def address_space_now() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def enter(memory_mb: int, tmp_mb: int) -> None:
    limit = address_space_now() + max(1, memory_mb - tmp_mb) * MIB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
