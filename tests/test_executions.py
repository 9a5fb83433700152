"""Async invocation, execution records, logs, cancellation, and records surviving a restart."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import assert_problem, deploy_wat, run, start_slow_execution, unique


def wait_for(
    api, execution_id, statuses=("completed", "failed", "timeout", "cancelled"), timeout=20.0
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = api.get(f"/executions/{execution_id}").json()
        if record["status"] in statuses:
            return record
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} stayed {record['status']}")


def test_async_invocation(api):
    fn = unique("async")
    deploy_wat(api, fn)
    r = api.post(f"/invoke/{fn}", json={"later": True}, headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert (
        body["status"] == "pending" and body["status_url"] == f"/executions/{body['execution_id']}"
    )
    assert r.headers["location"] == body["status_url"]
    record = wait_for(api, body["execution_id"])
    assert record["status"] == "completed" and record["output"] == {"later": True}
    assert record["input"] == {"later": True} and record["function_id"] == fn


def test_async_failure_is_recorded(api):
    fn = unique("asyncfail")
    deploy_wat(api, fn, "trap.wat")
    r = api.post(f"/invoke/{fn}", json=1, headers={"Prefer": "respond-async"})
    record = wait_for(api, r.json()["execution_id"])
    assert record["status"] == "failed" and record["attempts"][0]["status"] == "failed"
    assert record["error"]


def test_cancel_async_execution(api):
    fn = unique("cancel")
    deploy_wat(api, fn, "loop.wat", limits={"timeout_ms": 20_000})
    r = api.post(f"/invoke/{fn}", json=1, headers={"Prefer": "respond-async"})
    execution_id = r.json()["execution_id"]
    wait_for(api, execution_id, statuses=("running",))
    cancelled = api.delete(f"/executions/{execution_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.get(f"/executions/{execution_id}").json()["status"] == "cancelled"


def test_cancel_sync_execution_from_elsewhere(api, tiergate_server):
    fn = unique("cancelsync")
    deploy_wat(api, fn, "loop.wat", limits={"timeout_ms": 20_000})
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(api.post, f"/invoke/{fn}", json=1)
        deadline = time.monotonic() + 10
        running = []
        while not running and time.monotonic() < deadline:
            logs = api.get(f"/functions/{fn}/logs").json()["executions"]
            running = [e for e in logs if e["status"] == "running"]
            time.sleep(0.05)
        assert running
        api.delete(f"/executions/{running[0]['execution_id']}")
        problem = assert_problem(future.result(timeout=10), 409, "execution_cancelled")
        assert problem["execution_id"] == running[0]["execution_id"]


def test_client_disconnect_cancels(api, tiergate_server):
    fn = unique("hangup")
    deploy_wat(api, fn, "loop.wat", limits={"timeout_ms": 20_000})
    with tiergate_server.client() as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(f"/invoke/{fn}", json=1, timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = api.get(f"/functions/{fn}/logs").json()["executions"]
        if logs and logs[0]["status"] == "cancelled":
            break
        time.sleep(0.05)
    assert logs[0]["status"] == "cancelled" and "client" in logs[0]["error"]


def test_unknown_execution(api):
    assert_problem(api.get("/executions/01NOPE"), 404, "execution_not_found")
    assert_problem(api.delete("/executions/01NOPE"), 404, "execution_not_found")


def test_logs_pagination(api):
    fn = unique("paged")
    deploy_wat(api, fn, "hello.wat")
    ids = [api.post(f"/invoke/{fn}", json=i).json()["execution_id"] for i in range(5)]
    page = api.get(f"/functions/{fn}/logs?limit=2").json()["executions"]
    assert [e["execution_id"] for e in page] == ids[::-1][:2]
    assert page[0]["logs"][0]["message"]
    rest = api.get(f"/functions/{fn}/logs?limit=10&before={page[-1]['execution_id']}").json()
    assert [e["execution_id"] for e in rest["executions"]] == ids[::-1][2:]
    assert_problem(api.get(f"/functions/{fn}/logs?limit=0"), 400, "invalid_request")


def test_large_input_is_truncated_in_the_record(api):
    fn = unique("bigin")
    deploy_wat(api, fn)
    payload = {"blob": "x" * 10_000}
    result = api.post(f"/invoke/{fn}", json=payload).json()
    assert result["output"] == payload
    record = api.get(f"/executions/{result['execution_id']}").json()
    assert record["input"] == {
        "truncated": True,
        "size": len(httpx.Request("POST", "http://x", json=payload).content),
    }


def test_restart_keeps_functions_versions_and_records(tiergate_factory):
    server = tiergate_factory()
    with server.client() as api:
        fn = unique("durable")
        deploy_wat(api, fn)
        deploy_wat(api, fn, "hello.wat")
        api.post(f"/functions/{fn}/rollback", json={"version": 1})
        done = api.post(f"/invoke/{fn}", json={"before": "restart"}).json()
    assert server.stop() == 0
    server.start()
    with server.client() as api:
        assert api.get(f"/functions/{fn}").json()["latest_version"] == 1
        assert len(api.get(f"/functions/{fn}/versions").json()["versions"]) == 2
        record = api.get(f"/executions/{done['execution_id']}").json()
        assert record["status"] == "completed" and record["output"] == {"before": "restart"}
        again = api.post(f"/invoke/{fn}", json=2).json()
        assert again["output"] == 2 and again["metrics"]["cold_start"] is True
        assert api.post(f"/invoke/{fn}@2", json=2).json()["output"] == {
            "message": "hello from wasm"
        }
    assert "Traceback" not in server.log() and "panic" not in server.log()


def test_a_gateway_killed_mid_execution_runs_its_async_work_again_after_restart(
    tiergate_factory,
):
    import signal

    server = tiergate_factory({"TIERGATE_ORPHAN_AFTER_S": "1", "TIERGATE_WORK_LEASE_S": "2"})
    with server.client() as api:
        execution = start_slow_execution(api, seconds=2)
        fn = api.get(f"/executions/{execution}").json()["function_id"]
    server.stop(signal.SIGKILL)
    server.start()
    with server.client() as api:
        record = wait_for(api, execution, statuses=("completed",), timeout=30)
        assert record["retries"] == 1 and record["output"] == {"slept": 2.0}
        assert api.get(f"/functions/{fn}/logs").json()["executions"][0]["status"] == "completed"


def test_a_gateway_stopped_cleanly_hands_its_async_work_back_to_the_queue(tiergate_factory):
    server = tiergate_factory()
    with server.client() as api:
        execution = start_slow_execution(api, seconds=2)
    assert server.stop() == 0
    server.start()
    with server.client() as api:
        record = wait_for(api, execution, statuses=("completed",), timeout=30)
        assert record["retries"] == 0  # a clean stop is not the function's failure


def test_records_of_another_tiergate_version_still_read(tiergate_server, api):
    """A shared store may hold records written by an older or newer gateway: keys this one does
    not know are ignored, keys it lacks take their defaults."""
    from storage.executions.sqlite import SQLiteExecutionStore

    fn = unique("versions")
    deploy_wat(api, fn)
    stored = {
        "execution_id": "00000000000100000000000001",
        "tenant": "default",
        "function_id": fn,
        "version": 3,
        "status": "failed",
        "tier": "code",
        "output": None,
        "error": "boom",
        "attempts": [
            {
                "tier": "code",
                "attempt": 1,
                "status": "failed",
                "error": "boom",
                "duration_ms": 2.5,
                "retry_of": "x",
            }
        ],
        "logs": [{"ts": "1970-01-01T00:00:01.000Z", "stream": "stderr", "message": "boom"}],
        "input": {"n": 1},
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "started_at": 1.0,
        "ended_at": 2.0,
        "duration_ms": 1000.0,
        "queue_ms": 0.0,
        "cold_start": True,
        "cache_hit": False,
        "cause": {"kind": "event", "event_id": "ev_1"},
        "placement": {"zone": "b"},  # a key from a newer version
    }

    async def write():
        store = SQLiteExecutionStore(tiergate_server.data_dir / "tiergate.db")
        await store.put_many([stored])
        await store.close()

    run(write())
    record = api.get(f"/executions/{stored['execution_id']}")
    assert record.status_code == 200, record.text
    assert record.json() == {
        "execution_id": stored["execution_id"],
        "function_id": fn,
        "version": 3,
        "status": "failed",
        "tier": "code",
        "output": None,
        "attempts": [
            {"tier": "code", "attempt": 1, "status": "failed", "error": "boom", "duration_ms": 2.5}
        ],
        "logs": stored["logs"],
        "metrics": {"duration_ms": 1000.0, "queue_ms": 0.0, "cold_start": True, "cache_hit": False},
        "error": "boom",
        "trace_id": stored["trace_id"],
        "input": {"n": 1},
        "started_at": "1970-01-01T00:00:01.000Z",
        "ended_at": "1970-01-01T00:00:02.000Z",
        "cause": {"kind": "event", "event_id": "ev_1"},
        "children": [],  # keys it lacks take their defaults
        "retries": 0,
    }
    logs = api.get(f"/functions/{fn}/logs").json()["executions"]
    assert [entry["execution_id"] for entry in logs] == [stored["execution_id"]]
