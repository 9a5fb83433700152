"""Code archives: a Python function deployed as a zip or a tar (plain, gzip, bzip2 or xz), told
apart from a single source file by its first bytes, unpacked under limits into a read-only tree.

Nothing in an archive is trusted. Every entry must be a plain file or a directory at a relative
path inside the tree (no ``..``, no absolute path, no backslash), with no links, devices or
pipes, at most ``max_files`` entries and ``max_bytes`` unpacked in all (the sizes an archive
declares are checked before anything is written, the bytes written are counted as well). Each
refusal is a ``CompileError`` naming the entry (its ``entry`` extension). A tree is unpacked
beside its final place, made read-only (files 0444, directories 0555) and renamed into place
whole, so no worker ever sees half of one; trees are named by the archive's SHA-256.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from plugins.errors import CompileError

MIB = 1024 * 1024
DEFAULT_ENTRY = "handler.py"
IGNORED_TOP = ("__MACOSX",)  # what macOS's Finder adds to the zips it makes


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """At most ``max_files`` entries (files and directories) and ``max_bytes`` unpacked."""

    max_files: int = 1000
    max_bytes: int = 64 * MIB


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # as the archive spells it
    path: str  # relative, normalised
    size: int
    is_dir: bool
    open: Callable[[], IO[bytes]]


def archive_kind(data: bytes) -> Literal["zip", "tar"] | None:
    """``zip`` or ``tar`` when ``data`` is one (by its first bytes), else ``None``: source text."""
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00")) or data[257:262] == b"ustar":
        return "tar"
    if data.startswith(b"BZh") and data[4:10] == b"1AY&SY":
        return "tar"
    return None


def refuse(entry: str, problem: str) -> CompileError:
    return CompileError(f"the code archive's entry {entry!r} {problem}", entry=entry)


def relative_path(name: str) -> str:
    """The entry's path inside the tree ('' for the tree itself), or a refusal naming it."""
    if "\\" in name or "\0" in name:
        raise refuse(name, "has a backslash or NUL in its name: use '/' between directories")
    if name.startswith("/"):
        raise refuse(name, "is an absolute path: entries must be relative to the archive's root")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise refuse(name, "has a '..' component: entries must stay inside the archive's tree")
    return "/".join(parts)


def unpack(data: bytes, tree: Path, limits: ArchiveLimits) -> Path:
    """The archive's tree at ``tree``, unpacked unless it is there already (blocking: run it in
    a thread). Raises ``CompileError`` naming the first entry refused; nothing is left behind."""
    if tree.is_dir():
        return tree
    staged = unpack_beside(data, tree, limits)
    return settle(staged, tree)


def unpack_beside(data: bytes, tree: Path, limits: ArchiveLimits) -> Path:
    """The archive unpacked, read-only, in a new directory beside ``tree`` (for ``settle`` or
    ``remove_tree``)."""
    tree.parent.mkdir(parents=True, exist_ok=True)
    staged = tree.parent / f".tmp-{secrets.token_hex(8)}"
    staged.mkdir(mode=0o755)
    try:
        _write(data, staged, limits)
        _make_read_only(staged)
    except BaseException:
        remove_tree(staged)
        raise
    return staged


def settle(staged: Path, tree: Path) -> Path:
    """Rename ``staged`` to ``tree``; when another process got there first, keep theirs."""
    try:
        os.rename(staged, tree)
    except OSError:
        if not tree.is_dir():
            remove_tree(staged)
            raise
        remove_tree(staged)
    return tree


def remove_tree(path: Path) -> None:
    """Remove a tree made read-only here (its directories are made writable again first)."""
    if not path.exists():
        return
    for folder, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def _write(data: bytes, root: Path, limits: ArchiveLimits) -> None:
    count = total = 0
    for entry in _entries(data, limits):
        count += 1
        if count > limits.max_files:
            raise refuse(entry.name, f"is one too many: an archive holds at most "
                         f"{limits.max_files} entries (files and directories)")
        total += entry.size
        if total > limits.max_bytes:
            raise refuse(entry.name, f"takes the archive past {limits.max_bytes // MIB} MiB "
                         "unpacked, the most it may hold")
        if not entry.path:
            continue
        target = root / entry.path
        try:
            if entry.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with entry.open() as source, open(target, "xb") as sink:
                total = _copy(entry, source, sink, total - entry.size, limits)
        except FileExistsError:
            raise refuse(entry.name, "appears twice in the archive (or a file and a directory "
                         "share its name)") from None
        except (NotADirectoryError, IsADirectoryError):
            raise refuse(entry.name, "lies under a name that is a file in the archive") from None


def _copy(entry: _Entry, source: IO[bytes], sink: IO[bytes], before: int,
          limits: ArchiveLimits) -> int:
    written = 0
    while chunk := source.read(MIB):
        written += len(chunk)
        if written > entry.size or before + written > limits.max_bytes:
            raise refuse(entry.name, "unpacks to more bytes than the archive says it holds")
        sink.write(chunk)
    return before + written


def _entries(data: bytes, limits: ArchiveLimits) -> Iterator[_Entry]:
    kind = archive_kind(data)
    try:
        if kind == "zip":
            yield from _zip_entries(data, limits)
        else:
            yield from _tar_entries(data)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, NotImplementedError,
            RuntimeError, ValueError) as exc:
        raise CompileError(f"the code archive cannot be read ({kind}): {exc}") from None


def _zip_entries(data: bytes, limits: ArchiveLimits) -> Iterator[_Entry]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > limits.max_files:
            name = infos[limits.max_files].filename
            raise refuse(name, f"is one too many: an archive holds at most {limits.max_files} "
                         "entries (files and directories)")
        declared = 0
        for info in infos:  # what the archive says it holds, before a byte is written
            declared += info.file_size
            if declared > limits.max_bytes:
                raise refuse(info.filename, f"takes the archive past {limits.max_bytes // MIB} "
                             "MiB unpacked, the most it may hold")
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise refuse(info.filename, "is a symbolic link: archives may hold only files "
                             "and directories")
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise refuse(info.filename, "is a special file (a device or a pipe): archives "
                             "may hold only files and directories")
            if info.flag_bits & 0x1:
                raise refuse(info.filename, "is encrypted")
            path = relative_path(info.filename)
            yield _Entry(info.filename, path, info.file_size, info.is_dir(),
                         functools.partial(archive.open, info))


def _tar_entries(data: bytes) -> Iterator[_Entry]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:  # one header at a time: a refusal stops before reading further
            if member.issym() or member.islnk():
                raise refuse(member.name, f"is a link (to {member.linkname!r}): archives may "
                             "hold only files and directories")
            if not (member.isfile() or member.isdir()):
                raise refuse(member.name, "is a special file (a device or a pipe): archives "
                             "may hold only files and directories")
            path = relative_path(member.name)
            size = member.size if member.isfile() else 0
            yield _Entry(member.name, path, size, member.isdir(),
                         functools.partial(_extracted, archive, member))


def _extracted(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    extracted = archive.extractfile(member)
    if extracted is None:
        raise refuse(member.name, "cannot be read")
    return extracted


def _make_read_only(root: Path) -> None:
    """Files 0444, directories 0555 (the root last): readable by the sandbox's user, writable
    by no one."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o555)
    os.chmod(root, 0o555)


def find_entry(tree: Path, entry: str | None) -> tuple[str, str]:
    """``(root, entry)``: the directory code is imported from — the tree itself (``''``), or
    its one top-level directory when everything lies in it and the entry is there — and the
    entry file relative to it (``handler.py`` unless the manifest's ``entry`` names another)."""
    wanted = entry or DEFAULT_ENTRY
    if (tree / wanted).is_file():
        return "", wanted
    top = [p for p in tree.iterdir() if p.name not in IGNORED_TOP]
    if len(top) == 1 and top[0].is_dir() and (top[0] / wanted).is_file():
        return top[0].name, wanted
    where = "the manifest's entry" if entry else "the default entry (or set the manifest's entry)"
    raise CompileError(
        f"the code archive has no {wanted} at its root or in its one top-level directory "
        f"({where})",
        entry=wanted,
    )


def module_of(entry: str) -> str:
    """``app/main.py`` → ``app.main``: how the worker imports the entry."""
    return entry.removesuffix(".py").replace("/", ".")
