"""Functions that work together, against a real ``tiergate serve``: async work through the durable
queue (surviving ``kill -9``), retries with backoff, dead letters and redrive, idempotency keys,
events with triggers, chains, schedules, and callbacks retried until their receiver answers."""

from __future__ import annotations

import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest
from conftest import assert_problem, eventually, example, unique

ECHO = "def handler(event, context):\n    return event\n"
FAILS = (
    "import time\n"
    "def handler(event, context):\n"
    "    raise RuntimeError(f'failed at {time.time():.3f}')\n"
)
FAST_RETRY = {"attempts": 2, "backoff_ms": 200, "max_backoff_ms": 5000}


def deploy(api, fn: str, code: str = ECHO, **manifest):
    answer = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert answer.status_code == 201, answer.text
    return answer.json()


def ended(api, execution_id: str, timeout: float = 20.0) -> dict:
    def done():
        body = api.get(f"/executions/{execution_id}").json()
        return body if body["status"] in ("completed", "failed", "timeout", "cancelled") else None

    return eventually(done, timeout=timeout)


def invoke_async(api, fn: str, data, **headers) -> str:
    answer = api.post(
        f"/invoke/{fn}", json=data, headers={"Prefer": "respond-async", **headers}
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["execution_id"]


@pytest.fixture
def server(tiergate_factory):
    return tiergate_factory({"TIERGATE_WORK_LEASE_S": "2"})


# --- the durable queue -----------------------------------------------------------------------


def test_async_work_runs_through_the_queue_and_says_why_it_ran(server):
    with server.client() as api:
        fn = unique("queued")
        deploy(api, fn)
        execution = invoke_async(api, fn, {"n": 1})
        done = ended(api, execution)
        assert done["status"] == "completed" and done["output"] == {"n": 1}
        assert done["cause"] == {"kind": "invoke"} and done["children"] == []
        assert done["retries"] == 0


def test_async_work_survives_kill_9_of_its_gateway(server):
    """Killed mid-execution, the gateway restarts and runs the work again: completed, one
    retry, not failed."""
    with server.client() as api:
        fn = unique("survivor")
        deploy(api, fn, example("slow.py"), limits={"timeout_ms": 60_000})
        execution = invoke_async(api, fn, {"seconds": 3})
        eventually(lambda: api.get(f"/executions/{execution}").json()["status"] == "running")
    server.stop(signal.SIGKILL)
    server.start()
    with server.client() as api:
        done = ended(api, execution, timeout=30)
        assert done["status"] == "completed", done
        assert done["output"] == {"slept": 3.0}
        assert done["retries"] == 1


def test_queued_work_not_yet_run_survives_a_clean_stop(server):
    with server.client() as api:
        fn = unique("later")
        deploy(api, fn, example("slow.py"))
        first = invoke_async(api, fn, {"seconds": 2})
        eventually(lambda: api.get(f"/executions/{first}").json()["status"] == "running")
    server.restart()
    with server.client() as api:
        assert ended(api, first, timeout=30)["status"] == "completed"


def test_a_full_queue_answers_429_before_accepting(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WORK_QUEUE_MAX": "2", "TIERGATE_WORK_CONCURRENCY": "1"})
    with server.client() as api:
        fn = unique("full")
        deploy(api, fn, example("slow.py"))
        invoke_async(api, fn, {"seconds": 5})
        invoke_async(api, fn, {"seconds": 5})
        refused = api.post(f"/invoke/{fn}", json={}, headers={"Prefer": "respond-async"})
        problem = assert_problem(refused, 429, "queue_full")
        assert refused.headers["Retry-After"]
        assert "execution_id" not in problem


def test_one_tenant_cannot_fill_the_queue_for_the_others(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WORK_QUEUE_MAX_PER_TENANT": "2",
                               "TIERGATE_WORK_CONCURRENCY": "1"})
    with server.client() as admin:
        keys = [admin.post("/admin/keys", json={"tenant": unique("t"),
                                                "roles": ["deploy", "invoke"]}).json()["key"]
                for _ in range(2)]
    with server.client(keys[0]) as greedy, server.client(keys[1]) as other:
        for api in (greedy, other):
            deploy(api, "work", example("slow.py"))
        invoke_async(greedy, "work", {"seconds": 3})
        invoke_async(greedy, "work", {"seconds": 0})
        problem = assert_problem(
            greedy.post("/invoke/work", json={}, headers={"Prefer": "respond-async"}),
            429, "queue_full",
        )
        assert "TIERGATE_WORK_QUEUE_MAX_PER_TENANT" in problem["detail"]
        assert ended(other, invoke_async(other, "work", {"seconds": 0}))["status"] == "completed"


def test_async_input_is_bounded_and_chains_record_what_they_could_not_queue(tiergate_factory):
    server = tiergate_factory({"TIERGATE_ASYNC_MAX_INPUT_BYTES": "1024"})
    with server.client() as api:
        fn, big = unique("small-only"), unique("inflate")
        deploy(api, fn)
        deploy(api, big, "def handler(event, context):\n    return 'x' * 4000\n",
               chains=[{"to": fn}])
        problem = assert_problem(
            api.post(f"/invoke/{fn}", json="y" * 2000, headers={"Prefer": "respond-async"}),
            413, "payload_too_large",
        )
        assert "TIERGATE_ASYNC_MAX_INPUT_BYTES" in problem["detail"]
        assert api.post(f"/invoke/{fn}", json="y" * 2000).json()["output"] == "y" * 2000
        record = followed(api, invoke_async(api, big, 1))
        assert record["follow_errors"][0]["code"] == "payload_too_large"


def test_a_queued_execution_can_be_cancelled_before_it_runs(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WORK_CONCURRENCY": "1"})
    with server.client() as api:
        fn = unique("wait")
        deploy(api, fn, example("slow.py"))
        invoke_async(api, fn, {"seconds": 3})  # holds the one slot
        waiting = invoke_async(api, fn, {"seconds": 0})
        cancelled = api.delete(f"/executions/{waiting}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(4)
        assert api.get(f"/executions/{waiting}").json()["status"] == "cancelled"


# --- retries, dead letters, redrive ----------------------------------------------------------


def test_retries_back_off_then_dead_letter_then_redrive_completes(server):
    with server.client() as api:
        fn = unique("flaky")
        deploy(api, fn, FAILS, retry=FAST_RETRY)
        execution = invoke_async(api, fn, {"order": 7})
        done = ended(api, execution)
        assert done["status"] == "failed" and done["retries"] == 2
        failures = [float(a["error"].rsplit(" ", 1)[1]) for a in done["attempts"]]
        assert len(failures) == 3, done["attempts"]
        first_gap, second_gap = failures[1] - failures[0], failures[2] - failures[1]
        # backoff 200 ms doubling, equal jitter: the first wait is 0.1-0.2 s, the second 0.2-0.4 s
        assert 0.1 <= first_gap < 0.2 + 0.5, failures
        assert 0.2 <= second_gap < 0.4 + 0.5, failures

        letters = api.get("/dead-letters", params={"function_id": fn}).json()["dead_letters"]
        assert [x["execution_id"] for x in letters] == [execution]
        letter = letters[0]
        assert letter["input"] == {"order": 7} and letter["retries"] == 2
        assert "failed at" in letter["error"] and len(letter["attempts"]) == 3

        deploy(api, fn)  # the fix: redrive runs the latest version
        redriven = api.post(f"/dead-letters/{execution}/redrive")
        assert redriven.status_code == 202, redriven.text
        again = ended(api, redriven.json()["execution_id"])
        assert again["status"] == "completed" and again["output"] == {"order": 7}
        assert again["cause"] == {"kind": "redrive", "execution_id": execution}
        assert api.get("/dead-letters").json()["dead_letters"] == []
        assert_problem(api.post(f"/dead-letters/{execution}/redrive"), 404, "execution_not_found")


def test_dead_letters_are_deleted_and_scoped_to_their_tenant(server):
    with server.client() as api:
        fn = unique("doomed")
        deploy(api, fn, FAILS, retry={"attempts": 0})
        execution = invoke_async(api, fn, 1)
        assert ended(api, execution)["status"] == "failed"
        eventually(lambda: api.get("/dead-letters").json()["dead_letters"])
        other = api.post("/admin/keys", json={"tenant": unique("t"), "roles": ["deploy"]}).json()
        with server.client(other["key"]) as stranger:
            assert stranger.get("/dead-letters").json()["dead_letters"] == []
            assert_problem(stranger.delete(f"/dead-letters/{execution}"), 404,
                           "execution_not_found")
        assert api.delete(f"/dead-letters/{execution}").status_code == 204
        assert_problem(api.delete(f"/dead-letters/{execution}"), 404, "execution_not_found")
        assert_problem(api.get("/dead-letters", params={"function_id": "Bad!"}), 400,
                       "invalid_function_id")


def test_dead_letters_are_kept_as_long_as_records(tiergate_factory):
    server = tiergate_factory({"TIERGATE_RETENTION_DAYS": str(3 / 86400),
                               "TIERGATE_RETENTION_SWEEP_S": "1"})
    with server.client() as api:
        fn = unique("expiring")
        deploy(api, fn, FAILS, retry={"attempts": 0})
        ended(api, invoke_async(api, fn, 1))
        assert eventually(lambda: api.get("/dead-letters").json()["dead_letters"])
        eventually(lambda: api.get("/dead-letters").json()["dead_letters"] == [], timeout=15)


def test_sync_calls_are_not_retried(server):
    with server.client() as api:
        fn = unique("sync-fail")
        deploy(api, fn, FAILS, retry=FAST_RETRY)
        answer = api.post(f"/invoke/{fn}", json=1)
        assert_problem(answer, 500, "cascade_exhausted")
        assert api.get("/dead-letters").json()["dead_letters"] == []


# --- idempotency keys --------------------------------------------------------------------------


def test_an_idempotency_key_answers_with_the_first_call(server):
    with server.client() as api:
        fn = unique("once")
        deploy(api, fn)
        first = invoke_async(api, fn, {"n": 1}, **{"Idempotency-Key": "order-1"})
        again = invoke_async(api, fn, {"n": 2}, **{"Idempotency-Key": "order-1"})
        assert again == first
        sync = api.post(f"/invoke/{fn}", json={"n": 3}, headers={"Idempotency-Key": "order-2"})
        repeat = api.post(f"/invoke/{fn}", json={"n": 4}, headers={"Idempotency-Key": "order-2"})
        assert repeat.json()["execution_id"] == sync.json()["execution_id"]
        assert repeat.json()["output"] == {"n": 3}
        other = api.post(f"/invoke/{fn}", json={"n": 5}, headers={"Idempotency-Key": "order-3"})
        assert other.json()["output"] == {"n": 5}
        assert_problem(
            api.post(f"/invoke/{fn}", json=1, headers={"Idempotency-Key": "x" * 300}),
            400, "invalid_request",
        )


# --- events and triggers ------------------------------------------------------------------------


def test_a_trigger_with_a_filter_and_a_mapping(server):
    with server.client() as api:
        fn = unique("big-orders")
        deploy(api, fn, triggers=[{
            "event": "order.created",
            "when": "data.total > `100`",
            "input": {"order": "data.id", "priority": "`\"high\"`"},
        }])
        small = api.post("/events", json={"type": "order.created", "data": {"id": 1, "total": 5}})
        assert small.status_code == 202 and small.json()["started"] == []
        big = api.post("/events", json={"type": "order.created", "data": {"id": 2, "total": 500}})
        assert big.status_code == 202, big.text
        [execution] = big.json()["started"]
        done = ended(api, execution)
        assert done["output"] == {"order": 2, "priority": "high"}
        assert done["cause"] == {"kind": "event", "event_id": big.json()["event_id"]}
        other = api.post("/events", json={"type": "order.shipped", "data": {"total": 500}})
        assert other.json()["started"] == []


def test_events_with_an_idempotency_key_start_once(server):
    with server.client() as api:
        fn = unique("once-per-event")
        deploy(api, fn, triggers=[{"event": "user.signed-up"}])
        headers = {"Idempotency-Key": "signup-42"}
        first = api.post("/events", json={"type": "user.signed-up", "data": 42}, headers=headers)
        again = api.post("/events", json={"type": "user.signed-up", "data": 42}, headers=headers)
        assert again.json() == first.json() and len(first.json()["started"]) == 1


@pytest.mark.parametrize("event, detail", [
    ({"type": "Order.Created", "data": 1}, "type"),
    ({"data": 1}, "type"),
    ({"type": "x" * 200}, "type"),
    ({"type": "a.b", "extra": 1}, "extra"),
    ([1, 2], "JSON object"),
])
def test_bad_events_are_refused(server, event, detail):
    with server.client() as api:
        problem = assert_problem(api.post("/events", json=event), 400, "invalid_request")
        assert detail in problem["detail"]


def test_events_need_the_invoke_role(server):
    with server.client() as api:
        reader = api.post("/admin/keys", json={"tenant": "default", "roles": ["review"]}).json()
    with server.client(reader["key"]) as api:
        assert_problem(api.post("/events", json={"type": "a"}), 403, "forbidden")


def test_the_gateways_own_execution_events_trigger_functions(server):
    with server.client() as api:
        watched, audit, escalate = unique("watched"), unique("audit"), unique("escalate")
        deploy(api, watched)
        deploy(api, audit, triggers=[{
            "event": "execution.completed",
            "when": f"data.function_id == '{watched}'",
            "input": {"done": "data.execution_id", "output": "data.output"},
        }])
        deploy(api, escalate, triggers=[{"event": "execution.awaiting_human"}])
        api.post(f"/invoke/{watched}", json=0)  # the first ending reads the tenant's triggers
        time.sleep(1.5)
        first = api.post(f"/invoke/{watched}", json={"x": 1}).json()
        children = eventually(
            lambda: api.get(f"/executions/{first['execution_id']}").json()["children"]
        )
        child = ended(api, children[0])
        assert child["function_id"] == audit
        assert child["output"] == {"done": first["execution_id"], "output": {"x": 1}}
        assert child["cause"]["kind"] == "event"
        assert child["cause"]["execution_id"] == first["execution_id"]
        assert api.get(f"/executions/{child['execution_id']}").json()["children"] == []

        person = unique("needs-a-person")
        deploy(api, person, FAILS, tiers={"human": {}})
        waiting = api.post(f"/invoke/{person}", json=1)
        assert waiting.status_code == 202
        children = eventually(
            lambda: api.get(f"/executions/{waiting.json()['execution_id']}").json()["children"]
        )
        assert ended(api, children[0])["output"]["status"] == "awaiting_human"


# --- chains ------------------------------------------------------------------------------------


def test_chains_on_success_failure_and_a_condition(server):
    with server.client() as api:
        ok, failed, big, parent = (unique(n) for n in ("ok", "on-failure", "big", "parent"))
        for fn in (ok, failed, big):
            deploy(api, fn)
        deploy(api, parent, chains=[
            {"to": ok, "input": {"value": "output.n", "from": "execution.function_id"}},
            {"to": failed, "on": "failure"},
            {"to": big, "when": "output.n > `10`", "input": "output"},
        ])
        small = followed(api, invoke_async(api, parent, {"n": 3}))
        assert len(small["children"]) == 1
        child = ended(api, small["children"][0])
        assert child["function_id"] == ok
        assert child["output"] == {"value": 3, "from": parent}
        assert child["cause"] == {"kind": "chain", "execution_id": small["execution_id"]}

        large = api.post(f"/invoke/{parent}", json={"n": 50})  # sync calls chain too
        assert large.status_code == 200
        record = eventually(
            lambda: (r := api.get(f"/executions/{large.json()['execution_id']}").json())
            ["children"] and len(r["children"]) == 2 and r
        )
        children = [ended(api, c) for c in record["children"]]
        outputs = {child["function_id"]: child["output"] for child in children}
        assert outputs == {ok: {"value": 50, "from": parent}, big: {"n": 50}}

        failing = unique("failing")
        deploy(api, failing, FAILS, retry={"attempts": 0}, chains=[
            {"to": failed, "on": "failure", "input": {"why": "error"}},
        ])
        broke = ended(api, invoke_async(api, failing, 1))
        assert broke["status"] == "failed"
        recorded = eventually(lambda: api.get(f"/executions/{broke['execution_id']}").json()
                              ["children"])
        assert "failed at" in ended(api, recorded[0])["output"]["why"]


def followed(api, execution_id: str) -> dict:
    """The execution once it ended and its chains were followed (or refused)."""
    ended(api, execution_id)
    return eventually(
        lambda: ((r := api.get(f"/executions/{execution_id}").json())["children"]
        and r) or (r.get("follow_errors") and r)
    )


def test_a_chain_loop_stops_at_the_depth_cap(server):
    with server.client() as api:
        a, b = unique("ping"), unique("pong")
        deploy(api, a, chains=[{"to": b}])
        deploy(api, b, chains=[{"to": a}])
        record = followed(api, invoke_async(api, a, 0))
        depth = 0
        while record["children"]:
            depth += 1
            record = followed(api, record["children"][0])
        assert depth == 16
        assert record["follow_errors"][0]["code"] == "chain_too_deep"


def test_a_chain_to_a_missing_function_is_recorded(server):
    with server.client() as api:
        fn, gone = unique("lonely"), unique("gone")
        answer = deploy(api, fn, chains=[{"to": gone}])
        assert any(gone in w for w in answer.get("warnings", []))
        record = followed(api, invoke_async(api, fn, 1))
        assert record["follow_errors"][0]["code"] == "function_not_found"
        assert record["children"] == []


# --- schedules ----------------------------------------------------------------------------------


def _scheduled(api, fn):
    found = api.get(f"/functions/{fn}/logs", params={"limit": 100}).json()["executions"]
    return [api.get(f"/executions/{e['execution_id']}").json() for e in found]


def test_a_schedule_fires_about_once_per_period(server):
    with server.client() as api:
        fn = unique("tick")
        deploy(api, fn, schedules=[{"every_s": 1, "input": {"from": "schedule"}}])
        first = len(eventually(lambda: _scheduled(api, fn), timeout=10))
        time.sleep(6)
        fired = _scheduled(api, fn)
        # six ticks; a loaded machine may merge two late ones (only the latest tick fires)
        assert 4 <= len(fired) - first <= 7, len(fired) - first
        assert all(e["cause"]["kind"] == "schedule" for e in fired)
        ticks = [e["cause"]["tick"] for e in fired]
        assert len(set(ticks)) == len(ticks)
        assert all(e["input"] == {"from": "schedule"} for e in fired)


def test_a_schedule_fires_once_per_tick_across_two_instances(redis_server, s3_server,
                                                             tiergate_factory):
    from conftest import shared_env

    env = shared_env(redis_server, s3_server)
    one, two = tiergate_factory(env), tiergate_factory(env)
    with one.client() as api:
        fn = unique("shared-tick")
        deploy(api, fn, schedules=[{"every_s": 1}])
        time.sleep(6)
        fired = _scheduled(api, fn)
    ticks = [e["cause"]["tick"] for e in fired]
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks), sorted(ticks)
    with two.client() as api:
        assert len(_scheduled(api, fn)) >= len(fired)


# --- callbacks ---------------------------------------------------------------------------------


class _FlakyReceiver(BaseHTTPRequestHandler):
    refuse = 0
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _FlakyReceiver.refuse > 0:
            _FlakyReceiver.refuse -= 1
            self.send_response(503)
        else:
            _FlakyReceiver.received.append(orjson.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_callback_is_retried_until_its_receiver_answers(tiergate_factory):
    receiver = HTTPServer(("127.0.0.1", 0), _FlakyReceiver)
    _FlakyReceiver.refuse, _FlakyReceiver.received = 2, []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    server = tiergate_factory({"TIERGATE_CALLBACK_ALLOW_PRIVATE": "true"})
    try:
        with server.client() as api:
            fn = unique("called-back")
            deploy(api, fn)
            execution = invoke_async(api, fn, {"ok": 1}, **{"X-Callback-Url": url})
            state = eventually(
                lambda: (api.get(f"/executions/{execution}").json().get("callback") or {})
                .get("status") == "delivered"
                and api.get(f"/executions/{execution}").json()["callback"],
                timeout=20,
            )
            assert state["attempts"] == 3 and state["last_error"] is None
            assert [c["execution_id"] for c in _FlakyReceiver.received] == [execution]
            assert _FlakyReceiver.received[0]["output"] == {"ok": 1}
    finally:
        receiver.shutdown()
