"""The KV contract, run against every backend."""

from __future__ import annotations

import asyncio

import pytest
from conftest import run

from storage.errors import StorageUnavailable


@pytest.fixture(params=["sqlite", "redis"])
def make_kv(request):
    return request.getfixturevalue(f"{request.param}_kv")


def test_get_set_delete(make_kv):
    async def scenario():
        kv = make_kv()
        assert await kv.get("a") is None
        await kv.set("a", b"1")
        await kv.set("a", b"2")
        assert await kv.get("a") == b"2"
        await kv.delete("a")
        await kv.delete("a")
        assert await kv.get("a") is None
        await kv.ping()
        await kv.close()

    run(scenario())


def test_compare_and_set(make_kv):
    async def scenario():
        kv = make_kv()
        assert await kv.compare_and_set("k", None, b"v1")
        assert not await kv.compare_and_set("k", None, b"v2")
        assert not await kv.compare_and_set("k", b"wrong", b"v2")
        assert await kv.compare_and_set("k", b"v1", b"v2")
        assert await kv.get("k") == b"v2"
        await kv.close()

    run(scenario())


def test_concurrent_increments_are_never_lost(make_kv):
    async def scenario():
        kv = make_kv()
        await kv.set("counter", b"0")

        async def increment():
            while True:
                old = await kv.get("counter")
                if await kv.compare_and_set("counter", old, str(int(old) + 1).encode()):
                    return

        await asyncio.gather(*(increment() for _ in range(50)))
        assert await kv.get("counter") == b"50"
        await kv.close()

    run(scenario())


def test_scan_is_ordered_and_exact(make_kv):
    async def scenario():
        kv = make_kv()
        for key in ["a%1", "a_2", "a/3", "ab", "b", "a", "a%"]:
            await kv.set(key, key.encode())
        assert [k async for k, _ in kv.scan("a%")] == ["a%", "a%1"]
        assert [k async for k, _ in kv.scan("a_")] == ["a_2"]
        assert [k async for k, _ in kv.scan("a")] == ["a", "a%", "a%1", "a/3", "a_2", "ab"]
        assert [v async for _, v in kv.scan("b")] == [b"b"]
        many = [f"m/{i:05d}" for i in range(1200)]
        for key in many:
            await kv.set(key, b"x")
        assert [k async for k, _ in kv.scan("m/")] == many
        await kv.close()

    run(scenario())


def test_persists_across_reopen(make_kv):
    run(_write_then_close(make_kv))

    async def read():
        kv = make_kv()
        value = await kv.get("durable")
        await kv.close()
        return value

    assert run(read()) == b"yes"


async def _write_then_close(make_kv):
    kv = make_kv()
    await kv.set("durable", b"yes")
    await kv.close()


def test_sqlite_faults_are_storage_unavailable(tmp_path):
    from storage.kv.sqlite import SQLiteKV

    (tmp_path / "db").mkdir()

    async def scenario():
        kv = SQLiteKV(tmp_path / "db")  # a directory where the database file should be
        with pytest.raises(StorageUnavailable):
            await kv.get("x")
        await kv.close()

    run(scenario())


def test_only_one_process_claims_the_admin_bootstrap(make_kv, monkeypatch):
    """What keeps instances starting together on one empty store from each creating an admin
    key: the claim is a compare-and-set, so exactly one of several concurrent claims wins."""
    import gateway.security.auth as auth

    async def scenario():
        kv = make_kv()
        stores = [auth.KeyStore(kv) for _ in range(8)]
        won = await asyncio.gather(*(s.claim_bootstrap() for s in stores))
        assert sum(won) == 1
        assert not await stores[0].claim_bootstrap()
        monkeypatch.setattr(auth, "BOOTSTRAP_CLAIM_S", 0.0)  # a claim whose key never came
        assert await stores[1].claim_bootstrap()
        await kv.close()

    run(scenario())


def test_one_token_registered_by_several_processes_at_once_is_one_key(make_kv):
    """Instances starting together with one ``TIERGATE_ADMIN_KEY`` register it once."""
    import gateway.security.auth as auth

    async def scenario():
        kv = make_kv()
        stores = [auth.KeyStore(kv) for _ in range(6)]
        made = await asyncio.gather(
            *(s.create("default", ["admin"], "env", token="tg_same-token") for s in stores)
        )
        assert len({record["id"] for record, _ in made}) == 1
        assert len(await stores[0].list()) == 1
        assert (await stores[0].authenticate("tg_same-token")).key_id == made[0][0]["id"]
        await kv.close()

    run(scenario())
