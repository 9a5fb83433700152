"""Aliases: named pointers at a function's versions (``prod``, ``canary``), with weighted traffic.

An alias sends each call to its ``version``, or — by ``weights`` such as ``{"5": 0.1}`` — a share
of the calls to other versions (10 % to version 5 here, the rest to ``version``). Callers invoke
``id:alias``; moving the alias (a ``PUT`` again) moves their traffic, and is how a canary is
promoted or rolled back.

Aliases live inside the function record (``fn/<tenant>/<id>``, field ``aliases``), so every alias
change is a compare-and-set on the record the loader already reads: deleting the function
deletes its aliases, a function created again under the same id starts without any, and the
loader learns of aliases on the same read (and event) that tells it of ``latest``. This module
checks what a caller asks for (no I/O) and turns stored aliases into routes the hot path picks
from with one random draw.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadRequest

log = logging.getLogger("tiergate.aliases")

ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
RESERVED = frozenset({"latest"})
MAX_ALIASES = 64
"""Aliases one function may have (they travel in its record, read on every version check)."""
MAX_WEIGHTED = 4
"""Versions, besides ``version``, one alias may send a share of its traffic to."""
MAX_DESCRIPTION = 256
VERSION_KEY = re.compile(r"^[1-9][0-9]{0,9}$")
ALIAS_FIELDS = frozenset({"version", "weights", "description"})
_SUM_SLACK = 1e-9  # 0.1 + 0.2 + 0.7 is 1.0000000000000002 in floats


def alias_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an alias, or None when it can."""
    if not ALIAS_NAME.match(name):
        return (
            f"invalid alias name {name[:80]!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter"
        )
    if name in RESERVED:
        return f"{name!r} is reserved: it always means the latest version"
    return None


def check_alias_name(name: str) -> str:
    problem = alias_name_problem(name)
    if problem is not None:
        raise BadRequest(problem, field="name")
    return name


@dataclass(frozen=True, slots=True)
class AliasChange:
    """What ``PUT /functions/{id}/aliases/{name}`` asks for, checked for shape (the versions it
    names are checked against the registry when it is applied)."""

    version: int
    weights: tuple[tuple[int, float], ...] = ()
    description: str = ""

    @classmethod
    def parse(cls, body: Any) -> AliasChange:
        if not isinstance(body, dict):
            raise BadRequest(
                'send a JSON object: {"version": N, "weights"?: {"M": 0.1}, "description"?}',
                field="(body)",
            )
        unknown = sorted(set(body) - ALIAS_FIELDS)
        if unknown:
            raise BadRequest(
                f"unknown field(s) {', '.join(unknown)}: an alias has version, weights and "
                "description",
                field=unknown[0],
            )
        version = body.get("version")
        if not (isinstance(version, int) and _whole(version)):
            raise BadRequest(
                "version: a version number from 1 (the version the alias points at)",
                field="version",
            )
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise BadRequest(
                f"description: a string of at most {MAX_DESCRIPTION} characters",
                field="description",
            )
        return cls(version, _weights(body.get("weights"), version), description)

    def versions(self) -> list[tuple[int, str]]:
        """Every version named, with the field naming it."""
        return [(self.version, "version")] + [(v, f"weights.{v}") for v, _ in self.weights]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "weights": {str(v): w for v, w in self.weights},
            "description": self.description,
        }


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 9_999_999_999


def _weights(raw: Any, version: int) -> tuple[tuple[int, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise BadRequest(
            'weights: an object of version → share of the traffic, e.g. {"5": 0.1}',
            field="weights",
        )
    if len(raw) > MAX_WEIGHTED:
        raise BadRequest(
            f"weights: at most {MAX_WEIGHTED} versions besides version {version}, got {len(raw)}",
            field="weights",
        )
    weights = []
    for key, weight in raw.items():
        where = f"weights.{key[:20]}"
        if not VERSION_KEY.match(key):
            raise BadRequest(f"{where}: a key is a version number, such as \"2\"", field=where)
        if int(key) == version:
            raise BadRequest(
                f"{where}: version {version} is the alias's own version; it gets what the "
                "weights leave (1 - their sum)",
                field=where,
            )
        if (
            not isinstance(weight, int | float)
            or isinstance(weight, bool)
            or not math.isfinite(weight)
            or not 0 < weight <= 1
        ):
            raise BadRequest(f"{where}: a weight is a number above 0 and at most 1", field=where)
        weights.append((int(key), float(weight)))
    total = sum(w for _, w in weights)
    if total > 1 + _SUM_SLACK:
        raise BadRequest(
            f"weights: they add up to {total:g}; at most 1 (version {version} gets the rest)",
            field="weights",
        )
    return tuple(sorted(weights))


@dataclass(frozen=True, slots=True)
class Alias:
    """An alias as the API shows it."""

    name: str
    function_id: str
    version: int
    weights: Mapping[str, float]
    description: str
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_json(cls, function_id: str, name: str, data: Mapping[str, Any]) -> Alias:
        return cls(
            name,
            function_id,
            int(data["version"]),
            dict(data.get("weights") or {}),
            str(data.get("description") or ""),
            data.get("created_at"),
            data.get("updated_at"),
        )


@dataclass(frozen=True, slots=True)
class Route:
    """Where an alias sends one call: ``splits`` are (upper bound of a uniform draw, version),
    cumulative; a draw above them all goes to ``version``."""

    version: int
    splits: tuple[tuple[float, int], ...] = ()

    def pick(self) -> int:
        if not self.splits:
            return self.version
        draw = random.random()
        for bound, version in self.splits:
            if draw < bound:
                return version
        return self.version


def routes_of(function_id: str, aliases: Mapping[str, Any]) -> dict[str, Route]:
    """The routes of a function's stored aliases. One that does not read (a damaged record) is
    logged and left out: its calls answer ``alias_not_found`` rather than the whole function
    failing."""
    routes: dict[str, Route] = {}
    if not isinstance(aliases, Mapping):
        log.error("skipping the unreadable aliases of %s: %r", function_id, aliases)
        return routes
    for name, data in aliases.items():
        try:
            bound, splits = 0.0, []
            for key, weight in sorted((data.get("weights") or {}).items()):
                bound += float(weight)
                splits.append((bound, int(key)))
            routes[name] = Route(int(data["version"]), tuple(splits))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            log.error("skipping unreadable alias %s:%s: %r", function_id, name, exc)
    return routes
