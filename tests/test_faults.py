"""A trap, an infinite loop or a memory bomb fails that invocation only; the gateway keeps
answering other requests meanwhile."""

from __future__ import annotations

import concurrent.futures

from conftest import assert_problem, deploy_wat, fixture, unique


def test_trap_is_a_failed_attempt(api):
    fn = unique("trap")
    deploy_wat(api, fn, "trap.wat")
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    [attempt] = problem["attempts"]
    assert attempt["tier"] == "code" and attempt["status"] == "failed"
    assert "unreachable" in attempt["error"]
    record = api.get(f"/executions/{problem['execution_id']}").json()
    assert record["status"] == "failed" and record["attempts"] == problem["attempts"]


def test_fail_import_message(api):
    fn = unique("fail")
    deploy_wat(api, fn, "fail.wat")
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert problem["attempts"][0]["error"]
    assert problem["attempts"][0]["error"] in problem["detail"]


def test_wasi_nonzero_exit(api):
    fn = unique("wfail")
    deploy_wat(api, fn, "wasi-fail.wat")
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert "3" in problem["attempts"][0]["error"]


def test_loop_times_out_while_others_answer(api, tiergate_server):
    loop, echo = unique("loop"), unique("echo")
    deploy_wat(api, loop, "loop.wat", limits={"timeout_ms": 1500})
    deploy_wat(api, echo)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        stuck = [pool.submit(api.post, f"/invoke/{loop}", json=1) for _ in range(2)]
        answered = 0
        while not all(f.done() for f in stuck):
            r = api.post(f"/invoke/{echo}", json={"i": answered})
            assert r.status_code == 200 and r.json()["output"] == {"i": answered}
            answered += 1
        for future in stuck:
            problem = assert_problem(future.result(), 504, "timeout")
            assert problem["attempts"][0]["status"] == "timeout"
    assert answered >= 5  # the echo kept answering while both loops ran


def test_timeout_query_override(api):
    fn = unique("loopq")
    deploy_wat(api, fn, "loop.wat")
    problem = assert_problem(api.post(f"/invoke/{fn}?timeout_ms=200", json=1), 504, "timeout")
    assert problem["attempts"][0]["duration_ms"] < 5000


def test_memory_bomb_fails_alone(api):
    bomb, echo = unique("bomb"), unique("echo")
    deploy_wat(api, bomb, "membomb.wat", limits={"memory_mb": 16})
    deploy_wat(api, echo)
    problem = assert_problem(api.post(f"/invoke/{bomb}", json=1), 500, "cascade_exhausted")
    assert problem["attempts"][0]["status"] == "failed"
    assert api.post(f"/invoke/{echo}", json=2).json()["output"] == 2


def test_fuel_limit(api):
    fn = unique("fuel")
    deploy_wat(api, fn, "loop.wat", limits={"fuel": 100_000, "timeout_ms": 10_000})
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert "fuel" in problem["attempts"][0]["error"]


def test_fresh_instance_per_call(api):
    fn = unique("counter")
    api.post("/deploy", json={"id": fn, "runtime": "wasm", "code": fixture("counter.wat")})
    outputs = {api.post(f"/invoke/{fn}", json=None).json()["output"]["count"] for _ in range(5)}
    assert outputs == {1}


def test_output_breaking_the_schema_fails_the_attempt(api):
    fn = unique("badout")
    deploy_wat(api, fn, output_schema={"type": "object", "required": ["answer"]})
    problem = assert_problem(
        api.post(f"/invoke/{fn}", json={"no": "answer"}), 500, "cascade_exhausted"
    )
    assert "output_schema" in problem["attempts"][0]["error"]
    assert "answer" in problem["attempts"][0]["error"]
    assert api.post(f"/invoke/{fn}", json={"answer": 42}).json()["output"] == {"answer": 42}


def test_output_that_is_not_json_fails_the_attempt(api):
    fn = unique("notjson")
    r = api.post("/deploy", json={"id": fn, "runtime": "wasm", "code": fixture("not-json.wat")})
    assert r.status_code == 201, r.text
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert problem["attempts"][0]["error"].startswith("output is not JSON")
