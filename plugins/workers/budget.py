"""How many worker processes a tenant may have at once, across all its functions' pools.

One ``WorkerBudget`` per gateway process is handed to runtimes in ``PluginContext.worker_budget``;
every ``FunctionPool`` draws from it for the tenant of its function. A pool starts a worker only
with a *grant*; the grant comes back when that worker's process has exited, however it exits
(crash, kill at a deadline, idle reaping, unload), so the count is of processes, not of intentions.

When a tenant has spent its grants, a pool with calls waiting first stops the least recently used
idle worker of another pool of that tenant and queues for the grant it frees; pools in that queue
are served first come, first served as grants come back, and a pool that finishes a call while
another pool of its tenant is in that queue stops the worker instead of keeping it idle. Nothing
ever waits for a grant while holding one, so a pool with no workers whose tenant's workers are all
busy elsewhere just waits (its calls until their deadlines), it cannot deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pool import FunctionPool

PER_TENANT = 32
PER_FUNCTION = 8


class WorkerBudget:
    def __init__(self, per_tenant: int = PER_TENANT, per_function: int = PER_FUNCTION) -> None:
        self.per_tenant = per_tenant
        self.per_function = per_function
        self._used: dict[str, int] = {}
        self._pools: dict[str, set[FunctionPool]] = {}
        self._queued: dict[str, dict[FunctionPool, None]] = {}  # insertion-ordered: a fair line

    def in_use(self) -> dict[str, int]:
        """Grants out per tenant: worker processes running or starting (a gauge)."""
        return dict(self._used)

    def join(self, pool: FunctionPool) -> None:
        self._pools.setdefault(pool.tenant, set()).add(pool)

    def leave(self, pool: FunctionPool) -> None:
        pools = self._pools.get(pool.tenant, set())
        pools.discard(pool)
        if not pools:
            self._pools.pop(pool.tenant, None)
        self._queued.get(pool.tenant, {}).pop(pool, None)

    def take(self, pool: FunctionPool, *, evict: bool) -> bool:
        """One grant for ``pool``, if its tenant has one left. Without one, ``evict`` (a call is
        waiting, not a pool topping itself up) stops the least recently used idle worker of
        another pool of the tenant; ``pool`` then queues for the grant that frees."""
        used = self._used.get(pool.tenant, 0)
        if used < self.per_tenant:
            self._used[pool.tenant] = used + 1
            return True
        if evict:
            idle = [p for p in self._pools.get(pool.tenant, ()) if p is not pool and p.idle_since]
            if idle:
                min(idle, key=lambda p: p.idle_since or 0.0).stop_idle()
        return False

    def queue(self, pool: FunctionPool) -> None:
        """``pool`` has calls that no worker is coming for: give it the next grant that frees."""
        self._queued.setdefault(pool.tenant, {})[pool] = None

    def queued_elsewhere(self, pool: FunctionPool) -> bool:
        """Whether another pool of the tenant is queued for a grant (then an idle worker of
        ``pool`` is better stopped, to free one)."""
        line = self._queued.get(pool.tenant)
        return bool(line) and any(p is not pool and p.starved for p in list(line or ()))

    def give_back(self, tenant: str) -> None:
        """A worker exited (or never started): its grant goes to the first pool in line that
        still needs one, which goes to the back of the line if it needs more."""
        self._used[tenant] -= 1
        line = self._queued.get(tenant, {})
        while line:
            pool = next(iter(line))
            del line[pool]
            if pool.starved:
                self._used[tenant] += 1
                pool.add_worker()
                if pool.starved:
                    line[pool] = None
                break
        if not self._used[tenant]:
            del self._used[tenant]
        if not line:
            self._queued.pop(tenant, None)
