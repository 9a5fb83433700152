"""The seccomp filter every sandboxed process runs under, built with libseccomp (``pyseccomp``).

It refuses what a function never needs and what escapes start from: new namespaces (``unshare``,
``setns``, ``clone`` with a namespace flag; ``clone3`` answers ``ENOSYS`` so libc falls back to
``clone``, whose flags a filter can read), mounts and ``pivot_root``, ``ptrace`` and reading other
processes' memory, kernel keyrings, BPF, perf events, ``userfaultfd``, ``io_uring``, module and
kernel loading, clocks, swap and reboot. Everything else is allowed: the namespaces, the read-only
file system and the unprivileged uid do the rest. Other architectures' system-call ABIs (x32,
i386 on x86_64) are refused by libseccomp's architecture check.
"""

from __future__ import annotations

import errno
import os

DENIED = (
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "fanotify_init",
    "acct",
    "quotactl",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "vhangup",
    "ioperm",
    "iopl",
    "uselib",
    "personality",
)
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def build_filter() -> bytes:
    """The compiled BPF program (raises ``OSError`` when libseccomp is not installed)."""
    import pyseccomp as seccomp

    refuse = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(refuse, name)
        except OSError:  # not a system call on this architecture
            continue
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    read, write = os.pipe()
    try:
        with os.fdopen(write, "wb") as sink:
            rules.export_bpf(sink)
        chunks = []
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
    finally:
        os.close(read)
    return b"".join(chunks)
