"""Dependency graphs against a real ``tiergate serve``: deploy-time checks, nodes dispatched as soon
as what they need has completed (in parallel, bounded), failures that skip only their dependents,
incremental re-runs that execute only what changed, a node that waits for a person, cancelling,
and a run carried on by a second instance after the first is killed."""

from __future__ import annotations

import signal

import pytest
from conftest import assert_problem, eventually, example, shared_env, unique

ECHO = "def handler(event, context):\n    return event\n"
FAILS = "def handler(event, context):\n    raise RuntimeError('out of stock')\n"
POSITIVE = "def handler(event, context):\n    return {'positive': event['n'] > 0}\n"
NO_RETRY = {"attempts": 0}
HUMAN_SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}


def deploy(api, fn: str, code: str = ECHO, **manifest) -> None:
    manifest.setdefault("retry", NO_RETRY)
    answer = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert answer.status_code == 201, answer.text


def deploy_graph(api, graph: dict) -> dict:
    answer = api.post("/graphs", json=graph)
    assert answer.status_code == 201, answer.text
    return answer.json()


def run(api, graph_id: str, data, **params) -> dict:
    answer = api.post(f"/graphs/{graph_id}/runs", json=data, params=params)
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def finished(api, graph_id: str, run_id: str, timeout: float = 30) -> dict:
    def ended():
        body = api.get(f"/graphs/{graph_id}/runs/{run_id}").json()
        return body if body["status"] not in ("running", "awaiting_human") else None

    return eventually(ended, timeout=timeout)


@pytest.fixture(scope="module")
def echo(tiergate_server):
    with tiergate_server.client() as api:
        fn = unique("g-echo")
        deploy(api, fn)
        return fn


# --- definitions ------------------------------------------------------------------------------


def test_a_graph_is_checked_at_deploy_and_names_what_is_wrong(api, echo):
    gid = unique("bad")

    def refused(nodes, **more):
        answer = api.post("/graphs", json={"id": gid, "nodes": nodes, **more})
        return assert_problem(answer, 400, "invalid_graph")["detail"]

    cycle = refused({
        "a": {"function": echo, "needs": ["c"]},
        "b": {"function": echo, "needs": ["a"]},
        "c": {"function": echo, "needs": ["b"]},
        "d": {"function": echo},
    })
    assert "cycle" in cycle and "a → b → c → a" in cycle
    assert "nodes.b.needs: unknown node 'zz'" in refused({
        "a": {"function": echo}, "b": {"function": echo, "needs": ["zz"]}
    })
    assert "nodes.a.function" in refused({"a": {"function": unique("nowhere")}})
    assert "no version 99" in refused({"a": {"function": f"{echo}@99"}})
    assert "nodes.a.input" in refused({"a": {"function": echo, "input": "input.[["}})
    assert "nodes.a.input.x" in refused({"a": {"function": echo, "input": {"x": "foo(@)"}}})
    assert "output" in refused({"a": {"function": echo}}, output="&&")
    assert "itself" in refused({"a": {"function": echo, "needs": ["a"]}})
    assert "unknown field" in refused({"a": {"function": echo, "after": []}})
    assert "'input'" in refused({"input": {"function": echo}})
    assert "at least one node" in refused({})
    problem = assert_problem(api.post("/graphs", json={"id": "Bad Id", "nodes": {}}), 400,
                             "invalid_graph")
    assert problem["detail"].startswith("id:")
    assert_problem(api.post("/graphs", content=b"[1, 2"), 400, "invalid_request")
    assert_problem(api.get(f"/graphs/{gid}"), 404, "graph_not_found")


def test_graphs_are_versioned_listed_and_deleted(api, echo):
    gid = unique("versions")
    graph = {"id": gid, "description": "two steps", "nodes": {
        "first": {"function": echo},
        "second": {"function": echo, "needs": ["first"], "input": "first"},
    }}
    assert deploy_graph(api, graph) == {"id": gid, "version": 1, "nodes": ["first", "second"]}
    graph["nodes"]["third"] = {"function": echo, "needs": ["second"]}
    assert deploy_graph(api, graph)["version"] == 2
    shown = api.get(f"/graphs/{gid}").json()
    assert shown["version"] == 2 and shown["versions"] == [1, 2]
    assert shown["order"] == ["first", "second", "third"]
    assert shown["description"] == "two steps"
    assert list(api.get(f"/graphs/{gid}?version=1").json()["nodes"]) == ["first", "second"]
    listed = {g["id"]: g for g in api.get("/graphs").json()["graphs"]}
    assert listed[gid]["version"] == 2
    assert api.delete(f"/graphs/{gid}").status_code == 204
    assert_problem(api.get(f"/graphs/{gid}"), 404, "graph_not_found")
    assert_problem(api.delete(f"/graphs/{gid}"), 404, "graph_not_found")
    assert_problem(api.post(f"/graphs/{gid}/runs", json={}), 404, "graph_not_found")
    assert gid not in {g["id"] for g in api.get("/graphs").json()["graphs"]}
    assert deploy_graph(api, graph)["version"] == 1  # a new graph under the old id


def test_roles_and_tenants_bound_graphs(tiergate_server, api, echo):
    gid = unique("tenancy")
    deploy_graph(api, {"id": gid, "nodes": {"a": {"function": echo}}})
    done = run(api, gid, {"x": 1})
    invoker = api.post("/admin/keys", json={"tenant": "default", "roles": ["invoke"]}).json()
    stranger = api.post("/admin/keys", json={"tenant": unique("other"),
                                             "roles": ["invoke", "deploy"]}).json()
    with tiergate_server.client(invoker["key"]) as only_invoke:
        assert_problem(only_invoke.post("/graphs", json={"id": gid, "nodes": {}}), 403,
                       "forbidden")
        assert only_invoke.get(f"/graphs/{gid}/runs/{done['run_id']}").status_code == 200
    with tiergate_server.client(stranger["key"]) as other:
        assert_problem(other.get(f"/graphs/{gid}"), 404, "graph_not_found")
        assert_problem(other.get(f"/graphs/{gid}/runs/{done['run_id']}"), 404, "run_not_found")
        assert_problem(other.post("/graphs", json={"id": gid, "nodes": {"a": {"function": echo}}}),
                       400, "invalid_graph")  # the other tenant has no such function


# --- runs ---------------------------------------------------------------------------------


def test_independent_nodes_run_at_once_and_their_dependent_after_both(api, echo):
    slow = unique("g-slow")
    deploy(api, slow, example("slow.py"))
    gid = unique("fanin")
    deploy_graph(api, {"id": gid, "nodes": {
        "price": {"function": slow, "input": {"seconds": "input.seconds"}},
        "stock": {"function": slow, "input": {"seconds": "input.seconds"}},
        "invoice": {"function": echo, "needs": ["price", "stock"],
                    "input": {"price": "price", "stock": "stock", "order": "input.order"}},
    }})
    body = run(api, gid, {"seconds": 1, "order": "A-1"})
    assert body["status"] == "completed", body
    nodes = body["nodes"]
    price, stock, invoice = nodes["price"], nodes["stock"], nodes["invoice"]
    # both 1-second nodes were running at the same moment, and the invoice started after both
    assert max(price["started_at"], stock["started_at"]) < min(price["ended_at"], stock["ended_at"])
    assert invoice["started_at"] >= max(price["ended_at"], stock["ended_at"])
    expected = {"price": {"slept": 1.0}, "stock": {"slept": 1.0}, "order": "A-1"}
    assert invoice["output"] == expected
    assert body["output"] == {"invoice": expected}  # default output: the nodes nothing needs
    execution = api.get(f"/executions/{invoice['execution_id']}").json()
    assert execution["cause"]["kind"] == "graph" and execution["cause"]["run_id"] == body["run_id"]
    assert execution["trace_id"] == body["trace_id"]


def test_at_most_the_parallel_bound_of_nodes_run_at_once(tiergate_factory):
    server = tiergate_factory({"TIERGATE_GRAPH_PARALLEL": "2"})
    with server.client() as api:
        deploy(api, "slow", example("slow.py"))
        nodes = {f"n{i}": {"function": "slow", "input": "{seconds: `0.5`}"} for i in range(5)}
        deploy_graph(api, {"id": "wide", "nodes": nodes})
        body = run(api, "wide", {})
        assert body["status"] == "completed", body
        spans = [(n["started_at"], n["ended_at"]) for n in body["nodes"].values()]
        for start, _ in spans:
            running = sum(1 for s, e in spans if s <= start < e)
            assert running <= 2, spans


def test_a_failed_node_skips_only_what_depends_on_it(api, echo):
    fails = unique("g-fails")
    deploy(api, fails, FAILS)
    gid = unique("branches")
    deploy_graph(api, {"id": gid, "nodes": {
        "stock": {"function": fails},
        "ship": {"function": echo, "needs": ["stock"]},
        "label": {"function": echo, "needs": ["ship"]},
        "price": {"function": echo},
        "invoice": {"function": echo, "needs": ["price"]},
    }})
    body = run(api, gid, {"sku": "A"})
    assert body["status"] == "failed"
    nodes = body["nodes"]
    assert nodes["stock"]["status"] == "failed" and "out of stock" in nodes["stock"]["error"]
    assert nodes["ship"]["status"] == "skipped" and nodes["ship"]["execution_id"] is None
    assert nodes["ship"]["reason"] == "needs 'stock', which failed"
    assert nodes["label"]["reason"] == "needs 'ship', which was skipped"
    assert nodes["price"]["status"] == "completed" and nodes["invoice"]["status"] == "completed"
    assert body["error"].startswith("node 'stock' failed")


def test_incremental_runs_execute_only_what_changed(api, echo):
    positive = unique("g-positive")
    deploy(api, positive, POSITIVE)
    gid = unique("incremental")
    deploy_graph(api, {"id": gid, "nodes": {
        "price": {"function": echo, "input": {"sku": "input.sku", "qty": "input.qty"}},
        "stock": {"function": echo, "input": {"sku": "input.sku"}},
        "check": {"function": positive, "input": {"n": "input.qty"}},
        "approve": {"function": echo, "needs": ["check"], "input": "check"},
        "invoice": {"function": echo, "needs": ["price", "stock"],
                    "input": {"price": "price", "stock": "stock"}},
    }})
    first = run(api, gid, {"sku": "A", "qty": 1})
    assert first["status"] == "completed"
    assert {n["reason"] for n in first["nodes"].values()} == {"ran: no base run"}

    same = run(api, gid, {"sku": "A", "qty": 1}, base_run=first["run_id"])
    assert same["status"] == "completed" and same["output"] == first["output"]
    for name, node in same["nodes"].items():
        assert node["status"] == "reused", (name, node)
        assert node["execution_id"] == first["nodes"][name]["execution_id"]  # nothing ran
        assert node["reason"].startswith("reused: same function version and input")
        assert node["output"] == first["nodes"][name]["output"]

    more = run(api, gid, {"sku": "A", "qty": 2}, base_run=first["run_id"])
    nodes = more["nodes"]
    ran = {name for name, node in nodes.items() if node["status"] == "completed"}
    assert ran == {"price", "check", "invoice"}, nodes
    assert nodes["price"]["reason"] == "ran: its input changed"
    assert nodes["stock"]["status"] == "reused"
    # check ran again but said the same, so what it feeds was reused
    assert nodes["check"]["output"] == {"positive": True}
    assert nodes["approve"]["status"] == "reused"
    assert nodes["invoice"]["output"]["price"] == {"sku": "A", "qty": 2}

    deploy(api, echo)  # a new version of the function behind most nodes
    redeployed = run(api, gid, {"sku": "A", "qty": 1}, base_run=first["run_id"])
    assert redeployed["nodes"]["check"]["status"] == "reused"
    assert redeployed["nodes"]["price"]["reason"].startswith("ran: function changed")

    assert_problem(api.post(f"/graphs/{gid}/runs?base_run=nope", json={}), 404, "run_not_found")


def test_a_node_that_waits_for_a_person_holds_the_run_until_the_task_is_answered(api, echo):
    approval = unique("g-approval")
    answer = api.post("/deploy", json={
        "id": approval, "runtime": "wasm", "code": example("trap.wat"),
        "output_schema": HUMAN_SCHEMA, "tiers": {"human": {"instructions": "Large order?"}},
    })
    assert answer.status_code == 201, answer.text
    gid = unique("approval")
    deploy_graph(api, {"id": gid, "nodes": {
        "approve": {"function": approval},
        "invoice": {"function": echo, "needs": ["approve"],
                    "input": {"approved": "approve.approved", "total": "input.total"}},
    }})
    answer = api.post(f"/graphs/{gid}/runs", json={"total": 5000})
    assert answer.status_code == 202, answer.text
    waiting = answer.json()
    assert waiting["status"] == "awaiting_human"
    assert answer.headers["Location"] == f"/graphs/{gid}/runs/{waiting['run_id']}"
    assert waiting["nodes"]["approve"]["status"] == "awaiting_human"
    assert waiting["nodes"]["invoice"]["status"] == "pending"
    execution = waiting["nodes"]["approve"]["execution_id"]
    task = next(t for t in api.get("/tasks?status=pending").json()["tasks"]
                if t["execution_id"] == execution)
    done = api.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": True}})
    assert done.status_code == 200, done.text
    body = finished(api, gid, waiting["run_id"])
    assert body["status"] == "completed", body
    assert body["output"] == {"invoice": {"approved": True, "total": 5000}}


def test_a_run_answers_202_after_its_timeout_and_can_be_cancelled(api):
    slow = unique("g-slow")
    deploy(api, slow, example("slow.py"), limits={"timeout_ms": 60_000})
    gid = unique("cancel")
    deploy_graph(api, {"id": gid, "nodes": {
        "wait": {"function": slow, "input": "{seconds: `30`}"},
        "after": {"function": slow, "needs": ["wait"]},
    }})
    answer = api.post(f"/graphs/{gid}/runs?timeout_ms=300", json={})
    assert answer.status_code == 202
    started = answer.json()
    assert started["status"] == "running"
    asynchronous = api.post(f"/graphs/{gid}/runs", json={}, headers={"Prefer": "respond-async"})
    assert asynchronous.status_code == 202 and asynchronous.json()["status"] == "running"
    api.delete(f"/graphs/{gid}/runs/{asynchronous.json()['run_id']}")
    execution = started["nodes"]["wait"]["execution_id"]
    eventually(lambda: api.get(f"/executions/{execution}").json()["status"] == "running")
    cancelled = api.delete(f"/graphs/{gid}/runs/{started['run_id']}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["nodes"]["wait"]["status"] == "failed"
    assert cancelled["nodes"]["after"]["status"] == "skipped"
    eventually(lambda: api.get(f"/executions/{execution}").json()["status"] == "cancelled")
    assert finished(api, gid, started["run_id"])["status"] == "cancelled"


def test_bad_run_requests_are_refused_and_store_nothing(api, echo):
    gid = unique("badrun")
    deploy_graph(api, {"id": gid, "nodes": {"a": {"function": echo}}})
    other = unique("other")
    deploy_graph(api, {"id": other, "nodes": {"a": {"function": echo}}})
    assert_problem(api.post(f"/graphs/{gid}/runs", content=b"{nope"), 400, "invalid_input")
    assert_problem(api.post(f"/graphs/{gid}/runs", content=b"x" * 300_000), 413,
                   "payload_too_large")
    assert_problem(api.post(f"/graphs/{gid}/runs?timeout_ms=-1", json={}), 400,
                   "invalid_request")
    assert_problem(api.get(f"/graphs/{gid}/runs/nope"), 404, "run_not_found")
    done = run(api, other, {})
    assert_problem(api.post(f"/graphs/{gid}/runs?base_run={done['run_id']}", json={}), 400,
                   "invalid_request")
    assert_problem(api.get(f"/graphs/{gid}/runs/{done['run_id']}"), 404, "run_not_found")
    empty = run(api, gid, None)
    assert empty["status"] == "completed" and empty["output"] == {"a": None}


def test_a_node_whose_input_breaks_its_schema_fails_with_the_reason(api):
    strict = unique("g-strict")
    deploy(api, strict, input_schema={"type": "object", "required": ["sku"]})
    gid = unique("schema")
    nodes = {"a": {"function": strict, "input": "{qty: input.qty}"}}
    deploy_graph(api, {"id": gid, "nodes": nodes})
    body = run(api, gid, {"qty": 1})
    assert body["status"] == "failed"
    assert body["nodes"]["a"]["error"].startswith("invalid_input")


def test_what_a_tenant_can_make_a_run_hold_is_bounded(api, echo):
    """Needs in all, the outputs one mapping reads, and the outputs one run body shows."""
    nodes = {f"n{i}": {"function": echo, "needs": [f"n{j}" for j in range(i)]} for i in range(150)}
    problem = assert_problem(api.post("/graphs", json={"id": unique("dense"), "nodes": nodes}),
                             400, "invalid_graph")
    assert "11175 needs in all" in problem["detail"]

    big = unique("g-big")
    deploy(api, big, "def handler(event, context):\n    return 'x' * 3_000_000\n")
    gid = unique("bulky")
    parts = {f"part{i}": {"function": big} for i in range(6)}
    deploy_graph(api, {"id": gid, "nodes": {
        **parts, "total": {"function": echo, "needs": list(parts)},
    }})
    body = run(api, gid, {}, timeout_ms=120_000)
    assert body["status"] == "failed"
    assert "a node's input mapping reads at most 16777216" in body["nodes"]["total"]["error"]
    shown = [node["output"] for node in body["nodes"].values() if node["status"] == "completed"]
    assert len(shown) == 6
    assert shown[0] == "x" * 3_000_000
    assert {"truncated": True, "size": 3_000_002} in shown  # past 8 MiB of outputs in one body


def test_a_tenant_cannot_start_runs_past_its_share_of_the_work_queue(tiergate_factory):
    """Every run still going holds a watch job in its tenant's share of the queue (and each
    running node one more), so a tenant starting runs without end is refused, not stored."""
    server = tiergate_factory({"TIERGATE_WORK_QUEUE_MAX_PER_TENANT": "3"})
    with server.client() as api:
        deploy(api, "slow", example("slow.py"))
        deploy_graph(api, {"id": "hog", "nodes": {"wait": {"function": "slow",
                                                            "input": "{seconds: `10`}"}}})
        started = [
            api.post("/graphs/hog/runs", json={}, headers={"Prefer": "respond-async"})
            for _ in range(2)
        ]
        # the first run's watch job and node: 2 of 3; the second's watch job: 3 (its node waits
        # for room, and its watch job queues it once there is some)
        assert [answer.status_code for answer in started] == [202, 202]
        refused = api.post("/graphs/hog/runs", json={}, headers={"Prefer": "respond-async"})
        problem = assert_problem(refused, 429, "queue_full")
        assert "TIERGATE_WORK_QUEUE_MAX_PER_TENANT" in problem["detail"]
        assert refused.headers["Retry-After"]


# --- across instances ---------------------------------------------------------------------


@pytest.fixture
def shared(redis_server, s3_server):
    return {**shared_env(redis_server, s3_server), "TIERGATE_WORK_LEASE_S": "2"}


def test_a_run_started_on_one_instance_is_finished_by_another_after_a_kill(
    shared, tiergate_factory
):
    doomed = tiergate_factory(shared)
    fn, gid = unique("g-slow"), unique("survives")
    with doomed.client() as d:
        deploy(d, fn, example("slow.py"), retry={"attempts": 2})
        deploy_graph(d, {"id": gid, "nodes": {
            "first": {"function": fn, "input": "{seconds: `4`}"},
            "second": {"function": fn, "needs": ["first"], "input": "{seconds: `0`}"},
        }})
        started = d.post(f"/graphs/{gid}/runs", json={}, headers={"Prefer": "respond-async"})
        run_id = started.json()["run_id"]
        execution = started.json()["nodes"]["first"]["execution_id"]
        eventually(lambda: d.get(f"/executions/{execution}").json()["status"] == "running")
    survivor = tiergate_factory(shared)
    doomed.stop(signal.SIGKILL)
    with survivor.client() as s:
        body = finished(s, gid, run_id, timeout=60)
        assert body["status"] == "completed", body
        assert body["output"] == {"second": {"slept": 0.0}}
        assert s.get(f"/executions/{execution}").json()["retries"] == 1
