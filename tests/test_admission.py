"""Global concurrency with a bounded queue (429 queue_full) and per-function max_concurrency."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from conftest import assert_problem, deploy_wat, eventually, unique


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(
        tmp_path_factory.mktemp("tight"), {"TIERGATE_CONCURRENCY": "2", "TIERGATE_QUEUE_SIZE": "1"}
    ).start()
    yield server
    server.stop()


def _wait_until_running(api, fn, count):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = api.get(f"/functions/{fn}/logs").json()["executions"]
        if sum(e["status"] == "running" for e in logs) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("calls did not start")


def test_queue_full(tight):
    with tight.client() as api:
        loop, echo = unique("slow"), unique("echo")
        deploy_wat(api, loop, "loop.wat", limits={"timeout_ms": 3000})
        deploy_wat(api, echo)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            busy = [pool.submit(api.post, f"/invoke/{loop}", json=1) for _ in range(2)]
            _wait_until_running(api, loop, 2)
            queued = pool.submit(api.post, f"/invoke/{echo}", json="queued")
            time.sleep(0.3)
            refused = api.post(f"/invoke/{echo}", json="refused")
            problem = assert_problem(refused, 429, "queue_full")
            assert int(refused.headers["retry-after"]) >= 1
            assert "queued" in problem["detail"]
            # async work waits in the durable work queue instead (its own bound answers 429)
            later = api.post(f"/invoke/{echo}", json="later", headers={"Prefer": "respond-async"})
            assert later.status_code == 202, later.text
            assert queued.result().json()["output"] == "queued"
            assert queued.result().json()["metrics"]["queue_ms"] > 100
            for future in busy:
                assert future.result().status_code == 504
        assert api.post(f"/invoke/{echo}", json="after").json()["output"] == "after"
        done = eventually(lambda: (r := api.get(later.headers["Location"]).json())["status"]
                          == "completed" and r)
        assert done["output"] == "later"


def test_function_max_concurrency(tight):
    with tight.client() as api:
        loop = unique("capped")
        deploy_wat(api, loop, "loop.wat", limits={"timeout_ms": 1500, "max_concurrency": 1})
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(api.post, f"/invoke/{loop}", json=1)
            _wait_until_running(api, loop, 1)
            second = pool.submit(api.post, f"/invoke/{loop}", json=2)
            time.sleep(0.3)
            logs = api.get(f"/functions/{loop}/logs").json()["executions"]
            assert sum(e["status"] == "running" for e in logs) == 1
            assert first.result().status_code == 504
            waited = second.result().json()
            assert waited["code"] == "timeout"
        logs = api.get(f"/functions/{loop}/logs").json()["executions"]
        starts = sorted(e["started_at"] for e in logs)
        assert len(starts) == 2
