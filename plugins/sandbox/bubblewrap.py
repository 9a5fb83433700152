"""The sandbox every runtime starts function code in: bubblewrap, a launcher, a seccomp filter.

A sandboxed process gets new PID, network, IPC, UTS and cgroup namespaces and a user namespace
of its own; a read-only root holding only the system, the Python environment and tiergate's
packages (``mounts``), the function's own files, a private ``/proc`` and a minimal ``/dev``;
``/tmp`` (holding its working directory and home, ``/tmp/work``) as the only writable place, a
tmpfs of ``limits.tmp_mb``; no network but its own loopback; no capabilities, ``no_new_privs``
and the ``seccomp`` filter; a process and thread cap (``RLIMIT_NPROC`` inside its own user
namespace, which binds even when the gateway runs as root); and an unprivileged uid: the
gateway's own when it is not root (bubblewrap maps it), else ``TIERGATE_SANDBOX_UID`` (65534,
nobody), mapped by ``launch``. A function with ``network`` gets one way out, its worker's egress
proxy (``egress``, ``proxy``): ``command(..., egress=...)`` shows the proxy's socket inside.

Whether this works is found out once, at start, by starting a real sandbox (``probe``). When it
does not, ``problem`` says why and runtimes refuse to run code. ``mode="none"`` runs code with no
isolation at all; it exists for operators who run only their own code, and says so loudly.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from plugins.errors import RuntimeUnavailable

from . import launch
from .egress import EGRESS_SOCKET, AllowList
from .mounts import Mount, MountRefused, plan
from .proxy import DEFAULT_MAX_BYTES, EgressProxy
from .seccomp import build_filter

log = logging.getLogger("tiergate.sandbox")

Mode = Literal["bubblewrap", "none"]
SCRATCH = "/tmp"
WORKDIR = "/tmp/work"  # empty, even where a needed directory is mounted under /tmp
PROBE_TIMEOUT_S = 20.0
UNSAFE_WARNING = (
    "TIERGATE_SANDBOX=none: function code runs WITHOUT isolation, with the gateway's user, "
    "files and network. Use it only for code you trust as much as the gateway itself."
)
EGRESS_PRIVATE_WARNING = (
    "TIERGATE_EGRESS_ALLOW_PRIVATE=true: functions whose network.allow names them may reach "
    "loopback, private, link-local and metadata addresses, this gateway's own ports and its "
    "stores among them."
)


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How sandboxes are made here. ``private``: paths no sandbox may show (the data dir, local
    stores); ``processes``: processes and threads per sandbox; ``uid``: the host uid sandboxes
    run as when the gateway is root; ``egress_allow_private``: whether functions' egress may
    reach loopback, private, link-local and metadata addresses (when their list names them);
    ``egress_max_bytes``: what one call's connections may move, both ways together."""

    mode: Mode = "bubblewrap"
    bwrap: str | None = None
    private: tuple[Path, ...] = ()
    processes: int = 64
    uid: int = 65534
    egress_allow_private: bool = False
    egress_max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True, slots=True)
class SandboxedCommand:
    """What to start: pass ``argv``, ``env``, ``cwd`` (on the host) and ``pass_fds`` to the
    process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    pass_fds: tuple[int, ...] = ()


@dataclass
class Sandbox:
    settings: SandboxSettings = field(default_factory=SandboxSettings)
    problem: str | None = "not probed yet"
    _mounts: list[Mount] = field(default_factory=list)
    _filter: bytes = b""
    _sockets: Path | None = None

    @property
    def isolated(self) -> bool:
        return self.settings.mode == "bubblewrap"

    @property
    def available(self) -> bool:
        return self.problem is None

    def require(self) -> None:
        """Raise ``RuntimeUnavailable`` with the reason when code cannot run here."""
        if self.problem is not None:
            raise RuntimeUnavailable(self.problem)

    def describe(self) -> str:
        if not self.isolated:
            return "none: NO isolation (TIERGATE_SANDBOX=none)"
        if self.problem is not None:
            return f"unavailable: {self.problem}"
        who = "the gateway's uid" if os.geteuid() else f"uid {self.settings.uid}"
        return (
            f"bubblewrap: own namespaces, read-only system, private /tmp, no network, seccomp, "
            f"at most {self.settings.processes} processes, as {who}"
        )

    def probe(self) -> None:
        """Start one real sandbox; blocking (run it in a thread). Sets ``problem``."""
        if not self.isolated:
            self.problem = None
            return
        try:
            self._mounts = plan(self.settings.private)
            self._filter = build_filter()
        except MountRefused as exc:
            self.problem = str(exc)
            return
        except (ImportError, OSError) as exc:
            self.problem = f"cannot build the seccomp filter ({exc}): install libseccomp2"
            return
        self.problem = self._try()

    def report(self) -> None:
        """Say at start what isolates functions here: loudly when nothing does."""
        if not self.isolated:
            log.warning(UNSAFE_WARNING)
        elif self.problem is not None:
            log.error("function code cannot be sandboxed here, so none will run: %s", self.problem)
        else:
            log.info("function sandbox: %s", self.describe())
        if self.isolated and self.settings.egress_allow_private:
            log.warning(EGRESS_PRIVATE_WARNING)

    def _try(self) -> str | None:
        bwrap = self.settings.bwrap or shutil.which("bwrap")
        if not bwrap or not os.path.exists(bwrap):
            return (
                "bubblewrap (bwrap) is not installed: apt-get install bubblewrap "
                "(or set TIERGATE_SANDBOX=none to run code without isolation)"
            )
        check = [sys.executable, "-I", "-S", "-c", "pass"]
        try:
            with self.command(check, tmp_mb=1) as command:
                done = subprocess.run(
                    command.argv,
                    env=command.env,
                    cwd=command.cwd,
                    pass_fds=command.pass_fds,
                    capture_output=True,
                    timeout=PROBE_TIMEOUT_S,
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap does not start: {exc}"
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["nothing"]
            return (
                f"bubblewrap cannot create a sandbox here ({said[0]}); it needs user "
                "namespaces (see docs/isolation.md for the container settings)"
            )
        return None

    def egress(self, allow: Sequence[str]) -> EgressProxy | None:
        """A proxy (not started yet) for one sandboxed process whose code may reach ``allow``
        (``network.allow``; ``ValueError`` for a bad entry). None without a sandbox: such code
        has the host's network, and no list can hold it."""
        if not self.isolated:
            return None
        if self._sockets is None:  # short: a Unix socket's path has at most 107 bytes
            self._sockets = Path(tempfile.mkdtemp(prefix="tiergate-egress-"))
            atexit.register(shutil.rmtree, self._sockets, True)
        return EgressProxy(
            self._sockets / f"{secrets.token_hex(8)}.sock",
            AllowList.parse(allow),
            allow_private=self.settings.egress_allow_private,
            max_bytes=self.settings.egress_max_bytes,
        )

    @contextlib.contextmanager
    def command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        tmp_mb: int,
        files: Mapping[str, Path] | None = None,
        egress: EgressProxy | None = None,
    ) -> Iterator[SandboxedCommand]:
        """``argv`` wrapped in a sandbox, for as long as the block runs (start the process in
        it). ``files``: host files shown read-only at the given paths inside (the code); ``argv``
        names them by those paths. ``egress``: a started proxy (``egress()``), whose socket the
        sandbox shows at ``EGRESS_SOCKET``; without one the process has no network at all."""
        env = {**_base_env(), **(env or {})}
        if egress is not None and self.isolated:
            files = {**(files or {}), EGRESS_SOCKET: egress.path}
        if not self.isolated:  # nothing is mounted: name the files where they are
            shown = {inside: str(host) for inside, host in (files or {}).items()}
            plain = [shown.get(arg, arg) for arg in argv]
            yield SandboxedCommand(plain, {**env, "HOME": tempfile.gettempdir()}, "/")
            return
        read, write = os.pipe()
        try:
            os.write(write, self._filter)
            os.close(write)
            launcher = [sys.executable, "-I", "-S", launch.__file__]
            if os.geteuid() == 0:
                launcher += ["--map-uid", str(self.settings.uid)]
            launcher += ["--processes", str(self.settings.processes), "--seccomp-fd", str(read)]
            wrapped = [*self._bwrap(tmp_mb, files or {}), "--", *launcher, "--", *argv]
            yield SandboxedCommand(wrapped, env, "/", (read,))  # bubblewrap enters WORKDIR
        finally:
            os.close(read)

    def _bwrap(self, tmp_mb: int, files: Mapping[str, Path]) -> list[str]:
        argv = [self.settings.bwrap or shutil.which("bwrap") or "bwrap"]
        argv += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent"]
        argv += ["--new-session", "--cap-drop", "ALL"]
        if os.geteuid() == 0:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv += ["--unshare-user", "--disable-userns"]
            argv += ["--uid", str(launch.SANDBOX_UID), "--gid", str(launch.SANDBOX_UID)]
        # The scratch tmpfs first: a needed directory may live under /tmp and is mounted on it.
        argv += ["--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", SCRATCH]
        made: set[str] = {"/", SCRATCH}
        bound: list[str] = []
        for mount in [*self._mounts, *(Mount(t, str(s)) for t, s in files.items())]:
            argv += _parents(mount.target, made, bound)
            if mount.link:
                argv += ["--symlink", mount.link, mount.target]
            else:
                argv += ["--ro-bind", mount.source, mount.target]
                bound.append(mount.target)
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--perms", "1777", "--dir", WORKDIR]
        argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", WORKDIR]
        return argv


def _parents(target: str, made: set[str], bound: Sequence[str]) -> list[str]:
    """Directories above ``target`` that do not exist yet in the sandbox, made world-readable
    (bubblewrap would make them 0700, which an unprivileged sandbox user could not pass)."""
    argv: list[str] = []
    for parent in reversed(Path(target).parents):
        name = str(parent)
        if name in made or any(name.startswith(b.rstrip("/") + "/") for b in bound):
            continue
        argv += ["--perms", "0755", "--dir", name]
        made.add(name)
    return argv


def _base_env() -> dict[str, str]:
    """Nothing of the gateway's environment: a fixed minimum that runtimes add to."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORKDIR,
        "TMPDIR": SCRATCH,
        "LANG": "C.UTF-8",
    }
