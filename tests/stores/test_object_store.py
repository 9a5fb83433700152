"""The object-store contract, run against every backend."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from conftest import run

from storage.errors import StorageUnavailable
from storage.objects.base import ObjectNotFound


@pytest.fixture(params=["local", "s3"])
def make_store(request):
    return request.getfixturevalue(f"{request.param}_objects")


async def _collect(store, prefix):
    return [key async for key in store.list(prefix)]


def test_round_trip_head_list_delete(make_store):
    async def scenario():
        store = make_store()
        info = await store.put("code/t/fn/v1/source", b"hello")
        assert info.size == 5 and info.sha256 == hashlib.sha256(b"hello").hexdigest()
        assert await store.get("code/t/fn/v1/source") == b"hello"
        assert (await store.head("code/t/fn/v1/source")) == info
        await store.put("code/t/fn/v2/source", b"")
        await store.put("code/t/other/v1/source", os.urandom(1000))
        assert await _collect(store, "code/t/fn/") == ["code/t/fn/v1/source", "code/t/fn/v2/source"]
        assert await store.get("code/t/fn/v2/source") == b""
        await store.delete("code/t/fn/v1/source")
        await store.delete("code/t/fn/v1/source")  # idempotent
        with pytest.raises(ObjectNotFound):
            await store.get("code/t/fn/v1/source")
        assert await store.head("code/t/fn/v1/source") is None
        await store.ping()
        await store.close()

    run(scenario())


def test_overwrite_and_large_binary(make_store):
    async def scenario():
        store = make_store()
        big = os.urandom(10 * 1024 * 1024)
        await store.put("a/b", b"first")
        await store.put("a/b", big)
        assert await store.get("a/b") == big
        await store.close()

    run(scenario())


def test_readers_never_see_a_partial_write(make_store):
    async def scenario():
        store = make_store()
        old, new = b"o" * 4_000_000, b"n" * 4_000_000
        await store.put("x/y", old)
        seen = set()

        async def read_many():
            for _ in range(40):
                seen.add(hashlib.sha256(await store.get("x/y")).hexdigest())

        await asyncio.gather(read_many(), store.put("x/y", new), read_many())
        assert seen <= {hashlib.sha256(old).hexdigest(), hashlib.sha256(new).hexdigest()}
        await store.close()

    run(scenario())


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", "a/b c", "", "a/.."])
def test_bad_keys_are_refused(make_store, key):
    async def scenario():
        store = make_store()
        with pytest.raises(ValueError):
            await store.put(key, b"x")
        await store.close()

    run(scenario())


def test_local_faults_are_storage_unavailable(tmp_path):
    from storage.objects.local import LocalObjectStore

    async def scenario():
        store = LocalObjectStore(tmp_path / "objects")
        (tmp_path / "objects" / "blocked").write_text("a file where a directory must go")
        with pytest.raises(StorageUnavailable):
            await store.put("blocked/inside", b"x")
        await store.close()

    run(scenario())
