"""How a Python worker is started: inside bubblewrap when it works here, else directly.

With bubblewrap (Debian's ``bubblewrap`` package) a worker gets new user, PID, network, IPC and
UTS namespaces; a filesystem that shows only the system libraries, the Python installation and
this package read-only, its own empty working directory read-write, a private ``/tmp``, ``/dev``
and ``/proc`` (so the gateway's processes and their environments are invisible); no network; and
it runs as ``nobody`` inside its namespace. Without bubblewrap, the worker still gets a clean
environment, a private working directory, memory and process limits, and — when the gateway runs
as root — a network namespace of its own (``sandbox``); it shares the gateway's filesystem and
account then, which ``tiergate runtimes`` and the docs say plainly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
ETC_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ssl",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
)
NOBODY = "65534"


def python_paths() -> list[str]:
    """What the interpreter needs to start and import: its installation and ``sys.path``."""
    needed = {sys.base_prefix, sys.prefix, str(Path(__file__).resolve().parents[2])}
    needed |= {p for p in sys.path if p and Path(p).exists()}
    ordered = sorted(needed, key=len)
    kept: list[str] = []
    for path in ordered:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


class Jail:
    def __init__(self, wanted: bool = True) -> None:
        self.bwrap = shutil.which("bwrap")
        self.enabled = wanted and bool(self.bwrap) and self._works()

    def _works(self) -> bool:
        try:
            probe = subprocess.run(
                [*self._prefix("/"), "--", sys.executable, "-c", "pass"],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return probe.returncode == 0

    def _prefix(self, workdir: str) -> list[str]:
        argv = [
            str(self.bwrap),
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--uid",
            NOBODY,
            "--gid",
            NOBODY,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]
        for path in (*SYSTEM_PATHS, *ETC_FILES, *python_paths()):
            argv += ["--ro-bind-try", path, path]
        argv += ["--bind", workdir, workdir, "--chdir", workdir]
        return argv

    def wrap(self, argv: Sequence[str], workdir: str, readable: Sequence[str] = ()) -> list[str]:
        """``argv`` as it should be started for a worker whose private directory is ``workdir``;
        ``readable`` files (the function's code) are made visible read-only."""
        if not self.enabled:
            return list(argv)
        prefix = self._prefix(workdir)
        for path in readable:
            prefix += ["--ro-bind", path, path]
        return [*prefix, "--", *argv]

    def describe(self) -> str:
        if self.enabled:
            return "bubblewrap: own filesystem view, PID/network/user namespaces, runs as nobody"
        return "no bubblewrap: clean env, private cwd, limits; network namespace only as root"
