"""The execution-record contract, run against every backend."""

from __future__ import annotations

import pytest
from conftest import run


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request):
    return request.getfixturevalue(f"{request.param}_executions")


def record(execution_id, function_id="fn", tenant="t", status="completed", ended_at=100.0):
    return {
        "execution_id": execution_id,
        "tenant": tenant,
        "function_id": function_id,
        "status": status,
        "started_at": 50.0,
        "ended_at": ended_at,
        "output": {"id": execution_id},
        "logs": [{"message": "x"}],
    }


def test_put_get_replace_list(make_store):
    async def scenario():
        store = make_store()
        await store.put_many([record(f"id{i}") for i in range(5)] + [record("zz", function_id="g")])
        assert (await store.get("id3"))["output"] == {"id": "id3"}
        assert await store.get("nope") is None
        await store.put_many([{**record("id3"), "status": "failed"}])
        assert (await store.get("id3"))["status"] == "failed"
        page = await store.list_for_function("t", "fn", limit=2)
        assert [r["execution_id"] for r in page] == ["id4", "id3"]
        rest = await store.list_for_function("t", "fn", limit=10, before="id3")
        assert [r["execution_id"] for r in rest] == ["id2", "id1", "id0"]
        assert await store.list_for_function("other", "fn", limit=10) == []
        await store.close()

    run(scenario())


def test_purge_keeps_running_and_recent(make_store):
    async def scenario():
        store = make_store()
        await store.put_many(
            [
                record("old", ended_at=10.0),
                record("new", ended_at=1000.0),
                record("running", status="running", ended_at=None),
            ]
        )
        assert await store.purge(ended_before=500.0) == 1
        ids = [r["execution_id"] for r in await store.list_for_function("t", "fn", limit=10)]
        assert ids == ["running", "new"]
        assert await store.delete_for_function("t", "fn") == 2
        assert await store.list_for_function("t", "fn", limit=10) == []
        await store.close()

    run(scenario())


def test_persists_across_reopen(make_store):
    async def write():
        store = make_store()
        await store.put_many([record("keep")])
        await store.close()

    async def read():
        store = make_store()
        found = await store.get("keep")
        await store.close()
        return found

    run(write())
    assert run(read())["output"] == {"id": "keep"}


def test_a_finished_record_is_not_replaced_by_an_unfinished_one(make_store):
    async def scenario():
        store = make_store()
        await store.put_many([record("race", status="completed", ended_at=10.0)])
        await store.put_many([record("race", status="running", ended_at=None)])
        assert (await store.get("race"))["status"] == "completed"
        await store.put_many([{**record("race", ended_at=20.0), "status": "failed"}])
        assert (await store.get("race"))["status"] == "failed"
        await store.close()

    run(scenario())


def test_live_lists_pending_and_running_only(make_store):
    async def scenario():
        store = make_store()
        await store.put_many(
            [
                record("a-pending", status="pending", ended_at=None),
                record("b-running", status="running", ended_at=None),
                record("c-waiting", status="awaiting_human", ended_at=None),
                record("d-done", status="completed"),
                record("e-running", function_id="other", status="running", ended_at=None),
            ]
        )
        assert [r["execution_id"] for r in await store.live(10)] == [
            "a-pending", "b-running", "e-running"]
        assert [r["execution_id"] for r in await store.live(1)] == ["a-pending"]
        await store.put_many([record("b-running", status="failed", ended_at=60.0)])
        await store.put_many([record("a-pending", status="running", ended_at=None)])
        assert [r["execution_id"] for r in await store.live(10)] == ["a-pending", "e-running"]
        await store.delete_for_function("t", "other")
        await store.put_many([record("a-pending", status="cancelled", ended_at=10.0)])
        await store.put_many([record("a-pending", status="running", ended_at=None)])  # late
        assert await store.live(10) == []
        await store.close()

    run(scenario())
