"""The work queue interface. Backends raise only ``StorageUnavailable`` and ``QueueFull``.

Delivery is at least once, by lease: ``take`` leases jobs to a consumer (a gateway process) for a
while, ``ack`` ends a job, ``release`` puts it back for a retry. A consumer that dies or hangs stops
renewing its leases (``extend``); when one runs out the job goes to whichever consumer takes next,
with ``deliveries`` one higher, so the gateway can tell a job that may have half-run before.

One bound for the whole queue would let one tenant fill it and so refuse every other tenant's
work: a job may therefore be ``put`` in a group (a tenant) with a bound of its own, the group's
share. The group stays with the job until ``ack``, so a retry (``release``) keeps its slot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import QueueFull


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    """Assigned by the queue; kept across ``release``."""
    kind: str
    """What the job is (``execution``, ``callback``…): the gateway's word, opaque here."""
    body: bytes
    """The gateway's payload (JSON), opaque here."""
    deliveries: int
    """1 on the first delivery after ``put`` or ``release``, one more on each delivery after a
    lease ran out."""
    due: float
    """Epoch seconds from which it is (or was) deliverable."""


class WorkQueue(Protocol):
    async def put(
        self,
        kind: str,
        body: bytes,
        *,
        due: float | None = None,
        group: str | None = None,
        group_bound: int | None = None,
    ) -> str:
        """Add a job, deliverable from ``due`` (default now); return its id.

        ``QueueFull`` when the queue already holds its bound of jobs (delayed and leased ones
        count), checked atomically with the add so processes adding at once never overfill it.
        A job in a ``group`` counts against that bound and also, when a ``group_bound`` is given,
        against the group's share: ``QueueFull`` naming the group (extensions ``group`` and
        ``group_bound``) when the queue already holds ``group_bound`` jobs of the group, checked
        in the same atomic step, so a tenant that floods the queue is refused on its own while
        the others still get in. The share is the caller's to choose on each put (it may depend
        on the tenant's plan); ``group_bound`` without a ``group`` bounds nothing.
        """

    async def take(self, consumer: str, *, limit: int, lease_s: float) -> list[Job]:
        """Up to ``limit`` jobs that are due and not leased, oldest due first, each now leased to
        ``consumer`` for ``lease_s``; a job whose lease ran out is delivered again, to any
        consumer. Never waits: ``[]`` when nothing is due."""

    async def extend(self, consumer: str, job_ids: Sequence[str], lease_s: float) -> None:
        """Renew for ``lease_s`` from now the leases ``consumer`` still holds on these jobs (the
        heartbeat of long work); a job leased to another consumer meanwhile is left to it."""

    async def ack(self, job_id: str) -> None:
        """The job is done and leaves the queue, freeing its place under the bound and in its
        group's share; absent ids are not an error."""

    async def release(self, job_id: str, *, due: float, body: bytes | None = None) -> None:
        """Put a job back, deliverable again from ``due`` (a retry after a backoff), with a new
        ``body`` if one is given. It keeps its id, its group and its place under the bound and
        in the group's share: a retry is not new work, and must not be refused for want of room.
        Its next delivery counts as the first. Absent ids are ignored (the job was acked
        meanwhile)."""

    async def depth(self) -> int:
        """How many jobs the queue holds, delayed and leased ones included."""

    async def group_depth(self, group: str) -> int:
        """How many jobs of ``group`` the queue holds, delayed and leased ones included: the
        share in use, what ``put`` compares with ``group_bound``. 0 for a group never seen."""

    async def next_due(self) -> float | None:
        """The earliest ``due`` of the jobs not leased, for a consumer to sleep until; ``None``
        when there is none. Leases that run out are not foreseen: a consumer also takes at
        least every lease period to collect those."""

    async def close(self) -> None:
        """Release connections and threads."""


def new_job_id() -> str:
    """Unix milliseconds then 64 random bits in hex: ids sort by when they were made, and the
    processes sharing a queue never make the same one. (``gateway.ids`` is above storage.)"""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


def queue_full(bound: int) -> QueueFull:
    return QueueFull(f"The work queue holds its bound of {bound} jobs", bound=bound)


def group_full(group: str, group_bound: int) -> QueueFull:
    return QueueFull(
        f"The share of the work queue for group {group!r} is full: it holds its bound of "
        f"{group_bound} jobs",
        group=group,
        group_bound=group_bound,
    )
