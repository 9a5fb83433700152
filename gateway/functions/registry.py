"""Function versions: immutable 1, 2, …, a ``latest`` pointer, rollback and delete.

KV layout (per tenant namespace):

* ``fn/<tenant>/<id>`` — the function: ``latest_version``, ``next_version``, runtime, description,
  and its aliases (``aliases.py``).
* ``fnv/<tenant>/<id>/<version:010d>`` — one version: its manifest (without code), code facts.
* code and artifacts live in the hybrid code store under ``code/<tenant>/<id>/v<version>/…``.

Records are typed (``records.py``); this module is where they meet their JSON.

A deploy reserves its version number with a compare-and-set on the function record, writes code
and the version record, then moves ``latest`` with another compare-and-set, so concurrent deploys
(even on different instances) never share a number and a failed deploy changes nothing visible.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from gateway.errors import AliasNotFound, BadRequest, FunctionNotFound, VersionNotFound
from gateway.functions.aliases import MAX_ALIASES, Alias, AliasChange, alias_name_problem
from gateway.functions.manifest import check_function_id
from gateway.functions.records import (
    FunctionRecord,
    Record,
    UnreadableRecord,
    VersionRecord,
    decode_function,
    decode_version,
    encode,
)
from storage.hybrid import HybridCodeStore
from storage.kv.base import KV

log = logging.getLogger("tiergate.registry")

Mutation = Callable[[FunctionRecord | None], FunctionRecord | None]


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """``hello``, ``hello@3`` or ``hello:prod`` (an alias) — parsed without I/O."""

    function_id: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> FunctionRef:
        return _parse_ref(text)


MAX_VERSION = 9_999_999_999
"""Versions are kept as ten digits (``fnv/…/<version:010d>``): no function has a larger one."""


@functools.lru_cache(maxsize=4096)
def _parse_ref(text: str) -> FunctionRef:
    """Refs repeat on every call; parsing once each keeps the regex off the hot path. Errors are
    raised, never cached. ASCII digits only (``str.isdigit`` also takes '²', which ``int``
    refuses), and the length is checked before ``int`` (which refuses 4300 digits and more)."""
    name, sep, version = text.partition("@")
    name, colon, alias = name.partition(":")
    check_function_id(name)
    if colon:
        return _alias_ref(name, alias, text, bool(sep))
    if not sep or version == "latest":
        return FunctionRef(name)
    if not (version.isascii() and version.isdigit()) or not version.strip("0"):
        raise VersionNotFound(f"invalid version {version!r}: use a number from 1", function_id=name)
    if len(version) > len(str(MAX_VERSION)):
        raise VersionNotFound(f"no version is above {MAX_VERSION}", function_id=name)
    return FunctionRef(name, int(version))


def _alias_ref(name: str, alias: str, text: str, versioned: bool) -> FunctionRef:
    if versioned:
        raise BadRequest(
            f"{text[:140]!r}: name a version (id@N) or an alias (id:alias), not both",
            function_id=name,
        )
    if alias == "latest":
        return FunctionRef(name)
    problem = alias_name_problem(alias)
    if problem is not None:
        raise AliasNotFound(f"function {name!r} has no alias: {problem}", function_id=name)
    return FunctionRef(name, alias=alias)


def code_prefix(tenant: str, function_id: str, version: int | None = None) -> str:
    base = f"code/{tenant}/{function_id}/"
    return base if version is None else f"{base}v{version}/"


def source_key(tenant: str, function_id: str, version: int) -> str:
    return code_prefix(tenant, function_id, version) + "source"


def artifact_key(tenant: str, function_id: str, version: int, key: str) -> str:
    return code_prefix(tenant, function_id, version) + "artifact/" + key


class Registry:
    """Function and version records in the KV, and the code under them in the hybrid store."""

    def __init__(self, kv: KV, code: HybridCodeStore) -> None:
        self.kv = kv
        self.code = code

    async def get_function(self, tenant: str, function_id: str) -> FunctionRecord:
        raw = await self.kv.get(_fn_key(tenant, function_id))
        record = None if raw is None else decode_function(raw)
        if record is None or record.latest_version is None:  # absent, or first deploy unfinished
            raise FunctionNotFound(f"function {function_id!r} not found", function_id=function_id)
        return record

    async def get_version(self, tenant: str, function_id: str, version: int) -> VersionRecord:
        raw = await self.kv.get(_version_key(tenant, function_id, version))
        if raw is None:
            await self.get_function(tenant, function_id)
            raise VersionNotFound(
                f"function {function_id!r} has no version {version}",
                function_id=function_id,
                version=version,
            )
        return decode_version(raw)

    async def resolve(self, tenant: str, function_id: str, version: int | None) -> int:
        if version is not None:
            return version
        return (await self.get_function(tenant, function_id)).latest

    async def list_functions(self, tenant: str | None) -> list[FunctionRecord]:
        prefix = "fn/" if tenant is None else f"fn/{tenant}/"
        records = [r async for r in _readable(self.kv.scan(prefix), decode_function)]
        return [r for r in records if r.latest_version is not None]

    async def list_versions(self, tenant: str, function_id: str) -> list[VersionRecord]:
        await self.get_function(tenant, function_id)
        prefix = f"fnv/{tenant}/{function_id}/"
        return [r async for r in _readable(self.kv.scan(prefix), decode_version)]

    async def reserve_version(self, tenant: str, function_id: str, principal: str) -> int:
        """Take the next version number; nothing is visible to readers until ``publish``."""
        now = time.time()
        reserved = 0

        def bump(record: FunctionRecord | None) -> FunctionRecord:
            nonlocal reserved
            record = record or FunctionRecord(
                id=function_id, tenant=tenant, created_at=now, created_by=principal
            )
            reserved = record.next_version
            return replace(record, next_version=reserved + 1)

        await self._mutate(_fn_key(tenant, function_id), bump)
        return reserved

    async def publish(self, version: VersionRecord) -> None:
        """Store a version record and point ``latest`` at it."""
        await self.save_version(version)
        await self._point_latest(version)

    async def save_version(self, version: VersionRecord) -> None:
        """Rewrite a version record's derived facts (e.g. a new artifact); never its manifest."""
        key = _version_key(version.tenant, version.id, version.version)
        await self.kv.set(key, encode(version))

    async def rollback(self, tenant: str, function_id: str, version: int) -> FunctionRecord:
        record = await self.get_version(tenant, function_id, version)
        await self._point_latest(record)
        return await self.get_function(tenant, function_id)

    async def delete(self, tenant: str, function_id: str) -> None:
        """Function record first (readers stop seeing it), then versions, then code."""
        await self.get_function(tenant, function_id)
        await self.kv.delete(_fn_key(tenant, function_id))
        keys = [key async for key, _ in self.kv.scan(f"fnv/{tenant}/{function_id}/")]
        for key in keys:
            await self.kv.delete(key)
        await self.code.delete_prefix(code_prefix(tenant, function_id))

    async def aliases(self, tenant: str, function_id: str) -> list[Alias]:
        record = await self.get_function(tenant, function_id)
        return [_alias(record, name) for name in sorted(record.aliases)]

    async def alias(self, tenant: str, function_id: str, name: str) -> Alias:
        return _alias(await self.get_function(tenant, function_id), name)

    async def put_alias(
        self, tenant: str, function_id: str, name: str, change: AliasChange, principal: str
    ) -> tuple[Alias, bool]:
        """Create or move an alias; the alias and whether it is new. Every version it names must
        exist, and the function must still be the one whose versions were checked (not deleted,
        nor deleted and created again, in between)."""
        seen = await self.get_function(tenant, function_id)
        for version, field in change.versions():
            if await self.kv.get(_version_key(tenant, function_id, version)) is None:
                raise VersionNotFound(
                    f"{field}: function {function_id!r} has no version {version}",
                    function_id=function_id,
                    version=version,
                    field=field,
                )
        now = time.time()
        created = False

        def put(record: FunctionRecord | None) -> FunctionRecord:
            nonlocal created
            record = _same_function(record, seen)
            old = record.aliases.get(name)
            created = old is None
            if created and len(record.aliases) >= MAX_ALIASES:
                raise BadRequest(
                    f"function {function_id!r} has {MAX_ALIASES} aliases already, the most it "
                    "may have; delete one first",
                    field="name",
                    limit=MAX_ALIASES,
                )
            began = now if old is None else old.get("created_at", now)
            entry = {**change.as_json(), "created_at": began, "updated_at": now, "by": principal}
            return replace(record, aliases={**record.aliases, name: entry})

        record = await self._mutate(_fn_key(tenant, function_id), put)
        assert record is not None  # ``put`` always writes
        return _alias(record, name), created

    async def delete_alias(self, tenant: str, function_id: str, name: str) -> None:
        seen = await self.get_function(tenant, function_id)

        def drop(record: FunctionRecord | None) -> FunctionRecord:
            record = _same_function(record, seen)
            if name not in record.aliases:
                raise _no_alias(function_id, name)
            return replace(record, aliases={k: v for k, v in record.aliases.items() if k != name})

        await self._mutate(_fn_key(tenant, function_id), drop)

    async def _point_latest(self, version: VersionRecord) -> None:
        def point(record: FunctionRecord | None) -> FunctionRecord:
            if record is None:
                raise FunctionNotFound(f"function {version.id!r} not found", function_id=version.id)
            return replace(
                record,
                latest_version=version.version,
                runtime=version.runtime,
                description=version.description,
                updated_at=time.time(),
            )

        await self._mutate(_fn_key(version.tenant, version.id), point)

    async def _mutate(self, key: str, change: Mutation) -> FunctionRecord | None:
        """Read-modify-write with compare-and-set, retried until no one else wrote in between;
        the record as written."""
        while True:
            old = await self.kv.get(key)
            new = change(None if old is None else decode_function(old))
            if new is None or await self.kv.compare_and_set(key, old, encode(new)):
                return new


async def _readable(
    entries: AsyncIterator[tuple[str, bytes]], decode: Callable[[bytes], Record]
) -> AsyncIterator[Record]:
    """Records from a scan; one that does not parse is logged and left out, so a single damaged
    entry cannot take listings (or the gateway's startup) down with it."""
    async for key, value in entries:
        try:
            yield decode(value)
        except UnreadableRecord as exc:
            log.error("skipping unreadable record %s in the KV store: %s", key, exc)


def _same_function(record: FunctionRecord | None, seen: FunctionRecord) -> FunctionRecord:
    if record is None or record.latest_version is None or record.created_at != seen.created_at:
        raise FunctionNotFound(f"function {seen.id!r} not found", function_id=seen.id)
    return record


def _alias(record: FunctionRecord, name: str) -> Alias:
    data = record.aliases.get(name)
    if data is None:
        raise _no_alias(record.id, name)
    return Alias.from_json(record.id, name, data)


def _no_alias(function_id: str, name: str) -> AliasNotFound:
    return AliasNotFound(
        f"function {function_id!r} has no alias {name!r}", function_id=function_id, alias=name
    )


def _fn_key(tenant: str, function_id: str) -> str:
    return f"fn/{tenant}/{function_id}"


def _version_key(tenant: str, function_id: str, version: int) -> str:
    return f"fnv/{tenant}/{function_id}/{version:010d}"
