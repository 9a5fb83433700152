"""Files written whole or not at all: a reader (another process, a worker about to import the
file) never sees half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o600) -> None:
    """Temp file in the same directory, then rename; ``durable`` also syncs file and directory,
    so the write survives a crash of the machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_once(path: Path, data: bytes, *, mode: int = 0o600) -> Path:
    """A content-addressed file (its name says what it holds): written unless present, safely
    when several processes load the same code at once (``serve --workers``). ``mode`` 0o644 for
    a file a sandbox must read (its directories keep others out)."""
    if not path.exists():
        write_atomically(path, data, durable=False, mode=mode)
    return path
