"""``FunctionPool`` under calls that go away: a worker handed to a call that is cancelled in the
same moment goes back to the pool, a burst of callers that disconnect while queued leaves the
pool able to answer the next call, and a call cancelled while it runs takes its worker with it.
The first is driven directly (the race is one loop iteration wide, which HTTP cannot aim at); the
others through a real server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time

import httpx
import pytest
from conftest import eventually, run, unique

from plugins.workers import FunctionPool, PoolOptions, WorkerBudget, WorkerProcess

CHILD = (
    "import time\n"
    "from plugins.workers.child import serve\n"
    "def answer(meta, data):\n"
    "    time.sleep(meta[0])\n"
    "    return ['ok'], data\n"
    "serve(answer)\n"
)


async def spawn() -> WorkerProcess:
    return await WorkerProcess.start([sys.executable, "-c", CHILD], env={"PATH": "/usr/bin:/bin"})


def test_a_worker_handed_to_a_call_cancelled_at_that_moment_goes_back_to_the_pool():
    async def scenario() -> None:
        budget = WorkerBudget(per_tenant=1, per_function=1)
        pool = FunctionPool(spawn, PoolOptions("static", size=1), budget=budget, tenant="t")
        await pool.start()
        try:
            deadline = time.monotonic() + 30
            holder = asyncio.create_task(pool.call([0.2], b"", deadline))
            await asyncio.sleep(0)  # the holder takes the only worker
            queued = asyncio.create_task(pool.call([0], b"", deadline))
            await asyncio.sleep(0)  # the second call waits for it
            holder.cancel()  # releasing its worker hands it to the waiting call...
            asyncio.get_running_loop().call_soon(queued.cancel)  # ...cancelled before it resumes
            await asyncio.gather(holder, queued, return_exceptions=True)
            assert queued.cancelled()
            answer = await pool.call([0], b"next", time.monotonic() + 5)
            assert (answer.meta, answer.data) == (["ok"], b"next")
            assert pool.size == 1
        finally:
            await pool.close()
        assert budget.in_use() == {}  # its grant came back once the worker exited

    run(scenario())


SLEEPER = (
    "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(event.get('seconds', 0))\n"
    "    return 'done'\n"
)


@pytest.mark.timeout(120)
def test_callers_that_disconnect_while_queued_leave_the_pool_working(tiergate_factory):
    server = tiergate_factory({"TIERGATE_CONCURRENCY": "64"})
    fn = unique("burst")
    with server.client() as api:
        body = {"id": fn, "runtime": "python", "code": SLEEPER, "pool": {"kind": "static"}}
        assert api.post("/deploy", json=body).status_code == 201
        assert api.post(f"/invoke/{fn}", json={}).status_code == 200  # the worker is warm
        holder = api.post(
            f"/invoke/{fn}", json={"seconds": 2.0}, headers={"Prefer": "respond-async"}
        ).json()["execution_id"]
        # Seen running up to a second late (records are written in batches): the callers give
        # up over two seconds, some before the worker is released, some as, some after.
        eventually(lambda: api.get(f"/executions/{holder}").json()["status"] == "running")
        with concurrent.futures.ThreadPoolExecutor(40) as threads:
            burst = [
                threads.submit(_give_up_after, server.url, api.headers, fn, 0.2 + i * 0.05)
                for i in range(40)
            ]
            assert any(f.result() for f in burst)
        eventually(lambda: api.get(f"/executions/{holder}").json()["status"] == "completed")
        answer = api.post(f"/invoke/{fn}?timeout_ms=5000", json={})
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == "done"


def _give_up_after(url: str, headers: httpx.Headers, fn: str, seconds: float) -> bool:
    with httpx.Client(base_url=url, headers=headers, timeout=seconds) as client:
        try:
            client.post(f"/invoke/{fn}", json={})
        except httpx.TimeoutException:
            return True
    return False


MARKER = (
    "import os, time\n"
    "def handler(event, context):\n"
    "    if event == 'sleep':\n"
    "        open('/tmp/was-here', 'w').close()\n"
    "        time.sleep(30)\n"
    "    return os.path.exists('/tmp/was-here')\n"
)


def test_a_call_cancelled_while_it_runs_does_not_hold_up_the_next(tiergate_factory):
    """Its worker, still running the cancelled code, is never handed to the next call: that
    call gets a fresh worker (a fresh /tmp), not one busy for 30 more seconds."""
    server = tiergate_factory()
    fn = unique("cancelled")
    with server.client() as api:
        body = {"id": fn, "runtime": "python", "code": MARKER,
                "pool": {"kind": "static", "size": 1}, "limits": {"timeout_ms": 60000}}
        deployed = api.post("/deploy", json=body)
        assert deployed.status_code == 201, deployed.text
        sleeper = api.post(f"/invoke/{fn}", json="sleep",
                           headers={"Prefer": "respond-async"}).json()["execution_id"]
        eventually(lambda: api.get(f"/executions/{sleeper}").json()["status"] == "running")
        assert api.delete(f"/executions/{sleeper}").json()["status"] == "cancelled"
        answer = api.post(f"/invoke/{fn}?timeout_ms=10000", json="look")
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] is False
