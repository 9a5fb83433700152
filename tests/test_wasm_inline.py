"""Quick core-ABI calls run in the gateway's own process (the wasm runtime's ``inline`` path):
still a fresh instance per call by default, a warm instance with ``limits.isolation: warm``, and
a call past the inline budget runs again in a worker."""

from __future__ import annotations

import pytest
from conftest import assert_problem, fixture, metric, unique


def calls(api, where: str) -> float:
    value = metric(api.get("/metrics").text, "tiergate_runtime_stat", runtime="wasm",
                   stat=f"calls_{where}")
    return value or 0.0


def deploy(api, name: str, **limits) -> str:
    fn = unique(name.split(".")[0])
    manifest = {"id": fn, "runtime": "wasm", "code": fixture(name)}
    if limits:
        manifest["limits"] = limits
    r = api.post("/deploy", json=manifest)
    assert r.status_code == 201, r.text
    return fn


def outputs(api, fn: str, value, times: int) -> list:
    answers = [api.post(f"/invoke/{fn}", json=value) for _ in range(times)]
    assert all(a.status_code == 200 for a in answers), answers[-1].text
    return [a.json()["output"] for a in answers]


def until_inline(api, fn: str, value, admin=None):
    """Call until a call runs in the gateway (a few calls are first measured in a worker);
    returns that call's output. ``admin`` reads the metrics when ``api`` may not."""
    admin = admin or api
    for _ in range(30):
        before = calls(admin, "inline")
        answer = api.post(f"/invoke/{fn}", json=value)
        assert answer.status_code == 200, answer.text
        if calls(admin, "inline") > before:
            return answer.json()["output"]
    raise AssertionError(f"{fn} never ran in the gateway")


def test_quick_calls_run_in_the_gateway_on_fresh_instances(api):
    fn = deploy(api, "warm-counter.wat")
    assert until_inline(api, fn, 1) == {"count": 1}  # once calls in a worker measured quick
    before = calls(api, "inline")
    assert outputs(api, fn, 1, 10) == [{"count": 1}] * 10  # the contract: no state between calls
    assert calls(api, "inline") - before >= 8


def test_a_warm_instance_keeps_its_state_and_is_recycled_after_a_trap(api):
    fn = deploy(api, "warm-counter.wat", isolation="warm")
    assert until_inline(api, fn, 1) == {"count": 1}
    assert outputs(api, fn, 1, 3) == [{"count": n} for n in (2, 3, 4)]
    problem = assert_problem(api.post(f"/invoke/{fn}", json=True), 500, "cascade_exhausted")
    assert "unreachable" in problem["attempts"][0]["error"]
    assert outputs(api, fn, 1, 2) == [{"count": 1}, {"count": 2}]  # a new instance


def test_warm_instances_are_never_shared(api, tiergate_server):
    mine = deploy(api, "warm-counter.wat", isolation="warm")
    assert until_inline(api, mine, 1) == {"count": 1}
    assert outputs(api, mine, 1, 2) == [{"count": 2}, {"count": 3}]
    with tiergate_server.client() as admin:
        key = admin.post("/admin/keys", json={"tenant": unique("other"),
                                              "roles": ["deploy", "invoke"]}).json()["key"]
    with tiergate_server.client(key) as other:  # the same id and code in another tenant
        r = other.post("/deploy", json={"id": mine, "runtime": "wasm",
                                        "code": fixture("warm-counter.wat"),
                                        "limits": {"isolation": "warm"}})
        assert r.status_code == 201
        assert until_inline(other, mine, 1, admin=api) == {"count": 1}
    api.post("/deploy", json={"id": mine, "runtime": "wasm", "code": fixture("warm-counter.wat"),
                              "limits": {"isolation": "warm"}})  # version 2: its own instance
    assert until_inline(api, mine, 1) == {"count": 1}
    assert outputs(api, mine, 1, 1) == [{"count": 2}]


def test_a_slow_call_of_a_quick_function_finishes_in_a_worker(api):
    fn = deploy(api, "sometimes-slow.wat", timeout_ms=10_000)
    assert until_inline(api, fn, 2) == 2
    inline, retried, worker = (calls(api, w) for w in ("inline", "inline_then_worker", "worker"))
    answer = api.post(f"/invoke/{fn}", json=1)
    assert answer.status_code == 200 and answer.json()["output"] == 1, answer.text
    assert calls(api, "inline_then_worker") == retried + 1  # cut at its budget, then run again
    assert calls(api, "inline") == inline
    outputs(api, fn, 2, 1)
    assert calls(api, "worker") == worker + 1  # not inlined again for a while


@pytest.mark.parametrize("value", ["warm", "per_call"])
def test_isolation_is_a_manifest_limit(api, value):
    deploy(api, "warm-counter.wat", isolation=value)
    r = api.post("/deploy", json={"id": unique("bad"), "runtime": "wasm",
                                  "code": fixture("warm-counter.wat"),
                                  "limits": {"isolation": "shared"}})
    assert_problem(r, 400, "invalid_manifest")


def test_only_a_call_that_used_its_budget_of_cpu_demotes_its_function():
    """The epoch budget is wall-clock time: a call cut off because a busy machine preempted the
    gateway did not show the function slow, and it keeps running inline."""
    from plugins.wasm.inline import BUDGET_S, SAMPLES, Speed

    speed = Speed()
    for _ in range(SAMPLES):
        speed.measured(0.0001)
    speed.overran(BUDGET_S / 10)
    assert speed.quick
    speed.overran(BUDGET_S)
    assert not speed.quick
