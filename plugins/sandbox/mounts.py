"""What a sandbox shows of the host: the system's programs and libraries, the Python environment
tiergate runs in, and tiergate's own packages — each read-only, each checked against the paths it
must never show (the data dir and the stores in it).

Directories are shown whole only when they hold none of those paths. Python's import path is not
shown as it is: an editable install puts the checkout on it, and the checkout may hold the data
dir (``make run`` keeps it in ``./.tiergate``); tiergate's packages are shown one by one instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
)
OWN_PACKAGES = ("plugins", "gateway", "storage", "tiers", "tiergate")


class MountRefused(Exception):
    """A path the sandbox needs holds a private path; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Mount:
    """``source`` on the host, shown read-only at ``target``; a symlink when ``link`` is set."""

    target: str
    source: str = ""
    link: str = ""


def _holds(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def interpreter_dirs() -> list[str]:
    """The interpreter's installation and the virtual environment it runs in."""
    return [sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent)]


def import_path() -> list[str]:
    """The directories on the import path."""
    return [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]


def own_packages() -> list[str]:
    """Where tiergate's top-level packages live (site-packages, or a checkout when editable)."""
    places = []
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            places += list(spec.submodule_search_locations)
        elif spec.origin:
            places.append(spec.origin)
    return places


def outermost(paths: Iterable[str]) -> list[str]:
    """Real paths, with any path inside another one dropped."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.exists(p)}, key=len)
    kept: list[str] = []
    for path in real:
        if not any(_holds(k, path) for k in kept):
            kept.append(path)
    return kept


def plan(private: Sequence[Path], readable: Iterable[str] = ()) -> list[Mount]:
    """Every read-only mount a sandbox gets, parents before children. An entry of the import
    path that holds a private path is left out (tiergate's packages are shown one by one); any
    other needed directory that does refuses the plan."""
    secret = [os.path.realpath(p) for p in private]

    def holder(path: str) -> str | None:
        return next((s for s in secret if _holds(path, s) or _holds(s, path)), None)

    mounts: list[Mount] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append(Mount(path, link=os.readlink(path)))
        elif os.path.isdir(path):
            mounts.append(Mount(path, path))
    optional = {p for p in outermost(import_path()) if holder(p)}
    needed = [m.source for m in mounts if m.source]
    needed += [*interpreter_dirs(), *own_packages(), *readable, *ETC_FILES, *import_path()]
    shown: list[str] = []
    for path in outermost(needed):
        private_path = holder(path)
        if private_path is None:
            shown.append(path)
        elif path not in optional:
            raise MountRefused(
                f"{path} must be visible to functions (it holds the system, Python or "
                f"tiergate), but it holds or lies in the private path {private_path}: move "
                "the data dir (TIERGATE_DATA_DIR) and local stores out of it"
            )
    system = {m.source for m in mounts}
    mounts += [Mount(path, path) for path in shown if path not in system]
    return sorted(mounts, key=lambda m: m.target.count("/"))
