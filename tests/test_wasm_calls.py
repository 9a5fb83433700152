"""WebAssembly functions calling functions (``tiergate.invoke`` / ``tiergate.answer``), through
the gateway's own invoke path as Python's ``context.invoke`` does: the caller's tenant, depth and
call-count caps and trace; the call recorded as the callee's cause; refusals and failures handed
back to the module as an error it can read; such modules kept off the gateway's event loop; and a
hostile module's pointers and lengths ending its own call only."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from conftest import assert_problem, deploy_wat, eventually, fixture, metric, unique

WHO = "def handler(event, context):\n    return {'caller': context.caller, 'in': event}\n"
FAILS = "def handler(event, context):\n    raise ValueError('no such luck')\n"
SLEEPS = "import time\n\ndef handler(event, context):\n    time.sleep(event)\n    return 'woke'\n"


def deploy(api, fn: str, runtime: str, code: str, **manifest) -> None:
    answer = api.post("/deploy", json={"id": fn, "runtime": runtime, "code": code, **manifest})
    assert answer.status_code == 201, answer.text


def deploy_caller(api, name: str = "calls.wat", **manifest) -> str:
    fn = unique(name.split(".")[0])
    deploy(api, fn, "wasm", fixture(name), **manifest)
    return fn


def call(api, fn: str, data) -> dict:
    """Invoke ``fn`` with ``data`` as compact JSON (the fixtures read it byte by byte)."""
    answer = api.post(f"/invoke/{fn}", content=orjson.dumps(data))
    assert answer.status_code == 200, answer.text
    return answer.json()


def calls(api, where: str) -> float:
    stat = f"calls_{where}"
    return metric(api.get("/metrics").text, "tiergate_runtime_stat", runtime="wasm", stat=stat) or 0


def wasm_workers(server) -> set[int]:
    """Pids of the server's wasm worker processes."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid"))
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == server.process.pid and b"plugins.wasm.worker" in cmdline:
            found.add(int(status.parent.name))
    return found


def test_a_wasm_function_calls_a_python_and_a_wasm_function(api):
    caller, who, echo = deploy_caller(api), unique("who"), unique("echo")
    deploy(api, who, "python", WHO)
    deploy_wat(api, echo)
    body = call(api, caller, [who, {"x": 1}])
    parent = body["execution_id"]
    assert body["output"] == {
        "ok": {"caller": {"kind": "call", "execution_id": parent}, "in": {"x": 1}}
    }
    assert call(api, caller, [f"{echo}@1", [1, "two"]])["output"] == {"ok": [1, "two"]}
    child_id = api.get(f"/functions/{who}/logs").json()["executions"][0]["execution_id"]
    child = api.get(f"/executions/{child_id}").json()
    assert child["cause"] == {"kind": "call", "execution_id": parent}
    assert child["trace_id"] == api.get(f"/executions/{parent}").json()["trace_id"]


def test_a_wasi_module_calls_a_function(api):
    caller, who = deploy_caller(api, "wasi-calls.wat"), unique("who")
    deploy(api, who, "python", WHO)
    body = call(api, caller, who)
    assert body["output"] == {
        "caller": {"kind": "call", "execution_id": body["execution_id"]}, "in": {"from": "wasi"}
    }
    assert call(api, caller, "nowhere")["output"]["code"] == "function_not_found"


def test_refusals_and_failures_come_back_to_the_module(api):
    caller, fails = deploy_caller(api), unique("fails")
    deploy(api, fails, "python", FAILS)
    missing = call(api, caller, [unique("nowhere"), 1])["output"]["error"]
    assert missing["code"] == "function_not_found"
    assert call(api, caller, ["Not An Id", 1])["output"]["error"]["code"] == "invalid_function_id"
    failed = call(api, caller, [fails, None])["output"]["error"]
    assert failed["code"] == "cascade_exhausted" and "no such luck" in failed["detail"]


def test_calls_nest_at_most_four_deep(api):
    """A module calling itself: the caller at depth 4 is refused, one level less answers."""
    fn, echo = deploy_caller(api), unique("echo")
    deploy_wat(api, echo)
    nested: list = [echo, "bottom"]
    for _ in range(3):
        nested = [fn, nested]
    assert call(api, fn, nested)["output"] == {"ok": {"ok": {"ok": {"ok": "bottom"}}}}
    refused = call(api, fn, [fn, nested])["output"]
    for _ in range(4):
        refused = refused["ok"]
    assert refused["error"]["code"] == "call_too_deep"


def test_a_chain_of_calls_never_waits_for_workers_its_callers_hold(tiergate_factory):
    """One wasm worker (so at most 4 of them for calls no function made): a chain of five
    modules that call functions, each waiting for the next, still answers at once."""
    server = tiergate_factory({"TIERGATE_WASM_WORKERS": "1"})
    with server.client() as api:
        fn = deploy_caller(api, limits={"timeout_ms": 20_000})
        nested: list = [fn, [fn, [fn, [fn, ["nowhere", 1]]]]]
        started = time.monotonic()
        output = call(api, fn, nested)["output"]
        assert time.monotonic() - started < 10
    for _ in range(4):
        output = output["ok"]
    assert output["error"]["code"] == "call_too_deep"


def test_one_execution_makes_at_most_64_calls(api):
    fn, echo = deploy_caller(api, "calls-until-refused.wat"), unique("echo")
    deploy_wat(api, echo)
    output = call(api, fn, [echo, 7])["output"]
    assert output["calls"] == 64 and output["error"]["code"] == "too_many_calls"


def test_a_call_stays_in_the_callers_tenant(tiergate_server, api):
    theirs = unique("private")
    other = api.post(
        "/admin/keys", json={"tenant": unique("other"), "roles": ["deploy", "invoke"]}
    ).json()
    with tiergate_server.client(other["key"]) as them:
        deploy_wat(them, theirs)
        assert call(them, theirs, 5)["output"] == 5
    caller = deploy_caller(api)
    assert call(api, caller, [theirs, 5])["output"]["error"]["code"] == "function_not_found"


def test_a_module_that_calls_never_runs_in_the_gateway(api):
    """Quick as its calls are (the callee does not exist), every one runs in a worker."""
    caller = deploy_caller(api)
    inline, worker = calls(api, "inline"), calls(api, "worker")
    for _ in range(12):
        assert call(api, caller, ["nowhere", 1])["output"]["error"]["code"] == "function_not_found"
    assert calls(api, "inline") == inline
    assert calls(api, "worker") - worker >= 12


def test_waiting_for_a_callee_counts_against_the_callers_timeout(api):
    caller, sleeps = deploy_caller(api, limits={"timeout_ms": 3000}), unique("sleeps")
    deploy(api, sleeps, "python", SLEEPS)
    started = time.monotonic()
    problem = assert_problem(api.post(f"/invoke/{caller}", content=b'["%s",10]' % sleeps.encode()),
                             504, "timeout")
    assert time.monotonic() - started < 6, problem
    assert "waiting for a function it called" in problem["attempts"][0]["error"]
    child_id = api.get(f"/functions/{sleeps}/logs").json()["executions"][0]["execution_id"]
    child = api.get(f"/executions/{child_id}").json()
    assert child["status"] == "cancelled" and child["cause"]["kind"] == "call"
    echo = unique("echo")
    deploy_wat(api, echo)
    assert call(api, caller, [echo, 0])["output"] == {"ok": 0}


def test_hostile_pointers_and_lengths_end_only_their_call(tiergate_factory):
    """On a gateway with one wasm worker, which runs every call here: traps and refusals end
    the hostile module's calls, never the worker."""
    server = tiergate_factory({"TIERGATE_WASM_WORKERS": "1"})
    with server.client() as api:
        hostile, caller = deploy_caller(api, "calls-hostile.wat"), deploy_caller(api)
        assert call(api, caller, ["nowhere", 1])["output"]["error"]["code"] == "function_not_found"
        workers = wasm_workers(server)
        for case, where in ((1, "tiergate.invoke"), (4, "tiergate.answer"), (5, "tiergate.invoke")):
            answer = api.post(f"/invoke/{hostile}", json=case)
            error = assert_problem(answer, 500, "cascade_exhausted")["attempts"][0]["error"]
            assert where in error and "outside the module's memory" in error, error
        assert call(api, hostile, 2)["output"]["code"] == "payload_too_large"
        assert call(api, hostile, 3)["output"]["code"] == "invalid_function_id"
        assert call(api, caller, ["nowhere", 1])["output"]["error"]["code"] == "function_not_found"
        assert len(workers) == 1 and wasm_workers(server) == workers  # it was not replaced


def test_imports_are_checked_at_deploy(api):
    bad = '(module (import "tiergate" "invoke" (func (param i32 i32) (result i32))) ' \
          '(memory (export "memory") 1) ' \
          '(func (export "alloc") (param i32) (result i32) (i32.const 0)) ' \
          '(func (export "handle") (param i32 i32) (result i64) (i64.const 0)))'
    problem = assert_problem(
        api.post("/deploy", json={"id": unique("bad"), "runtime": "wasm", "code": bad}),
        422, "compile_error",
    )
    assert "tiergate.invoke must have type (i32, i32, i32, i32) -> (i32)" in problem["detail"]


def test_cancelling_a_waiting_caller_cancels_its_call_and_stops_its_worker(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WASM_WORKERS": "1"})
    with server.client() as api:
        caller, sleeps = deploy_caller(api, limits={"timeout_ms": 60_000}), unique("sleeps")
        deploy(api, sleeps, "python", SLEEPS)
        waiting = wasm_workers(server)  # the one worker, which will wait for the answer
        started = api.post(f"/invoke/{caller}", content=b'["%s",30]' % sleeps.encode(),
                           headers={"Prefer": "respond-async"})
        assert started.status_code == 202, started.text
        parent = started.json()["execution_id"]

        def child() -> dict | None:
            listed = api.get(f"/functions/{sleeps}/logs").json()["executions"]
            return listed[0] if listed and listed[0]["status"] == "running" else None

        child_id = eventually(child)["execution_id"]
        assert len(waiting) == 1 and wasm_workers(server) == waiting
        assert api.delete(f"/executions/{parent}").status_code == 200
        eventually(lambda: api.get(f"/executions/{parent}").json()["status"] == "cancelled")
        eventually(lambda: api.get(f"/executions/{child_id}").json()["status"] == "cancelled")
        eventually(lambda: wasm_workers(server) and not waiting & wasm_workers(server))
        echo = unique("echo")
        deploy_wat(api, echo)
        assert call(api, caller, [echo, "again"])["output"] == {"ok": "again"}
