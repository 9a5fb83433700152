"""The KV on Redis. Keys live under the ``tiergate:`` namespace; compare-and-set is one Lua
script (atomic on the server); scans are sorted here, since Redis returns them in no order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from ..redis_client import NAMESPACE, connect, guarded, release

# KEYS[1] key; ARGV[1] "1" when the key must be absent, else "0"; ARGV[2] expected; ARGV[3] new
CAS = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""
GLOB = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})


class RedisKV:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = connect(url)
        self._cas = self._redis.register_script(CAS)

    async def get(self, key: str) -> bytes | None:
        value = await guarded(self._redis.get, NAMESPACE + key)
        return cast("bytes | None", value)  # bytes: the client does not decode responses

    async def set(self, key: str, value: bytes) -> None:
        await guarded(self._redis.set, NAMESPACE + key, value)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        absent = "1" if expected is None else "0"
        done = await guarded(
            self._cas, keys=[NAMESPACE + key], args=[absent, expected or b"", value]
        )
        return bool(done)

    async def delete(self, key: str) -> None:
        await guarded(self._redis.delete, NAMESPACE + key)

    async def scan(self, prefix: str) -> AsyncIterator[tuple[str, bytes]]:
        pattern = NAMESPACE + prefix.translate(GLOB) + "*"
        keys: list[bytes] = []
        cursor = 0
        while True:
            cursor, batch = await guarded(self._redis.scan, cursor, match=pattern, count=1000)
            keys.extend(cast("list[bytes]", batch))
            if cursor == 0:
                break
        names = sorted(k.decode() for k in keys)
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            values = cast("list[bytes | None]", await guarded(self._redis.mget, chunk))
            for name, value in zip(chunk, values, strict=True):
                if value is not None:
                    yield name[len(NAMESPACE) :], value

    async def ping(self) -> None:
        await guarded(self._redis.ping)

    async def close(self) -> None:
        await release(self._url)
