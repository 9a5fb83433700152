"""The first program inside every sandbox: ``python -I -S launch.py [--map-uid U] --processes N
--seccomp-fd FD -- COMMAND...``. It takes the last privileges bubblewrap leaves, then ``exec``s the
runtime's worker. Standard library only, run as a file: it must not import the gateway.

* ``--map-uid U`` (the gateway runs as root, so bubblewrap ran privileged and the sandbox's user
  would be host root): fork; the child enters a new user namespace in which the parent maps the
  sandbox's uid ``SANDBOX_UID`` to the unprivileged host uid ``U``; the child becomes that uid. Its
  processes then count towards ``RLIMIT_NPROC`` of that namespace only, and it holds no capability
  anywhere. The parent (root, holding only CAP_SETUID and CAP_SETGID, not dumpable) waits and
  passes the exit status on.
* Without it (the gateway is not root), bubblewrap already made the user namespace.

Then, in the process that will run code: a lower CPU priority than the gateway's (``NICE``: on a
busy machine the gateway still answers), ``RLIMIT_NPROC`` (a fork bomb stops at ``N`` processes
and threads), no core dumps, ``no_new_privs``, and the seccomp filter read from ``FD`` (built by
``plugins.sandbox.seccomp``): no namespaces, mounts, ptrace, kernel keyrings or module loading.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys

SANDBOX_UID = 1000
NICE = 10
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
SECCOMP_MODE_FILTER = 2
LAST_CAPABILITY = 63

_libc = ctypes.CDLL(None, use_errno=True)


class _Fprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _fail(message: str) -> None:
    os.write(2, f"tiergate sandbox: {message}\n".encode())
    os._exit(126)


def _call(result: int, what: str) -> None:
    if result != 0:
        _fail(f"{what} failed: {os.strerror(ctypes.get_errno())}")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _own_user_namespace(host_uid: int) -> None:
    """Fork; the child returns inside a user namespace as ``SANDBOX_UID`` (= ``host_uid``
    outside); the parent maps it, waits for it and exits with its status."""
    ready_r, ready_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_r)
        os.close(mapped_w)
        _call(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
        os.write(ready_w, b"1")
        if os.read(mapped_r, 1) != b"1":
            _fail("the user namespace was not mapped")
        for capability in range(LAST_CAPABILITY + 1):  # no capability can ever come back
            _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
        os.setgroups([])
        os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        return
    os.close(ready_w)
    os.close(mapped_r)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if os.read(ready_r, 1) == b"1":
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{child}/{name}", "w") as mapping:
                mapping.write(f"{SANDBOX_UID} {host_uid} 1\n")
        os.write(mapped_w, b"1")
    os.close(mapped_w)
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) % 256)


def _seccomp(program: bytes) -> None:
    if not program or len(program) % 8:
        _fail("the seccomp filter is missing or malformed")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _Fprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _call(
        _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
        "installing the seccomp filter",
    )


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options = dict(zip(argv[:split:2], argv[1:split:2], strict=True))
    command = argv[split + 1 :]
    program = _read_all(int(options["--seccomp-fd"]))
    if "--map-uid" in options:
        _own_user_namespace(int(options["--map-uid"]))
    processes = int(options["--processes"])
    os.setpriority(os.PRIO_PROCESS, 0, NICE)
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _call(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _seccomp(program)
    try:
        os.execv(command[0], command)
    except OSError as exc:
        _fail(f"cannot start {command[0]}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
