"""The work queue on Redis: a stream read by one consumer group, and the jobs beside it.

- ``queue-meta`` (hash): job id → ``deliveries due entry kind``, where ``entry`` is the job's
  stream entry while it is leased (``-`` while it waits); ``queue-bodies`` (hash): job id → body.
- ``queue-delayed`` (sorted set): the jobs waiting for their due, by due.
- ``queue-stream`` and its group ``gateways``: a job taken is added to the stream and read by the
  taking consumer, so the group's pending entries say which consumer holds which job (``XPENDING``
  shows them); ``ack`` and ``release`` acknowledge and delete the entry.
- ``queue-leases`` (sorted set): the leased jobs, by when their lease ends.
- ``queue-job-groups`` (hash): job id → group, for the jobs put in one; ``queue-group-depths``
  (hash): group → how many jobs of it the queue holds, the field gone at 0.

Leases end at a time, as in SQLite, not by the entry's idle time as ``XAUTOCLAIM`` would see it:
a consumer taking with a short lease must not reclaim a job another consumer took with a long
one, and ``extend`` renews for the ``lease_s`` it is given. A job whose lease ran out is claimed
(``XCLAIM``) by the next consumer that takes; ``take`` collects those before it reads new ones,
so oldest due first holds within each of the two (SQLite sorts them together). ``extend`` checks
in the pending entries that the caller still holds the job, and resets the entry's idle time, so
``XPENDING`` shows the heartbeat.

Every change is one Lua script, atomic on the server: several gateway instances share the queue.
A job is in exactly one of ``queue-delayed`` and ``queue-leases``, so ``queue-meta``'s length is
the depth and the delayed set alone answers ``next_due``.

A group's share is checked by a count kept beside the jobs rather than by counting them: the put
script reads one hash field, however deep the queue, and the same scripts that add and remove
jobs keep it (put adds one, ack takes one off, only for a job that had a group, never below 0),
so it cannot drift from the jobs. The group lives in a hash of its own, not in the job's header,
so a group may be any string and the jobs of a queue made before groups still read as they are
(without one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from ..redis_client import NAMESPACE, connect, guarded, release
from .base import Job, group_full, new_job_id, queue_full

KEYS = [
    NAMESPACE + "queue-meta",
    NAMESPACE + "queue-bodies",
    NAMESPACE + "queue-delayed",
    NAMESPACE + "queue-leases",
    NAMESPACE + "queue-stream",
    NAMESPACE + "queue-job-groups",
    NAMESPACE + "queue-group-depths",
]
GROUP = "gateways"
# Every script takes KEYS above and the group as ARGV[1].
PRELUDE = """
local meta, bodies, delayed, leases, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_groups, group_depths = KEYS[6], KEYS[7]
local group = ARGV[1]
local function fields(id)
  local header = redis.call('HGET', meta, id)
  if not header then return nil end
  return string.match(header, '^(%d+) (%S+) (%S+) (.*)$')
end
local function header(deliveries, due, entry, kind)
  return deliveries .. ' ' .. due .. ' ' .. entry .. ' ' .. kind
end
local function unlease(id, entry)
  if redis.call('ZREM', leases, id) == 1 then
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
  end
end
"""
# ARGV[2] the bound, [3] the id, [4] due, [5] kind, [6] body, [7] the group's bound ('' for
# none), [8] the group when there is one; 1 when added, 0 when the queue is full, -1 when the
# group's share is
PUT = """
local grp, grp_bound = ARGV[8], tonumber(ARGV[7])
if grp and grp_bound and tonumber(redis.call('HGET', group_depths, grp) or 0) >= grp_bound then
  return -1
end
if redis.call('HLEN', meta) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', meta, ARGV[3], header(0, ARGV[4], '-', ARGV[5]))
redis.call('HSET', bodies, ARGV[3], ARGV[6])
redis.call('ZADD', delayed, ARGV[4], ARGV[3])
if grp then
  redis.call('HSET', job_groups, ARGV[3], grp)
  redis.call('HINCRBY', group_depths, grp, 1)
end
return 1
"""
# ARGV[2] the consumer, [3] limit, [4] now, [5] when the new leases end; {id, header, body}s
TAKE = """
local consumer, limit, now, lease_end = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local taken = {}
local function deliver(id, entry)
  local deliveries, due, _, kind = fields(id)
  local leased = header(deliveries + 1, due, entry, kind)
  redis.call('HSET', meta, id, leased)
  redis.call('ZADD', leases, lease_end, id)
  taken[#taken + 1] = {id, leased, redis.call('HGET', bodies, id)}
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)) do
  local _, _, entry = fields(id)
  redis.call('XCLAIM', stream, group, consumer, 0, entry)
  deliver(id, entry)
end
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit - #taken)
for _, id in ipairs(due) do
  redis.call('XADD', stream, '*', 'job', id)
  redis.call('ZREM', delayed, id)
end
if #due > 0 then
  local read = redis.call(
    'XREADGROUP', 'GROUP', group, consumer, 'COUNT', #due, 'STREAMS', stream, '>')
  for _, entry in ipairs(read[1][2]) do deliver(entry[2][2], entry[1]) end
end
return taken
"""
# ARGV[2] the consumer, [3] when the leases end, [4…] the job ids
EXTEND = """
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', leases, id) then
    local _, _, entry = fields(id)
    local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
    if pending[1] and pending[1][2] == ARGV[2] then
      redis.call('XCLAIM', stream, group, ARGV[2], 0, entry, 'JUSTID')
      redis.call('ZADD', leases, ARGV[3], id)
    end
  end
end
"""
# ARGV[2] the id
ACK = """
local id = ARGV[2]
local _, _, entry = fields(id)
if not entry then return 0 end
unlease(id, entry)
redis.call('ZREM', delayed, id)
redis.call('HDEL', meta, id)
redis.call('HDEL', bodies, id)
local grp = redis.call('HGET', job_groups, id)
if grp then
  redis.call('HDEL', job_groups, id)
  if redis.call('HINCRBY', group_depths, grp, -1) <= 0 then
    redis.call('HDEL', group_depths, grp)
  end
end
return 1
"""
# ARGV[2] the id, [3] the new due, [4] '1' when [5] is a new body
RELEASE = """
local id = ARGV[2]
local _, _, entry, kind = fields(id)
if not entry then return 0 end
unlease(id, entry)
redis.call('HSET', meta, id, header(0, ARGV[3], '-', kind))
if ARGV[4] == '1' then redis.call('HSET', bodies, id, ARGV[5]) end
redis.call('ZADD', delayed, ARGV[3], id)
return 1
"""


class RedisWorkQueue:
    def __init__(self, url: str, *, bound: int) -> None:
        self._url = url
        self._redis = connect(url)
        self._bound = bound
        script = self._redis.register_script
        self._put = script(PRELUDE + PUT)
        self._take = script(PRELUDE + TAKE)
        self._extend = script(PRELUDE + EXTEND)
        self._ack = script(PRELUDE + ACK)
        self._release = script(PRELUDE + RELEASE)

    async def put(
        self,
        kind: str,
        body: bytes,
        *,
        due: float | None = None,
        group: str | None = None,
        group_bound: int | None = None,
    ) -> str:
        job_id = new_job_id()
        when = time.time() if due is None else due
        share = "" if group_bound is None else group_bound
        args = [GROUP, self._bound, job_id, when, kind, body, share]
        if group is not None:
            args.append(group)
        added = await guarded(self._put, keys=KEYS, args=args)
        if added == -1:
            raise group_full(cast(str, group), cast(int, group_bound))
        if not added:
            raise queue_full(self._bound)
        return job_id

    async def take(self, consumer: str, *, limit: int, lease_s: float) -> list[Job]:
        now = time.time()
        args = [GROUP, consumer, limit, now, now + lease_s]
        taken = cast("list[list[bytes]]", await guarded(self._take, keys=KEYS, args=args))
        jobs = [_job(job_id, header, body) for job_id, header, body in taken]
        return sorted(jobs, key=lambda job: (job.due, job.job_id))

    async def extend(self, consumer: str, job_ids: Sequence[str], lease_s: float) -> None:
        args = [GROUP, consumer, time.time() + lease_s, *job_ids]
        await guarded(self._extend, keys=KEYS, args=args)

    async def ack(self, job_id: str) -> None:
        await guarded(self._ack, keys=KEYS, args=[GROUP, job_id])

    async def release(self, job_id: str, *, due: float, body: bytes | None = None) -> None:
        new_body = ["0"] if body is None else ["1", body]
        await guarded(self._release, keys=KEYS, args=[GROUP, job_id, due, *new_body])

    async def depth(self) -> int:
        return cast(int, await guarded(self._redis.hlen, KEYS[0]))

    async def group_depth(self, group: str) -> int:
        held = cast("bytes | None", await guarded(self._redis.hget, KEYS[6], group))
        return int(held or 0)

    async def next_due(self) -> float | None:
        first = await guarded(self._redis.zrange, KEYS[2], 0, 0, withscores=True)
        earliest = cast("list[tuple[bytes, float]]", first)
        return earliest[0][1] if earliest else None

    async def close(self) -> None:
        await release(self._url)


def _job(job_id: bytes, header: bytes, body: bytes) -> Job:
    """A job from what the take script returns (bytes: the client does not decode replies)."""
    deliveries, due, _entry, kind = header.split(b" ", 3)
    return Job(job_id.decode(), kind.decode(), body, int(deliveries), float(due))
