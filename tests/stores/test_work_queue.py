"""The work queue contract (``storage/queue``), on SQLite in the KV's file and on Redis: jobs come
out oldest due first, each to one consumer at a time, and come back when a lease runs out."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, run

from storage.errors import QueueFull, StorageUnavailable
from storage.urls import StorageURLError, open_queue

SHORT_S = 0.2  # a lease meant to run out during the test
LONG_S = 30.0  # a lease meant to outlast it


@dataclass
class Backend:
    """Where the queue lives: ``url`` as ``TIERGATE_KV`` would say it (``None``: embedded)."""

    url: str | None
    data_dir: Path

    def open(self, bound=100):
        return open_queue(self.url, self.data_dir, bound=bound)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        return Backend(None, tmp_path)
    import redis

    url = request.getfixturevalue("redis_server")
    redis.Redis.from_url(url).flushdb()  # db 0 belongs to the contract suites
    return Backend(url, tmp_path)


def test_jobs_come_out_oldest_due_first_and_only_once(backend):
    async def scenario():
        queue = backend.open()
        now = time.time()
        middle = await queue.put("execution", b"middle", due=now - 2)
        last = await queue.put("execution", b"last", due=now - 1)
        first = await queue.put("callback", b"first", due=now - 3)
        taken = await queue.take("a", limit=2, lease_s=LONG_S)
        assert [job.job_id for job in taken] == [first, middle]
        assert (taken[0].kind, taken[0].body, taken[0].deliveries) == ("callback", b"first", 1)
        assert taken[0].due == pytest.approx(now - 3)
        assert [job.job_id for job in await queue.take("b", limit=5, lease_s=LONG_S)] == [last]
        assert await queue.take("b", limit=5, lease_s=LONG_S) == []
        assert await queue.depth() == 3  # leased jobs are still held
        await queue.close()

    run(scenario())


def test_a_delayed_job_waits_for_its_due(backend):
    async def scenario():
        queue = backend.open()
        due = time.time() + 0.3
        job_id = await queue.put("execution", b"later", due=due)
        assert await queue.take("a", limit=1, lease_s=LONG_S) == []
        assert await queue.next_due() == pytest.approx(due)
        await asyncio.sleep(due - time.time() + 0.02)
        assert [job.job_id for job in await queue.take("a", limit=1, lease_s=LONG_S)] == [job_id]
        assert await queue.next_due() is None  # the one job is leased
        await queue.close()

    run(scenario())


def test_a_lease_that_runs_out_delivers_the_job_again_to_another_consumer(backend):
    async def scenario():
        queue = backend.open()
        job_id = await queue.put("execution", b"x")
        [first] = await queue.take("a", limit=1, lease_s=SHORT_S)
        assert first.deliveries == 1
        assert await queue.take("b", limit=1, lease_s=SHORT_S) == []
        await asyncio.sleep(SHORT_S + 0.05)
        [again] = await queue.take("b", limit=1, lease_s=SHORT_S)
        assert (again.job_id, again.body, again.deliveries) == (job_id, b"x", 2)
        # "a" comes back to life: its late heartbeat does not take the job back from "b"
        await queue.extend("a", [job_id], LONG_S)
        await asyncio.sleep(SHORT_S + 0.05)
        [third] = await queue.take("c", limit=1, lease_s=LONG_S)
        assert (third.job_id, third.deliveries) == (job_id, 3)
        await queue.close()

    run(scenario())


def test_extend_keeps_the_job_with_its_consumer(backend):
    async def scenario():
        queue = backend.open()
        job_id = await queue.put("execution", b"long work")
        other = await queue.put("execution", b"other")
        await queue.take("a", limit=2, lease_s=SHORT_S)
        await queue.extend("a", [job_id, "absent"], LONG_S)
        await asyncio.sleep(SHORT_S + 0.05)
        [expired] = await queue.take("b", limit=5, lease_s=LONG_S)
        assert (expired.job_id, expired.deliveries) == (other, 2)
        await queue.close()

    run(scenario())


def test_ack_removes_the_job(backend):
    async def scenario():
        queue = backend.open()
        done = await queue.put("execution", b"done")
        kept = await queue.put("execution", b"kept", due=time.time() + 60)
        await queue.take("a", limit=5, lease_s=SHORT_S)
        assert await queue.depth() == 2
        await queue.ack(done)
        await queue.ack(done)
        await queue.ack("absent")
        assert await queue.depth() == 1
        await asyncio.sleep(SHORT_S + 0.05)
        assert await queue.take("b", limit=5, lease_s=LONG_S) == []  # not delivered again
        await queue.ack(kept)  # a delayed job too
        assert await queue.depth() == 0
        assert await queue.next_due() is None
        await queue.close()

    run(scenario())


def test_release_reschedules_the_job_with_a_new_body_and_the_same_id(backend):
    async def scenario():
        queue = backend.open()
        job_id = await queue.put("execution", b"attempt 1")
        await queue.take("a", limit=1, lease_s=SHORT_S)
        due = time.time() + 0.3
        await queue.release(job_id, due=due, body=b"attempt 2")
        await queue.release("absent", due=due)
        assert await queue.depth() == 1
        assert await queue.next_due() == pytest.approx(due)
        await asyncio.sleep(SHORT_S + 0.05)  # its old lease would have run out by now
        assert await queue.take("b", limit=1, lease_s=LONG_S) == []
        await asyncio.sleep(due - time.time() + 0.02)
        [retry] = await queue.take("b", limit=1, lease_s=SHORT_S)
        assert (retry.job_id, retry.body, retry.deliveries) == (job_id, b"attempt 2", 1)
        assert retry.due == pytest.approx(due)
        await queue.release(job_id, due=time.time())  # no body: it keeps the one it has
        [kept] = await queue.take("c", limit=1, lease_s=LONG_S)
        assert (kept.body, kept.deliveries) == (b"attempt 2", 1)
        await queue.close()

    run(scenario())


def test_a_full_queue_refuses_more_jobs(backend):
    async def scenario():
        queue = backend.open(bound=2)
        first = await queue.put("execution", b"1")
        await queue.put("execution", b"2", due=time.time() + 60)  # delayed ones count
        with pytest.raises(QueueFull) as refused:
            await queue.put("execution", b"3")
        assert refused.value.retry_after >= 1
        assert refused.value.extensions == {"bound": 2}
        assert await queue.depth() == 2
        await queue.take("a", limit=1, lease_s=LONG_S)
        await queue.release(first, due=time.time())  # not counted a second time
        assert await queue.depth() == 2
        await queue.ack(first)
        await queue.put("execution", b"3")
        await queue.close()

    run(scenario())


def test_puts_at_once_never_overfill_it(backend):
    async def scenario():
        queues = [backend.open(bound=10) for _ in range(3)]
        puts = [q.put("execution", b"x") for q in queues for _ in range(8)]
        added = await asyncio.gather(*puts, return_exceptions=True)
        assert sum(isinstance(a, str) for a in added) == 10
        assert all(isinstance(a, str | QueueFull) for a in added)
        assert await queues[0].depth() == 10
        for queue in queues:
            await queue.close()

    run(scenario())


def test_a_group_at_its_share_is_refused_while_others_still_get_in(backend):
    async def scenario():
        queue = backend.open(bound=10)
        await queue.put("execution", b"1", group="hostile", group_bound=2)
        await queue.put("execution", b"2", due=time.time() + 60, group="hostile", group_bound=2)
        with pytest.raises(QueueFull) as refused:
            await queue.put("execution", b"3", group="hostile", group_bound=2)
        assert "share" in refused.value.detail and "hostile" in refused.value.detail
        assert refused.value.retry_after >= 1
        assert refused.value.extensions == {"group": "hostile", "group_bound": 2}
        await queue.put("execution", b"theirs", group="other", group_bound=2)
        await queue.put("execution", b"no group")
        assert await queue.depth() == 4
        assert (await queue.group_depth("hostile"), await queue.group_depth("other")) == (2, 1)
        await queue.close()

    run(scenario())


def test_the_overall_bound_still_applies_to_a_group_with_room(backend):
    async def scenario():
        queue = backend.open(bound=2)
        await queue.put("execution", b"1")
        await queue.put("execution", b"2", group="a", group_bound=5)
        with pytest.raises(QueueFull) as refused:
            await queue.put("execution", b"3", group="a", group_bound=5)
        assert refused.value.extensions == {"bound": 2}
        assert await queue.group_depth("a") == 1
        await queue.close()

    run(scenario())


def test_ack_frees_a_place_in_the_group(backend):
    async def scenario():
        queue = backend.open(bound=10)
        first = await queue.put("execution", b"1", group="g", group_bound=2)
        await queue.put("execution", b"2", group="g", group_bound=2)
        ungrouped = await queue.put("execution", b"no group")
        await queue.ack(ungrouped)  # counts only against the overall bound
        assert await queue.group_depth("g") == 2
        await queue.take("a", limit=1, lease_s=LONG_S)
        await queue.ack(first)
        await queue.ack(first)  # not freed a second time
        assert await queue.group_depth("g") == 1
        await queue.put("execution", b"3", group="g", group_bound=2)
        with pytest.raises(QueueFull):
            await queue.put("execution", b"4", group="g", group_bound=2)
        assert await queue.group_depth("g") == 2
        await queue.close()

    run(scenario())


def test_release_keeps_the_job_in_its_group_once(backend):
    async def scenario():
        queue = backend.open(bound=10)
        job_id = await queue.put("execution", b"1", group="g", group_bound=2)
        await queue.put("execution", b"2", group="g", group_bound=2, due=time.time() + 60)
        await queue.take("a", limit=1, lease_s=LONG_S)
        await queue.release(job_id, due=time.time(), body=b"retry")
        assert await queue.group_depth("g") == 2
        with pytest.raises(QueueFull) as refused:
            await queue.put("execution", b"3", group="g", group_bound=2)
        assert refused.value.extensions == {"group": "g", "group_bound": 2}
        [retry] = await queue.take("b", limit=1, lease_s=LONG_S)
        assert retry.job_id == job_id
        await queue.ack(job_id)  # the group went with the release
        assert await queue.group_depth("g") == 1
        await queue.close()

    run(scenario())


def test_group_depth_counts_delayed_and_leased_jobs(backend):
    async def scenario():
        queue = backend.open()
        await queue.put("execution", b"leased", group="g")  # no bound: counted all the same
        await queue.put("execution", b"delayed", group="g", due=time.time() + 60)
        await queue.put("execution", b"elsewhere", group="h")
        await queue.put("execution", b"no group")
        [leased] = await queue.take("a", limit=1, lease_s=LONG_S)
        assert leased.body == b"leased"
        assert await queue.group_depth("g") == 2
        assert await queue.group_depth("h") == 1
        assert await queue.group_depth("never seen") == 0
        await queue.close()

    run(scenario())


def test_puts_of_a_group_at_once_never_overfill_its_share(backend):
    async def scenario():
        queues = [backend.open(bound=100) for _ in range(3)]
        puts = [
            q.put("execution", b"x", group=group, group_bound=5)
            for q in queues
            for group in ("g", "h")
            for _ in range(8)
        ]
        added = await asyncio.gather(*puts, return_exceptions=True)
        refused = [a for a in added if isinstance(a, QueueFull)]
        assert sum(isinstance(a, str) for a in added) == 10
        assert len(refused) == len(added) - 10
        assert all(set(a.extensions) == {"group", "group_bound"} for a in refused)
        assert (await queues[0].group_depth("g"), await queues[0].group_depth("h")) == (5, 5)
        assert await queues[0].depth() == 10
        for queue in queues:
            await queue.close()

    run(scenario())


def test_jobs_survive_close_and_reopen(backend):
    async def before():
        queue = backend.open()
        leased = await queue.put("execution", b"leased", due=time.time() - 1)
        waiting = await queue.put("callback", b"waiting")
        await queue.take("gone", limit=1, lease_s=SHORT_S)
        await queue.close()
        return leased, waiting

    leased, waiting = run(before())

    async def after():
        queue = backend.open()
        assert await queue.depth() == 2
        await asyncio.sleep(SHORT_S + 0.05)
        jobs = await queue.take("next", limit=5, lease_s=LONG_S)
        await queue.close()
        return [(job.job_id, job.kind, job.body, job.deliveries) for job in jobs]

    assert run(after()) == [
        (leased, "execution", b"leased", 2),
        (waiting, "callback", b"waiting", 1),
    ]


# A gateway process of its own: opens the queue as the gateway would, says it is ready, waits for
# a line on stdin, then takes one job at a time until none is left and prints the ids it got.
TAKER = """
import asyncio, json, sys
from pathlib import Path
from storage.urls import open_queue

async def main(url, data_dir, consumer):
    queue = open_queue(url or None, Path(data_dir), bound=1000)
    await queue.depth()
    print("ready", flush=True)
    sys.stdin.readline()
    taken = []
    while batch := await queue.take(consumer, limit=1, lease_s=60):
        taken += [job.job_id for job in batch]
    await queue.close()
    print(json.dumps(taken), flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


def test_processes_taking_at_once_never_get_the_same_job(backend):
    async def fill():
        queue = backend.open(bound=1000)
        ids = [await queue.put("execution", b"x") for _ in range(300)]
        await queue.close()
        return ids

    ids = run(fill())
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, backend.url or "", str(backend.data_dir), name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for taker in takers:
        assert taker.stdout.readline() == "ready\n"
    for taker in takers:
        taker.stdin.write("go\n")
        taker.stdin.flush()
    got = [json.loads(taker.communicate(timeout=30)[0]) for taker in takers]
    assert all(taker.returncode == 0 for taker in takers)
    assert got[0] and got[1], "both processes took jobs"
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(ids)


def test_an_unreachable_redis_is_storage_unavailable(tmp_path):
    from plugins.testing import free_port

    async def scenario():
        queue = open_queue(f"redis://127.0.0.1:{free_port()}/0", tmp_path, bound=10)
        with pytest.raises(StorageUnavailable):
            await queue.put("execution", b"x")
        with pytest.raises(StorageUnavailable):
            await queue.take("a", limit=1, lease_s=LONG_S)
        await queue.close()

    run(scenario())


def test_a_broken_database_is_storage_unavailable(tmp_path):
    (tmp_path / "tiergate.db").mkdir()  # a directory where the database file should be

    async def scenario():
        queue = open_queue(None, tmp_path, bound=10)
        with pytest.raises(StorageUnavailable):
            await queue.put("execution", b"x")
        await queue.close()

    run(scenario())


def test_the_queue_lives_where_the_kv_does(tmp_path):
    import sqlite3

    async def scenario():
        queue = open_queue(f"sqlite://{tmp_path}/kv.db", tmp_path / "data", bound=10)
        await queue.put("execution", b"x")
        await queue.close()

    run(scenario())
    with sqlite3.connect(tmp_path / "kv.db") as db:
        assert db.execute("SELECT count(*) FROM queue").fetchone() == (1,)
    with pytest.raises(StorageURLError, match="TIERGATE_KV"):
        open_queue("mysql://db/tiergate", tmp_path, bound=10)


def test_a_queue_table_from_before_groups_is_brought_up_to_date(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "tiergate.db") as db:  # the table as the first release made it
        db.execute(
            "CREATE TABLE queue (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
            "body BLOB NOT NULL, due REAL NOT NULL, ready_at REAL NOT NULL, consumer TEXT, "
            "deliveries INTEGER NOT NULL) WITHOUT ROWID"
        )
        db.execute("CREATE INDEX queue_by_ready ON queue (ready_at)")
        db.execute("INSERT INTO queue VALUES ('old', 'execution', x'6f6c64', 1, 1, NULL, 0)")
    db.close()

    async def scenario():
        queue = open_queue(None, tmp_path, bound=10)
        assert await queue.depth() == 1
        await queue.put("execution", b"new", group="g", group_bound=1)
        with pytest.raises(QueueFull):
            await queue.put("execution", b"more", group="g", group_bound=1)
        assert (await queue.depth(), await queue.group_depth("g")) == (2, 1)
        [old, new] = await queue.take("a", limit=5, lease_s=LONG_S)
        assert (old.job_id, old.body, new.body) == ("old", b"old", b"new")
        await queue.ack("old")
        assert (await queue.depth(), await queue.group_depth("g")) == (1, 1)
        await queue.close()

    run(scenario())
