"""The deploy manifest: its JSON Schema (also published in /openapi.json) and its validation.

Every problem answers ``invalid_manifest`` with the offending field named, before anything is
stored, so a bad deploy can never touch an existing version.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from gateway.errors import InvalidFunctionId, InvalidManifest
from gateway.functions.composition import (
    COMPOSITION_SCHEMA,
    FUNCTION_ID,
    Composition,
    schema_problem,
)
from gateway.functions.quotas import Ceilings
from plugins.runtime import MAX_OUTPUT_KB, Limits
from plugins.sandbox.egress import MAX_ALLOW, NETWORK_SCHEMA, parse_destination
from tiers.schemas import PatternError, check_patterns

TIER_NAMES = ("code", "generative", "agentic", "human")

_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"}
MAX_TIER_RETRIES = 10
MAX_TIER_TIMEOUT_MS = 30 * 24 * 3600 * 1000  # a review task may wait a month, no longer
MAX_CACHE_TTL_S = 86_400


def _per_tier(maximum: int) -> dict[str, Any]:
    return {
        "type": "object",
        "propertyNames": {"enum": list(TIER_NAMES)},
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": maximum},
    }


MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Manifest",
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string"},
        "runtime": {"type": "string", "minLength": 1},
        "code": {"type": "string"},
        "code_encoding": {"enum": ["utf-8", "base64"]},
        "filename": {"type": "string", "maxLength": 255},
        "description": {"type": "string", "maxLength": 4096},
        "input_schema": {"type": ["object", "boolean"]},
        "output_schema": {"type": ["object", "boolean"]},
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 900_000},
                "memory_mb": {"type": "integer", "minimum": 1, "maximum": 16_384},
                "max_concurrency": {"type": "integer", "minimum": 0, "maximum": 100_000},
                "fuel": {"type": ["integer", "null"], "minimum": 1, "maximum": 2**63 - 1},
                "max_output_kb": {"type": "integer", "minimum": 1, "maximum": MAX_OUTPUT_KB},
                "tmp_mb": {"type": "integer", "minimum": 1, "maximum": 8192},
                "isolation": {"enum": ["per_call", "warm"]},
            },
        },
        "env": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {"type": "string"},
        },
        "secrets": {"type": "array", "items": _NAME, "uniqueItems": True},
        "tiers": {"type": "object"},
        "cascade": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "start_tier": {"enum": list(TIER_NAMES)},
                "skip_tiers": {"type": "array", "items": {"enum": list(TIER_NAMES)}},
                "tier_retries": _per_tier(MAX_TIER_RETRIES),
                "tier_timeouts_ms": _per_tier(MAX_TIER_TIMEOUT_MS),
                "parallel": {"type": "boolean"},
                "fallback": {"type": "boolean"},
            },
        },
        "cache": {
            "type": "object",
            "required": ["ttl_s"],
            "additionalProperties": False,
            "description": "Result cache for a deterministic function: a completion by the code "
            "tier is kept ttl_s seconds, keyed by version and input, and an identical call "
            "answers from it without running any tier (docs/api.md, Result cache)",
            "properties": {
                "ttl_s": {"type": "integer", "minimum": 1, "maximum": MAX_CACHE_TTL_S},
            },
        },
        "network": NETWORK_SCHEMA,
        **COMPOSITION_SCHEMA,
    },
}

_VALIDATOR = Draft202012Validator(MANIFEST_SCHEMA)
_DEFAULT = Limits()
_DEFAULT_LIMITS = {
    "limits": {
        "timeout_ms": _DEFAULT.timeout_ms,
        "memory_mb": _DEFAULT.memory_mb,
        "max_output_kb": _DEFAULT.max_output_kb,
    }
}


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``raw`` is what gets stored (without the code)."""

    id: str
    runtime: str | None
    code: bytes | None
    filename: str | None
    description: str
    input_schema: Any
    output_schema: Any
    limits: Limits
    max_concurrency: int
    env: Mapping[str, str]
    secrets: tuple[str, ...]
    tiers: Mapping[str, Any]
    cascade: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    composition: Composition = field(default_factory=Composition)
    cache_ttl_s: int | None = None


def check_function_id(value: Any) -> str:
    if not isinstance(value, str) or not FUNCTION_ID.match(value):
        raise InvalidFunctionId(
            f"invalid function id {value!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit",
            field="id",
        )
    return value


def parse_manifest(
    data: Any,
    *,
    code: bytes | None = None,
    runtime_options: Mapping[str, Any] | None = None,
    ceilings: Ceilings | None = None,
    stored: bool = False,
) -> Manifest:
    """Validate ``data``; ``code`` (a multipart file) overrides the manifest's ``code`` field.

    ``runtime_options`` is the chosen runtime's ``manifest_options``: a JSON Schema ``properties``
    mapping for the extra top-level fields that runtime accepts. A field above one of
    ``ceilings`` is refused, unless the manifest is ``stored`` (deployed before an operator
    lowered the ceiling): then it is cut down to it, and the version still loads.
    """
    ceilings = ceilings or Ceilings()
    if not isinstance(data, dict):
        raise InvalidManifest("the manifest must be a JSON object", field="(manifest)")
    check_function_id(data.get("id"))
    if "cache" in data:
        _check_cache(data["cache"])
    if "network" in data:
        _check_network(data["network"])
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise schema_problem(errors[0])
    data = dict(ceilings.fit(data, refuse=not stored))
    composition = Composition.parse(data, stored=stored)
    options = _runtime_options(data, runtime_options or {})
    if "network" in data:
        options["network"] = _network_for(data, runtime_options or {})
    for name in ("input_schema", "output_schema"):
        _check_schema(name, data.get(name))
    if code is None and "code" in data:
        code = _decode_code(data["code"], data.get("code_encoding", "utf-8"))
    if code is not None and not data.get("runtime"):
        raise InvalidManifest("runtime: required when code is given", field="runtime")
    limits = _limits(data.get("limits", {}), ceilings)
    raw = {k: v for k, v in data.items() if k not in ("code", "code_encoding")}
    return Manifest(
        id=data["id"],
        runtime=data.get("runtime"),
        code=code,
        filename=data.get("filename"),
        description=data.get("description", ""),
        input_schema=data.get("input_schema"),
        output_schema=data.get("output_schema"),
        limits=limits,
        max_concurrency=data.get("limits", {}).get("max_concurrency", 0),
        env=data.get("env", {}),
        secrets=tuple(data.get("secrets", ())),
        tiers=data.get("tiers", {}),
        cascade=data.get("cascade", {}),
        options=options,
        raw=raw,
        composition=composition,
        cache_ttl_s=int(data["cache"]["ttl_s"]) if "cache" in data else None,
    )


def _limits(given: Mapping[str, Any], ceilings: Ceilings) -> Limits:
    """The manifest's limits with defaults, each default cut down to its ceiling; scratch space is
    part of the memory, so it may take at most half of it (by default a quarter, at most 16 MiB)."""
    given = {**ceilings.fit(_DEFAULT_LIMITS, refuse=False)["limits"], **given}
    memory_mb = given["memory_mb"]
    tmp_mb = given.get("tmp_mb", max(1, min(16, memory_mb // 4)))
    if tmp_mb > max(1, memory_mb // 2):
        raise InvalidManifest(
            f"limits.tmp_mb: {tmp_mb} MiB is more than half of limits.memory_mb ({memory_mb} MiB);"
            " scratch space counts against memory",
            field="limits.tmp_mb",
        )
    return Limits(
        timeout_ms=given["timeout_ms"],
        memory_mb=memory_mb,
        fuel=given.get("fuel"),
        max_output_kb=given["max_output_kb"],
        tmp_mb=tmp_mb,
        isolation=given.get("isolation", "per_call"),
    )


def _check_cache(cache: Any) -> None:
    """``cache`` with each problem naming its field (``cache.ttl_s``), before the schema's
    generic messages."""
    if not isinstance(cache, dict):
        raise InvalidManifest('cache: must be an object {"ttl_s": N}', field="cache")
    for name in cache:
        if name != "ttl_s":
            raise InvalidManifest(
                f"cache.{name}: unknown field (cache takes ttl_s alone)", field=f"cache.{name}"
            )
    ttl = cache.get("ttl_s")
    if isinstance(ttl, float) and ttl.is_integer():
        ttl = int(ttl)  # 60.0 is a whole number too, as JSON Schema's "integer" says
    if type(ttl) is not int or not 1 <= ttl <= MAX_CACHE_TTL_S:
        problem = "required" if ttl is None else "must be"
        raise InvalidManifest(
            f"cache.ttl_s: {problem} a whole number of seconds from 1 to {MAX_CACHE_TTL_S}",
            field="cache.ttl_s",
        )


def _check_network(network: Any) -> None:
    """``network`` with each problem naming its field (``network.allow[2]``), before the
    schema's generic messages."""
    if not isinstance(network, dict):
        raise InvalidManifest(
            'network: must be an object {"allow": ["host:port", ...]}', field="network"
        )
    for name in network:
        if name != "allow":
            raise InvalidManifest(
                f"network.{name}: unknown field (network takes allow alone)",
                field=f"network.{name}",
            )
    allow = network.get("allow")
    if not isinstance(allow, list):
        raise InvalidManifest(
            "network.allow: required, a list of host:port destinations", field="network.allow"
        )
    if len(allow) > MAX_ALLOW:
        raise InvalidManifest(
            f"network.allow: at most {MAX_ALLOW} destinations, got {len(allow)}",
            field="network.allow",
        )
    for index, entry in enumerate(allow):
        try:
            parse_destination(entry)
        except ValueError as exc:
            where = f"network.allow[{index}]"
            raise InvalidManifest(f"{where}: {exc}", field=where) from None


def _network_for(data: Mapping[str, Any], runtime_options: Mapping[str, Any]) -> dict[str, Any]:
    """The checked ``network``, handed to the runtime in its options: only a runtime that
    declares ``network`` among its ``manifest_options`` can open connections for code."""
    if "network" not in runtime_options:
        runtime = data.get("runtime")
        which = f"the {runtime} runtime" if runtime else "a function without code"
        raise InvalidManifest(
            f"network: {which} cannot open connections (the python runtime can)",
            field="network",
        )
    return {"allow": list(data["network"]["allow"])}


def _runtime_options(data: Mapping[str, Any], allowed: Mapping[str, Any]) -> dict[str, Any]:
    known = MANIFEST_SCHEMA["properties"]
    options = {k: v for k, v in data.items() if k not in known}
    for name, value in options.items():
        if name not in allowed:
            raise InvalidManifest(f"{name}: unknown field", field=name)
        try:
            jsonschema.validate(value, allowed[name], cls=Draft202012Validator)
        except jsonschema.ValidationError as exc:
            raise InvalidManifest(f"{name}: {exc.message}", field=name) from None
    return options


def _check_schema(name: str, schema: Any) -> None:
    if schema is None:
        return
    try:
        Draft202012Validator.check_schema(schema)
        check_patterns(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        raise InvalidManifest(
            f"{name}: not a valid JSON Schema ({where or 'root'}: {exc.message})", field=name
        ) from None
    except PatternError as exc:
        raise InvalidManifest(
            f"{name}: {exc} (patterns are RE2: no backreferences or lookaround)", field=name
        ) from None
    except RecursionError:
        raise InvalidManifest(f"{name}: nested too deeply", field=name) from None


def _decode_code(code: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return code.encode()
    try:
        return base64.b64decode(code, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidManifest("code: not valid base64", field="code") from None
