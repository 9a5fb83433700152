"""``tiergate serve --deploy DIR``: deploy every function file under DIR at startup.

Each code file (suffix known to an installed runtime) becomes a function named after the file
(``hello.wat`` → ``hello``; ``c/echo.wasm`` → ``c-echo``). A directory holding ``handler.py`` is
a Python package (more modules, a ``requirements.txt``), deployed whole as one function named
after the directory, zipped as ``tiergate deploy DIR`` zips it (the same bytes for the same
files); nothing inside it is deployed on its own. A ``NAME.json`` beside a file or a directory
adds manifest fields; a ``NAME.json`` with no code beside it is deployed as a manifest of its
own. A function whose code and manifest equal the latest version is left alone, so restarts do
not pile up versions; so is a function whose latest version someone deployed by hand (a warning
says so): a restart never takes a function over from its user.

A preload is a deploy like any other (``FunctionService.deploy``): other processes sharing the
stores hear of it, and the audit trail names its principal, ``preload``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import REPORTED, NotFound
from gateway.functions.records import VersionRecord
from gateway.functions.registry import Registry
from gateway.functions.service import FunctionService
from gateway.sdk.operations import zip_directory
from gateway.security.auth import Principal
from plugins.manager import RuntimeRegistry

log = logging.getLogger("tiergate.preload")

TENANT = "default"
PRELOAD = Principal("preload", TENANT, frozenset({"deploy"}), "serve --deploy")
"""Who deploys what ``serve --deploy`` finds (``deployed_by`` and the audit entries say so)."""


def discover(root: Path, runtimes: RuntimeRegistry) -> list[tuple[dict[str, Any], bytes | None]]:
    suffixes = runtimes.suffixes()
    found: list[tuple[dict[str, Any], bytes | None]] = []
    packages = _packages(root)
    for package in packages:
        manifest = _sidecar(package.with_name(f"{package.name}.json"))
        manifest.setdefault("id", _function_id(root, package, package.name))
        manifest.setdefault("runtime", "python")
        manifest.setdefault("filename", f"{manifest['id']}.zip")
        found.append((manifest, zip_directory(package)))
    code_stems = set(packages)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        runtime = suffixes.get(path.suffix)
        if runtime is None or _inside(path, packages):
            continue
        manifest = _sidecar(path.with_suffix(".json"))
        manifest.setdefault("id", _function_id(root, path))
        manifest.setdefault("runtime", runtime)
        manifest.setdefault("filename", path.name)
        found.append((manifest, path.read_bytes()))
        code_stems.add(path.with_suffix(""))
    for path in sorted(root.rglob("*.json")):
        if path.with_suffix("") not in code_stems and not _inside(path, packages):
            manifest = _sidecar(path)
            manifest.setdefault("id", _function_id(root, path))
            found.append((manifest, None))
    return found


def _sidecar(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a manifest must be a JSON object")
    return data


def _packages(root: Path) -> list[Path]:
    """The outermost directories under ``root`` that hold a ``handler.py``."""
    found: list[Path] = []
    for handler in sorted(root.rglob("handler.py"), key=lambda p: (len(p.parts), p)):
        folder = handler.parent
        if folder != root and handler.is_file() and not _inside(folder, found):
            found.append(folder)
    return found


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def _function_id(root: Path, path: Path, name: str | None = None) -> str:
    parts = [*path.relative_to(root).parent.parts, name or path.stem]
    return "-".join(parts).lower().replace(".", "-")


async def preload(
    root: Path, functions: FunctionService, registry: Registry, runtimes: RuntimeRegistry
) -> None:
    for manifest, code in discover(root, runtimes):
        try:
            latest = await _latest(registry, manifest["id"])
            if latest is not None and latest.deployed_by != PRELOAD.key_id:
                log.warning(
                    "preload: %s is left as it is: its latest version (%d) was deployed by "
                    "someone else, not from %s",
                    manifest["id"],
                    latest.version,
                    root,
                )
                continue
            if latest is not None and _same(latest, manifest, code):
                log.info("preload: %s is up to date", manifest["id"])
                continue
            record = await functions.deploy(PRELOAD, TENANT, manifest, code)
            print(f"deployed {record.id} version {record.version}", flush=True)
        except REPORTED as exc:
            log.error("preload: %s: %s", manifest.get("id"), exc.detail)


async def _latest(registry: Registry, function_id: str) -> VersionRecord | None:
    try:
        record = await registry.get_function(TENANT, function_id)
        return await registry.get_version(TENANT, function_id, record.latest)
    except NotFound:
        return None


def _same(latest: VersionRecord, manifest: dict[str, Any], code: bytes | None) -> bool:
    sha = hashlib.sha256(code).hexdigest() if code is not None else None
    stored = {k: v for k, v in manifest.items() if k not in ("code", "code_encoding")}
    return bool(latest.code_sha256 == sha and latest.manifest == stored)
