"""Execution records on Redis: each record a string (JSON), an ordered index per function for
``GET /functions/{id}/logs`` (execution ids sort by time, so a lexicographic sorted set), one
index of finished records by end time for the retention purge, and one of live records (pending or
running) for the sweep of executions whose gateway died. The live index may hold ids that have
finished meanwhile; ``live`` checks each record and drops those."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import orjson

from ..redis_client import NAMESPACE, connect, guarded, release
from .base import LIVE_STATUSES, EncodedRecord, Record

ENDED = NAMESPACE + "exec-ended"
LIVE = NAMESPACE + "exec-live"
# KEYS[1] the record; ARGV[1] the new JSON; ARGV[2] "1" when it is finished. A finished record is
# never replaced by an unfinished one (a late write from another instance).
PUT = """
if ARGV[2] == '0' then
  local current = redis.call('GET', KEYS[1])
  if current and cjson.decode(current)['ended_at'] ~= cjson.null then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def _record(execution_id: str) -> str:
    return f"{NAMESPACE}exec/{execution_id}"


def _index(tenant: str, function_id: str) -> str:
    return f"{NAMESPACE}exec-by-fn/{tenant}/{function_id}"


class RedisExecutionStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = connect(url)
        self._put = self._redis.register_script(PUT)

    async def put_many(self, records: Sequence[Record]) -> None:
        await self.put_encoded([EncodedRecord.of(record) for record in records])

    async def put_encoded(self, records: Sequence[EncodedRecord]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for record in records:
            execution_id = record.execution_id
            finished = "0" if record.ended_at is None else "1"
            await self._put(keys=[_record(execution_id)], args=[record.body, finished], client=pipe)
            pipe.zadd(_index(record.tenant, record.function_id), {execution_id: 0})
            if record.ended_at is not None:
                pipe.zadd(ENDED, {execution_id: record.ended_at})
            if record.status in LIVE_STATUSES:
                pipe.zadd(LIVE, {execution_id: 0})
            else:
                pipe.zrem(LIVE, execution_id)
        await guarded(pipe.execute)

    async def get(self, execution_id: str) -> Record | None:
        raw = await guarded(self._redis.get, _record(execution_id))
        return None if raw is None else orjson.loads(raw)

    async def list_for_function(
        self, tenant: str, function_id: str, *, limit: int, before: str | None = None
    ) -> list[Record]:
        high = f"({before}" if before else "+"
        ids = _ids(
            await guarded(
                self._redis.zrevrangebylex,
                _index(tenant, function_id),
                high,
                "-",
                start=0,
                num=limit,
            )
        )
        if not ids:
            return []
        values = await guarded(self._redis.mget, [_record(i.decode()) for i in ids])
        return [orjson.loads(v) for v in values if v is not None]

    async def delete_for_function(self, tenant: str, function_id: str) -> int:
        ids = _ids(await guarded(self._redis.zrange, _index(tenant, function_id), 0, -1))
        pipe = self._redis.pipeline(transaction=False)
        for execution_id in ids:
            pipe.delete(_record(execution_id.decode()))
            pipe.zrem(ENDED, execution_id)
            pipe.zrem(LIVE, execution_id)
        pipe.delete(_index(tenant, function_id))
        await guarded(pipe.execute)
        return len(ids)

    async def live(self, limit: int) -> list[Record]:
        ids = _ids(await guarded(self._redis.zrangebylex, LIVE, "-", "+", start=0, num=limit))
        if not ids:
            return []
        values = await guarded(self._redis.mget, [_record(i.decode()) for i in ids])
        found, gone = [], []
        for execution_id, raw in zip(ids, values, strict=True):
            record = None if raw is None else orjson.loads(raw)
            if record is not None and record["status"] in LIVE_STATUSES:
                found.append(record)
            else:
                gone.append(execution_id)
        if gone:
            await guarded(self._redis.zrem, LIVE, *gone)
        return found

    async def purge(self, ended_before: float) -> int:
        ids = _ids(await guarded(self._redis.zrangebyscore, ENDED, "-inf", f"({ended_before}"))
        if not ids:
            return 0
        records = await guarded(self._redis.mget, [_record(i.decode()) for i in ids])
        pipe = self._redis.pipeline(transaction=False)
        for execution_id, raw in zip(ids, records, strict=True):
            pipe.delete(_record(execution_id.decode()))
            pipe.zrem(ENDED, execution_id)
            if raw is not None:
                record = orjson.loads(raw)
                pipe.zrem(_index(record["tenant"], record["function_id"]), execution_id)
        await guarded(pipe.execute)
        return len(ids)

    async def ping(self) -> None:
        await guarded(self._redis.ping)

    async def close(self) -> None:
        await release(self._url)


def _ids(reply: object) -> list[bytes]:
    """A range of execution ids: bytes, since the client is made without ``decode_responses``
    (redis-py's types cannot tell)."""
    return cast("list[bytes]", reply)
