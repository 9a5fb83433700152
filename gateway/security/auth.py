"""API keys: hashing, roles, the calling ``Principal`` and the bootstrap admin key.

Keys are long random tokens; only their SHA-256 is stored. The hot path is one hash and one dict
lookup: principals are cached in memory for a short time, and revocation drops them at once here.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.errors import Forbidden, KeyNotFound, LastAdminKey, Unauthenticated
from gateway.times import iso
from storage.errors import StorageUnavailable
from storage.kv.base import KV

ROLES = ("admin", "deploy", "invoke", "review")
DEFAULT_TENANT = "default"
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000
BOOTSTRAP = "bootstrap-admin"
BOOTSTRAP_CLAIM_S = 60.0
REVOKING_S = 60.0  # a revocation mark older than this was left by a process that died
REVOKE_TRIES = 5


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    roles: frozenset[str]
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def require(self, role: str) -> None:
        if role not in self.roles and not self.is_admin:
            raise Forbidden(f"this key lacks the {role!r} role", role=role)

    def act_for(self, tenant: str) -> None:
        """Only admin keys may act for a tenant other than their own (403 ``forbidden``)."""
        if tenant != self.tenant and not self.is_admin:
            raise Forbidden("only admin keys may choose another tenant with ?tenant=")


def public_key(record: dict[str, Any]) -> dict[str, Any]:
    """A key record as admins see it: never the token, never its hash."""
    return {
        **{k: record[k] for k in ("id", "tenant", "roles", "name")},
        "created_at": iso(record["created_at"]),
    }


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "tg_" + secrets.token_urlsafe(32)


class KeyStore:
    """Key records live in the KV under ``apikey/<id>`` with an index ``apikeyhash/<sha256>``."""

    def __init__(self, kv: KV) -> None:
        self._kv = kv
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def authenticate(self, token: str) -> Principal:
        """Keyed by the token itself in memory (hashing on every request shows in profiles);
        only the hash is ever stored."""
        hit = self._cache.get(token)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            principal = await self._lookup(hash_key(token))
        except StorageUnavailable:
            if hit is None:
                raise
            return hit[0]  # the KV is away: a key known a moment ago stays known meanwhile
        if principal is None:
            self._cache.pop(token, None)
            raise Unauthenticated("unknown or revoked API key")
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[token] = (principal, now + CACHE_SECONDS)
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        key_id = await self._kv.get(f"apikeyhash/{digest}")
        if key_id is None:
            return None
        raw = await self._kv.get(f"apikey/{key_id.decode()}")
        if raw is None:
            return None
        record = orjson.loads(raw)
        return Principal(record["id"], record["tenant"], frozenset(record["roles"]), record["name"])

    async def create(
        self, tenant: str, roles: Iterable[str], name: str, *, token: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """Store a new key; returns its record and the token (the only time it is seen)."""
        token = token or new_token()
        digest = hash_key(token)
        key_id = "k_" + secrets.token_hex(8)
        record: dict[str, Any] = {
            "id": key_id,
            "tenant": tenant,
            "roles": sorted(set(roles)),
            "name": name,
            "created_at": time.time(),
            "sha256": digest,
        }
        await self._kv.set(f"apikey/{record['id']}", orjson.dumps(record))
        index = f"apikeyhash/{digest}"
        if not await self._kv.compare_and_set(index, None, key_id.encode()):
            # The same token registered meanwhile (instances starting with one TIERGATE_ADMIN_KEY)
            await self._kv.delete(f"apikey/{record['id']}")
            existing = await self._kv.get(index)
            raw = await self._kv.get(f"apikey/{existing.decode()}") if existing else None
            if raw is None:
                raise StorageUnavailable("a key being registered elsewhere is not readable yet")
            return orjson.loads(raw), token
        return record, token

    async def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        records = [orjson.loads(raw) async for _, raw in self._kv.scan("apikey/")]
        return [public_key(r) for r in records if tenant is None or r["tenant"] == tenant]

    async def revoke(self, key_id: str) -> dict[str, Any]:
        """Delete a key; each process drops it from its cache when told (``Coherence``). The last
        key holding ``admin`` stays (409 ``last_admin_key``). Instances sharing the KV may revoke
        two admin keys at once, so an admin key is first marked (compare-and-set) and only then
        are the others counted, unmarked ones only: of two such revocations, the later to mark
        sees the other's mark, so they never both go ahead and leave no admin key."""
        for _ in range(REVOKE_TRIES):  # a lost compare-and-set: another revocation of this key
            raw = await self._kv.get(f"apikey/{key_id}")
            if raw is None:
                raise KeyNotFound(f"no API key with id {key_id!r}", key_id=key_id)
            record = orjson.loads(raw)
            if "admin" in record["roles"] and not await self._mark_revoking(raw, record):
                continue
            await self._kv.delete(f"apikeyhash/{record['sha256']}")
            await self._kv.delete(f"apikey/{key_id}")
            return public_key(record)
        raise StorageUnavailable(f"API key {key_id!r} kept changing while being revoked")

    async def _mark_revoking(self, raw: bytes, record: dict[str, Any]) -> bool:
        """Mark an admin key as being revoked if another admin key remains (the mark comes off
        again and 409 ``last_admin_key`` if none does); False if the record changed meanwhile."""
        key = f"apikey/{record['id']}"
        unmarked = {k: v for k, v in record.items() if k != "revoking"}
        marked = orjson.dumps({**unmarked, "revoking": time.time()})
        if not await self._kv.compare_and_set(key, raw, marked):
            return False
        if not await self._another_admin(record["id"]):
            await self._kv.compare_and_set(key, marked, orjson.dumps(unmarked))
            raise LastAdminKey(
                "this is the last key with the admin role; create another admin key first",
                key_id=record["id"],
            )
        return True

    async def _another_admin(self, key_id: str) -> bool:
        """Whether a key other than ``key_id`` holds ``admin`` and is not being revoked."""
        stale = time.time() - REVOKING_S
        async for _, raw in self._kv.scan("apikey/"):
            other = orjson.loads(raw)
            if (
                other["id"] != key_id
                and "admin" in other["roles"]
                and other.get("revoking", 0) < stale
            ):
                return True
        return False

    def forget(self, key_id: str | None = None) -> None:
        """Drop cached principals of one key, or of every key."""
        for token, (principal, _) in list(self._cache.items()):
            if key_id is None or principal.key_id == key_id:
                del self._cache[token]

    async def exists(self, token: str) -> bool:
        return await self._kv.get(f"apikeyhash/{hash_key(token)}") is not None

    async def claim_bootstrap(self) -> bool:
        """Whether this process creates the first admin key: of several instances starting on
        one empty shared KV, one wins. A claim whose key never appeared (its process died) can be
        taken over after ``BOOTSTRAP_CLAIM_S``."""
        now = time.time()
        current = await self._kv.get(BOOTSTRAP)
        if current is not None and now - float(current) < BOOTSTRAP_CLAIM_S:
            return False
        return await self._kv.compare_and_set(BOOTSTRAP, current, repr(now).encode())

    async def any(self) -> bool:
        async for _ in self._kv.scan("apikey/"):
            return True
        return False


async def bootstrap_admin(keys: KeyStore, env_key: str | None, key_path: Path) -> str | None:
    """Make sure an admin key exists. Returns a newly generated key (to print once), else None.

    ``TIERGATE_ADMIN_KEY`` is registered as an admin key of tenant ``default`` when set. Otherwise
    an empty key store gets a generated admin key, written to ``key_path`` with mode 0600.
    """
    if env_key:
        if not await keys.exists(env_key):
            await keys.create(DEFAULT_TENANT, ["admin"], "TIERGATE_ADMIN_KEY", token=env_key)
        return None
    if await keys.any() or not await keys.claim_bootstrap():
        return None
    _, token = await keys.create(DEFAULT_TENANT, ["admin"], "bootstrap admin")
    write_secret_file(key_path, token)
    return token


def write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)
