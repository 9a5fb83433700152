"""Tenant secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The master key comes from ``TIERGATE_SECRET_KEY`` or is generated once into
``<data-dir>/secret.key`` (mode 0600). Values leave this module only through ``resolve``, which the
invoker calls for the names a function's manifest lists, for the duration of one call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from gateway.errors import BadRequest, SecretNotFound, TiergateError
from gateway.security.auth import write_secret_file
from gateway.times import iso
from storage.kv.base import KV

MAX_VALUE_BYTES = 64 * 1024


def master_key(configured: str | None, key_path: Path) -> bytes:
    """A Fernet key: the configured one (a Fernet key, or any passphrase hashed to one), else the
    key file, else a new key written to the key file."""
    if configured:
        try:
            raw = base64.urlsafe_b64decode(configured.encode())
            if len(raw) == 32:
                return configured.encode()
        except (binascii.Error, ValueError):
            pass
        return base64.urlsafe_b64encode(hashlib.sha256(configured.encode()).digest())
    if key_path.exists():
        return key_path.read_text().strip().encode()
    key = Fernet.generate_key()
    write_secret_file(key_path, key.decode())
    return key


class SecretStore:
    """``secret/<tenant>/<name>`` → encrypted value plus when it was set (and by whom)."""

    def __init__(self, kv: KV, key: bytes) -> None:
        self._kv = kv
        self._fernet = Fernet(key)

    async def put(self, tenant: str, name: str, value: str, set_by: str) -> None:
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise BadRequest(f"a secret value may hold at most {MAX_VALUE_BYTES} bytes")
        record = {
            "value": self._fernet.encrypt(value.encode()).decode(),
            "updated_at": time.time(),
            "updated_by": set_by,
        }
        await self._kv.set(_key(tenant, name), orjson.dumps(record))

    async def delete(self, tenant: str, name: str) -> None:
        if await self._kv.get(_key(tenant, name)) is None:
            raise SecretNotFound(f"tenant {tenant!r} has no secret {name!r}")
        await self._kv.delete(_key(tenant, name))

    async def names(self, tenant: str) -> list[dict[str, str | None]]:
        found = []
        async for key, raw in self._kv.scan(f"secret/{tenant}/"):
            record = orjson.loads(raw)
            found.append({"name": key.rsplit("/", 1)[1], "updated_at": iso(record["updated_at"])})
        return found

    async def missing(self, tenant: str, names: Iterable[str]) -> list[str]:
        return [n for n in names if await self._kv.get(_key(tenant, n)) is None]

    async def resolve(self, tenant: str, names: tuple[str, ...]) -> dict[str, str]:
        """The values of ``names``; a name that is not set is left out (the code sees none)."""
        values = {}
        for name in names:
            raw = await self._kv.get(_key(tenant, name))
            if raw is None:
                continue
            try:
                values[name] = self._fernet.decrypt(orjson.loads(raw)["value"]).decode()
            except InvalidToken:
                raise TiergateError(
                    f"secret {name!r} cannot be decrypted: TIERGATE_SECRET_KEY changed since it "
                    "was set; set it again"
                ) from None
        return values


def _key(tenant: str, name: str) -> str:
    return f"secret/{tenant}/{name}"
