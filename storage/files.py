"""Files written whole or not at all: a reader (another process, a worker about to import the
file) never sees half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Temp file in the same directory, then rename; ``durable`` also syncs file and directory,
    so the write survives a crash of the machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
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


def write_once(path: Path, data: bytes) -> Path:
    """A content-addressed file (its name says what it holds): written unless present, safely
    when several processes load the same code at once (``serve --workers``)."""
    if not path.exists():
        write_atomically(path, data, durable=False)
    return path
