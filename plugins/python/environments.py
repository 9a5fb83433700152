"""A Python package's ``requirements.txt``, resolved at deploy into an environment shared by every
function and version whose requirements resolve to the same lock.

``requirements.txt`` holds requirement lines alone (``name[extras] specifiers ; marker``, ``#``
comments): no pip options (``-r``, ``--index-url``, ``-e``…), no URLs and no paths, so that a
tenant can neither point pip at the gateway's files nor at an index of its own. pip resolves them
in a child process (never on the event loop), wheels only (``--only-binary=:all:``: no package's
build code runs), into a new directory beside the environments, within ``timeout_s``; the index
is the one pip is configured for, ``index`` (``TIERGATE_PYTHON_INDEX``) or an operator's
wheelhouse (``find_links``, ``TIERGATE_PYTHON_FIND_LINKS``, with no index). Its report gives the
*lock*: every distribution installed, as ``name==version --hash=sha256:…``, sorted. The lock and
the interpreter it is for hash to the environment's name, ``<root>/<sha256>``, which is made
read-only and renamed into place whole, once; every later deploy that resolves to the same lock
uses it. A version records its lock (``Environment.record``), so a gateway that lacks the
environment (another instance, a new data dir) rebuilds exactly that one (``--no-deps
--require-hashes``) from the same index.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import signal
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from plugins.errors import CompileError, RuntimeUnavailable

from .archive import MIB, remove_tree

MAX_REQUIREMENTS_BYTES = 64 * 1024
MAX_REQUIREMENTS = 200
PIP_REASON_LINES = 12
PIP_REASON_CHARS = 2000
RESOLVING_AT_ONCE = 4
HIDDEN_FROM_PIP = ("TIERGATE_", "OPENAI_", "AWS_")  # pip needs none of the gateway's secrets
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_SPEC = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
REQUIREMENT = re.compile(
    rf"^{_NAME}"
    rf"(?:\s*\[\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\])?"
    rf"(?:\s*\(?\s*{_SPEC}(?:\s*,\s*{_SPEC})*\s*\)?)?"
    r"(?:\s*;\s*[A-Za-z0-9_.'\"<>=!~ ()-]+)?$"
)
LOCK_LINE = re.compile(rf"^{_NAME}==[A-Za-z0-9.+!_-]+ --hash=sha256:[0-9a-f]{{64}}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """From the runtime's options (``TIERGATE_PYTHON_<OPTION>``): ``index``, ``find_links``,
    ``resolve_timeout_s`` (300) and ``max_env_mb`` (1024)."""

    index: str | None = None
    find_links: str | None = None
    timeout_s: float = 300.0
    max_bytes: int = 1024 * MIB

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ResolverSettings:
        """Raises ``ValueError`` naming the variable of a value that is not a positive number."""
        return cls(
            index=options.get("index") or None,
            find_links=options.get("find_links") or None,
            timeout_s=number_option(options, "resolve_timeout_s", 300.0),
            max_bytes=int(number_option(options, "max_env_mb", 1024)) * MIB,
        )


def number_option(options: Mapping[str, Any], name: str, default: float) -> float:
    """The runtime's option ``name`` (``TIERGATE_PYTHON_<NAME>``), a positive number."""
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = 0.0
    if not value > 0:
        raise ValueError(f"TIERGATE_PYTHON_{name.upper()}: expected a positive number, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Environment:
    """A resolved environment: its name (``sha256``) and the lock it holds."""

    sha256: str
    lock: tuple[str, ...]

    @property
    def record(self) -> dict[str, Any]:
        """What a version records (an artifact's ``environment`` metadata)."""
        return {"sha256": self.sha256, "lock": list(self.lock)}


def parse_requirements(text: bytes) -> list[str]:
    """The requirement lines of a ``requirements.txt``; ``CompileError`` naming the first line
    that is anything else."""
    if len(text) > MAX_REQUIREMENTS_BYTES:
        raise CompileError(f"requirements.txt is larger than {MAX_REQUIREMENTS_BYTES} bytes",
                           entry="requirements.txt")
    try:
        lines = text.decode().replace("\\\n", "").splitlines()
    except UnicodeDecodeError:
        raise CompileError("requirements.txt is not UTF-8 text", entry="requirements.txt") from None
    found = []
    for number, raw in enumerate(lines, 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise _bad_line(number, line, "pip options are not allowed here (the index is the "
                            "operator's setting)")
        if not REQUIREMENT.match(line):
            raise _bad_line(number, line, "not a requirement pip can resolve from an index (a "
                            "name, extras, version specifiers and a marker; no URLs or paths)")
        found.append(line)
    if len(found) > MAX_REQUIREMENTS:
        raise CompileError(f"requirements.txt names more than {MAX_REQUIREMENTS} requirements",
                           entry="requirements.txt")
    return found


def _bad_line(number: int, line: str, why: str) -> CompileError:
    return CompileError(f"requirements.txt line {number}: {line[:200]!r}: {why}",
                        entry="requirements.txt", line=number)


def interpreter() -> str:
    """What an environment's wheels are for: the interpreter and the platform."""
    return f"{sys.implementation.cache_tag} {sysconfig.get_platform()}"


def environment_of(lock: Sequence[str]) -> Environment:
    text = "\n".join([interpreter(), *lock]) + "\n"
    return Environment(hashlib.sha256(text.encode()).hexdigest(), tuple(lock))


def lock_of(report: Any) -> list[str]:
    """The lock from pip's installation report (``--report``, format 1)."""
    lines = []
    for item in report.get("install", []) if isinstance(report, dict) else []:
        metadata = item.get("metadata", {})
        name = re.sub(r"[-_.]+", "-", str(metadata.get("name", ""))).lower()
        version = str(metadata.get("version", ""))
        archive = item.get("download_info", {}).get("archive_info", {})
        sha256 = archive.get("hashes", {}).get("sha256") or ""
        if not sha256 and str(archive.get("hash", "")).startswith("sha256="):
            sha256 = archive["hash"].removeprefix("sha256=")
        line = f"{name}=={version} --hash=sha256:{sha256}"
        if not LOCK_LINE.match(line):
            raise CompileError(f"pip installed {name} {version} without a wheel hash to lock")
        lines.append(line)
    return sorted(lines)


class Environments:
    """The environments under ``root``: resolved at deploy, rebuilt at load where missing."""

    def __init__(self, root: Path, settings: ResolverSettings) -> None:
        self.root = root
        self.settings = settings
        self._at_once = asyncio.Semaphore(RESOLVING_AT_ONCE)
        self._building: dict[str, asyncio.Lock] = {}
        # pip's own configuration (PIP_*, proxies, HOME) comes from the gateway's environment;
        # the gateway's keys and credentials do not go with it.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_FROM_PIP)}

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    async def resolve(self, requirements: Sequence[str]) -> Environment:
        """The environment these requirements resolve to, built unless it exists; raises
        ``CompileError`` with pip's reason when they cannot be resolved."""
        return await self._install(requirements, exact=False)

    async def ensure(self, recorded: Mapping[str, Any]) -> Path:
        """The directory of a version's recorded environment, rebuilt from its lock when this
        gateway does not have it; ``RuntimeUnavailable`` when it cannot be rebuilt here."""
        sha256, lock = recorded.get("sha256"), recorded.get("lock")
        if not (isinstance(sha256, str) and SHA256.match(sha256) and isinstance(lock, list)
                and all(isinstance(line, str) and LOCK_LINE.match(line) for line in lock)):
            raise RuntimeUnavailable("the version's recorded environment is malformed")
        path = self.path(sha256)
        if path.is_dir():
            return path
        async with self._building.setdefault(sha256, asyncio.Lock()):
            if path.is_dir():
                return path
            try:
                built = await self._install(lock, exact=True)
            except CompileError as exc:
                raise RuntimeUnavailable(
                    f"the environment {sha256[:12]} of this version cannot be rebuilt here "
                    f"from its lock: {exc.detail}"
                ) from None
        if built.sha256 != sha256:
            raise RuntimeUnavailable(
                f"the environment {sha256[:12]} of this version was rebuilt as {built.sha256[:12]}"
                " (another interpreter or platform): deploy the function again here"
            )
        return path

    async def _install(self, requirements: Sequence[str], *, exact: bool) -> Environment:
        self.root.mkdir(parents=True, exist_ok=True)
        stem = self.root / f".tmp-{secrets.token_hex(8)}"
        target, report, listed = stem, stem.with_name(stem.name + ".json"), stem.with_name(
            stem.name + ".txt"
        )
        try:
            listed.write_text("\n".join(requirements) + "\n")
            argv = [sys.executable, "-I", "-m", "pip", "install", "--quiet", "--no-input",
                    "--disable-pip-version-check", "--only-binary=:all:", "--no-compile",
                    "--target", str(target), "--report", str(report), "-r", str(listed)]
            if exact:
                argv += ["--no-deps", "--require-hashes"]
            if self.settings.find_links:
                argv += ["--no-index", "--find-links", self.settings.find_links]
            elif self.settings.index:
                argv += ["--index-url", self.settings.index]
            async with self._at_once:
                await self._pip(argv, hide=str(stem))
            environment = environment_of(lock_of(orjson.loads(report.read_bytes())))
            final = self.path(environment.sha256)
            if not final.is_dir():
                await asyncio.to_thread(self._settle, target, final)
            return environment
        finally:
            for path in (report, listed):
                path.unlink(missing_ok=True)
            await asyncio.to_thread(remove_tree, target)

    async def _pip(self, argv: list[str], hide: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
            start_new_session=True,  # so that a timeout ends pip and whatever it started
        )
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                said = await _tail(process.stderr, 16 * 1024)
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise CompileError(
                f"resolving requirements.txt took over {self.settings.timeout_s:g} s "
                "(TIERGATE_PYTHON_RESOLVE_TIMEOUT_S)"
            ) from None
        if process.returncode != 0:
            raise CompileError(f"pip could not install requirements.txt: {_reason(said, hide)}")

    def _settle(self, target: Path, final: Path) -> None:
        size = sum(
            os.lstat(os.path.join(folder, name)).st_size
            for folder, _, files in os.walk(target)
            for name in files
        )
        if size > self.settings.max_bytes:
            raise CompileError(
                f"requirements.txt installs {size / MIB:.0f} MiB, more than "
                f"{self.settings.max_bytes // MIB} MiB (TIERGATE_PYTHON_MAX_ENV_MB)"
            )
        for folder, dirs, files in os.walk(target, topdown=False):
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    executable = os.stat(path).st_mode & 0o111
                    os.chmod(path, 0o555 if executable else 0o444)
            for name in dirs:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o555)
        os.chmod(target, 0o555)
        try:
            os.rename(target, final)
        except OSError:
            if not final.is_dir():
                raise


async def _tail(stream: asyncio.StreamReader | None, limit: int) -> bytes:
    """The last ``limit`` bytes ``stream`` says until EOF (read to its end)."""
    kept = bytearray()
    if stream is None:
        return b""
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > 2 * limit:
            del kept[:-limit]
    return bytes(kept[-limit:])


def _reason(said: bytes, hide: str) -> str:
    """pip's own words, bounded: its ``ERROR:`` lines, else its last lines."""
    lines = [line.strip() for line in said.decode(errors="replace").replace(hide, "<env>")
             .splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = " ".join((errors or lines)[-PIP_REASON_LINES:]) or "pip said nothing"
    return reason[-PIP_REASON_CHARS:]
