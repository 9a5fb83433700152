"""``tiergate serve --deploy DIR``: deploy every function file under DIR at startup.

Each code file (suffix known to an installed runtime) becomes a function named after the file
(``hello.wat`` → ``hello``; ``c/echo.wasm`` → ``c-echo``). A ``NAME.json`` beside it adds manifest
fields; a ``NAME.json`` with no code file beside it is deployed as a manifest of its own. A file
whose code and manifest equal the latest version is left alone, so restarts do not pile up versions;
so is a function whose latest version someone deployed by hand (a warning says so): a restart
never takes a function over from its user.

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
from gateway.security.auth import Principal
from plugins.manager import RuntimeRegistry

log = logging.getLogger("tiergate.preload")

TENANT = "default"
PRELOAD = Principal("preload", TENANT, frozenset({"deploy"}), "serve --deploy")
"""Who deploys what ``serve --deploy`` finds (``deployed_by`` and the audit entries say so)."""


def _suffixes(runtimes: RuntimeRegistry) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, entry in runtimes.entries.items():
        if entry.spec is not None and entry.status == "active":
            for suffix in entry.spec.suffixes:
                found.setdefault(suffix, name)
    return found


def discover(root: Path, runtimes: RuntimeRegistry) -> list[tuple[dict[str, Any], bytes | None]]:
    suffixes = _suffixes(runtimes)
    found: list[tuple[dict[str, Any], bytes | None]] = []
    code_stems = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        runtime = suffixes.get(path.suffix)
        if runtime is None:
            continue
        manifest = _sidecar(path.with_suffix(".json"))
        manifest.setdefault("id", _function_id(root, path))
        manifest.setdefault("runtime", runtime)
        manifest.setdefault("filename", path.name)
        found.append((manifest, path.read_bytes()))
        code_stems.add(path.with_suffix(""))
    for path in sorted(root.rglob("*.json")):
        if path.with_suffix("") not in code_stems:
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


def _function_id(root: Path, path: Path) -> str:
    parts = [*path.relative_to(root).parent.parts, path.stem]
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
