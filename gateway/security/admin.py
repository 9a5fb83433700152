"""Changes to who may do what — API keys, tenant secrets, tenant rate limits — one call each.

Each call makes the change, tells every gateway process when they cache what changed (revoked
keys, rate limits; secrets are read afresh at every call, so nothing caches them), and writes the
audit entry naming the principal who asked. Callers parse and check their input first; what is
checked here is what only the stores can tell (an unknown key, the last admin key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.security.audit import AuditLog
from gateway.security.auth import KeyStore, Principal
from gateway.security.ratelimit import Rate, RateLimiter
from gateway.security.secrets import SecretStore


class SecurityChanges(Protocol):
    """How a change reaches every process's caches (``gateway/cluster/coherence.py``)."""

    async def key_revoked(self, key_id: str) -> None: ...

    async def rate_changed(self, tenant: str) -> None: ...


class SecurityAdmin:
    def __init__(
        self,
        keys: KeyStore,
        secrets: SecretStore,
        ratelimit: RateLimiter,
        changes: SecurityChanges,
        audit: AuditLog,
    ) -> None:
        self._keys = keys
        self._secrets = secrets
        self._ratelimit = ratelimit
        self._changes = changes
        self._audit = audit

    async def create_key(
        self, principal: Principal, tenant: str, roles: Sequence[str], name: str
    ) -> tuple[dict[str, Any], str]:
        """A new key's record and its token (the only time the token is seen)."""
        record, token = await self._keys.create(tenant, roles, name)
        await self._audit.record(
            principal, "key.create", record["id"], tenant=tenant, roles=list(roles)
        )
        return record, token

    async def revoke_key(self, principal: Principal, key_id: str) -> dict[str, Any]:
        """The revoked key's public record; 409 ``last_admin_key`` for the last admin key."""
        record = await self._keys.revoke(key_id)
        await self._changes.key_revoked(record["id"])
        await self._audit.record(principal, "key.revoke", record["id"], tenant=record["tenant"])
        return record

    async def put_secret(self, principal: Principal, tenant: str, name: str, value: str) -> None:
        await self._secrets.put(tenant, name, value, principal.key_id)
        await self._audit.record(principal, "secret.put", f"{tenant}/{name}")

    async def delete_secret(self, principal: Principal, tenant: str, name: str) -> None:
        await self._secrets.delete(tenant, name)
        await self._audit.record(principal, "secret.delete", f"{tenant}/{name}")

    async def set_rate_limit(self, principal: Principal, tenant: str, rate: Rate) -> None:
        """The tenant's own rate and burst, in place of the gateway's default."""
        await self._ratelimit.set_override(tenant, rate)
        await self._changes.rate_changed(tenant)
        await self._audit.record(
            principal, "ratelimit.put", tenant, rate=rate.rate, burst=rate.burst
        )

    async def clear_rate_limit(self, principal: Principal, tenant: str) -> None:
        """Back to the gateway's default rate for the tenant."""
        await self._ratelimit.set_override(tenant, None)
        await self._changes.rate_changed(tenant)
        await self._audit.record(principal, "ratelimit.delete", tenant)
