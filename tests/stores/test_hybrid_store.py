"""Hybrid code storage over every combination of its flags: never loses the only copy."""

from __future__ import annotations

import itertools

import pytest
from conftest import run

from storage.hybrid import HybridCodeStore
from storage.objects.base import ObjectNotFound

FLAGS = list(itertools.product([True, False], repeat=3))


BACKENDS = [("local", "sqlite"), ("s3", "redis")]


@pytest.fixture(
    params=[(b, f) for b in BACKENDS for f in FLAGS],
    ids=lambda p: "{}+{}:prefer={},write={},auto={}".format(*p[0], *p[1]),
)
def make_hybrid(request):
    (objects, kv), (prefer, write, auto) = request.param
    make_objects = request.getfixturevalue(f"{objects}_objects")
    make_kv = request.getfixturevalue(f"{kv}_kv")

    def make():
        return HybridCodeStore(
            make_objects(), make_kv(), prefer_object=prefer, write_to_object=write,
            auto_migrate=auto,
        )

    return make


async def _close(store):
    await store.objects.close()
    await store.kv.close()


def test_round_trip_and_placement(make_hybrid):
    async def scenario():
        store = make_hybrid()
        info = await store.put("code/t/f/v1/source", b"payload")
        assert info.size == 7
        assert await store.get("code/t/f/v1/source") == b"payload"
        where = await store.locate("code/t/f/v1/source")
        if store.write_to_object:
            assert where["object"]
        else:
            assert where["kv"] and where["object"] == store.auto_migrate
        with pytest.raises(ObjectNotFound):
            await store.get("code/t/f/v9/source")
        await store.delete_prefix("code/t/f/")
        assert await store.locate("code/t/f/v1/source") == {"object": False, "kv": False}
        await _close(store)

    run(scenario())


def test_falls_back_to_the_other_store(make_hybrid):
    async def scenario():
        store = make_hybrid()
        await store.objects.put("only/object", b"o")
        await store.kv.set("blob/only/kv", _packed(b"k"))
        assert await store.get("only/object") == b"o"
        assert await store.get("only/kv") == b"k"
        await _close(store)

    run(scenario())


def test_migrate_then_cleanup(make_hybrid):
    async def scenario():
        store = make_hybrid()
        for version in (1, 2):
            await store.kv.set(f"blob/code/t/f/v{version}/source", _packed(b"v%d" % version))
        assert await store.migrate("code/t/f/") == "migrated"
        assert await store.migrate("code/t/f/") == "already_migrated"
        assert await store.objects.get("code/t/f/v2/source") == b"v2"
        result = await store.cleanup_kv("code/t/f/")
        assert sorted(result.removed) == ["code/t/f/v1/source", "code/t/f/v2/source"]
        assert result.kept == []
        assert await store.get("code/t/f/v1/source") == b"v1"
        await _close(store)

    run(scenario())


def test_cleanup_never_deletes_the_only_good_copy(make_hybrid):
    async def scenario():
        store = make_hybrid()
        await store.kv.set("blob/code/t/f/v1/source", _packed(b"good"))
        await store.kv.set("blob/code/t/f/v2/source", _packed(b"only in kv"))
        await store.objects.put("code/t/f/v1/source", b"corrupted")
        result = await store.cleanup_kv("code/t/f/")
        assert sorted(result.kept) == ["code/t/f/v1/source", "code/t/f/v2/source"]
        assert result.removed == []
        assert await store.kv.get("blob/code/t/f/v2/source") is not None
        await _close(store)

    run(scenario())


def _packed(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(data).hexdigest().encode() + data
