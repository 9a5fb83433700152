"""Aliases and weighted traffic: create, show, list, move, delete; invoke ``id:alias``; a 90/10
split measured over 1,000 calls; rollback by moving an alias; every bad request refused with a
problem naming its field, changing nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import assert_problem, deploy_wat, eventually, unique

HELLO = {"message": "hello from wasm"}


def two_versions(api, prefix: str = "aliased") -> str:
    """A function whose version 1 echoes its input and version 2 answers ``HELLO``."""
    fn = unique(prefix)
    deploy_wat(api, fn, "echo.wat")
    deploy_wat(api, fn, "hello.wat")
    return fn


def put(api, fn, name, **body):
    return api.put(f"/functions/{fn}/aliases/{name}", json=body)


def test_create_show_list_move_and_delete(api):
    fn = two_versions(api)
    created = put(api, fn, "prod", version=1, description="what customers get")
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/functions/{fn}/aliases/prod"
    alias = created.json()
    assert {k: alias[k] for k in ("name", "function_id", "version", "weights", "description")} == {
        "name": "prod", "function_id": fn, "version": 1, "weights": {},
        "description": "what customers get",
    }
    assert alias["updated_at"].endswith("Z") or "+" in alias["updated_at"]
    assert api.get(f"/functions/{fn}/aliases/prod").json() == alias
    assert put(api, fn, "canary", version=1, weights={"2": 0.25}).status_code == 201
    listed = api.get(f"/functions/{fn}/aliases").json()
    assert listed["id"] == fn
    assert [(a["name"], a["version"], a["weights"]) for a in listed["aliases"]] == [
        ("canary", 1, {"2": 0.25}), ("prod", 1, {}),
    ]

    first = api.post(f"/invoke/{fn}:prod", json={"n": 1}).json()
    assert (first["version"], first["alias"], first["output"]) == (1, "prod", {"n": 1})
    moved = put(api, fn, "prod", version=2)
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2 and moved.json()["created_at"] == alias["created_at"]
    after = api.post(f"/invoke/{fn}:prod", json={"n": 2}).json()
    assert (after["version"], after["alias"], after["output"]) == (2, "prod", HELLO)
    record = api.get(f"/executions/{after['execution_id']}").json()
    assert record["alias"] == "prod" and record["version"] == 2
    logs = api.get(f"/functions/{fn}/logs?limit=1").json()["executions"]
    assert logs[0]["alias"] == "prod" and logs[0]["version"] == 2

    plain = api.post(f"/invoke/{fn}", json={"n": 3}).json()
    assert plain["version"] == 2 and "alias" not in plain
    assert api.post(f"/invoke/{fn}@1", json={"n": 4}).json()["output"] == {"n": 4}
    assert api.post(f"/invoke/{fn}:latest", json={}).json()["version"] == 2

    assert api.delete(f"/functions/{fn}/aliases/prod").status_code == 204
    assert_problem(api.get(f"/functions/{fn}/aliases/prod"), 404, "alias_not_found")
    gone = assert_problem(api.post(f"/invoke/{fn}:prod", json={}), 404, "alias_not_found")
    assert gone["alias"] == "prod" and "prod" in gone["detail"]
    assert_problem(api.delete(f"/functions/{fn}/aliases/prod"), 404, "alias_not_found")
    assert [a["name"] for a in api.get(f"/functions/{fn}/aliases").json()["aliases"]] == ["canary"]


def test_a_90_10_split_over_1000_calls(api):
    fn = two_versions(api, "split")
    assert put(api, fn, "live", version=1, weights={"2": 0.1}).status_code == 201
    seen = Counter()
    for n in range(1000):
        r = api.post(f"/invoke/{fn}:live", json={"n": n})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["alias"] == "live"
        assert body["output"] == ({"n": n} if body["version"] == 1 else HELLO)
        seen[body["version"]] += 1
    assert set(seen) == {1, 2} and sum(seen.values()) == 1000
    assert 60 <= seen[2] <= 140, seen  # 10 % ± 4 %


def test_weights_summing_to_one_send_nothing_to_version(api):
    fn = two_versions(api, "whole")
    assert put(api, fn, "all", version=1, weights={"2": 1}).status_code == 201
    versions = {api.post(f"/invoke/{fn}:all", json={}).json()["version"] for _ in range(30)}
    assert versions == {2}


def test_rollback_by_moving_the_alias(api):
    fn = two_versions(api, "rollback")
    assert put(api, fn, "prod", version=1, weights={"2": 0.5}).status_code == 201
    versions = {api.post(f"/invoke/{fn}:prod", json={}).json()["version"] for _ in range(60)}
    assert versions == {1, 2}
    back = put(api, fn, "prod", version=1)  # the canary misbehaves: everything back to 1
    assert back.status_code == 200 and back.json()["weights"] == {}
    versions = {api.post(f"/invoke/{fn}:prod", json={}).json()["version"] for _ in range(40)}
    assert versions == {1}

    # Rolling `latest` back moves latest alone; aliases keep their versions.
    assert put(api, fn, "prod", version=2).status_code == 200
    assert api.post(f"/functions/{fn}/rollback", json={"version": 1}).status_code == 200
    assert api.post(f"/invoke/{fn}", json={}).json()["version"] == 1
    assert api.post(f"/invoke/{fn}:prod", json={}).json()["version"] == 2
    assert api.get(f"/functions/{fn}/aliases/prod").json()["version"] == 2


BAD_PUTS = [
    # (alias name, body, status, code, field)
    ("prod", {"version": 1, "weights": {"2": 0.6, "3": 0.5}}, 400, "invalid_request", "weights"),
    ("prod", {"version": 1, "weights": {"1": 0.1}}, 400, "invalid_request", "weights.1"),
    ("prod", {"version": 1, "weights": {"2": 0}}, 400, "invalid_request", "weights.2"),
    ("prod", {"version": 1, "weights": {"2": -0.1}}, 400, "invalid_request", "weights.2"),
    ("prod", {"version": 1, "weights": {"2": "0.1"}}, 400, "invalid_request", "weights.2"),
    ("prod", {"version": 1, "weights": {"2": True}}, 400, "invalid_request", "weights.2"),
    ("prod", {"version": 1, "weights": {"v2": 0.1}}, 400, "invalid_request", "weights.v2"),
    ("prod", {"version": 1, "weights": {"02": 0.1}}, 400, "invalid_request", "weights.02"),
    ("prod", {"version": 1, "weights": [2, 0.1]}, 400, "invalid_request", "weights"),
    ("prod", {"version": 1, "weights": {str(v): 0.1 for v in range(2, 7)}}, 400,
     "invalid_request", "weights"),
    ("prod", {"version": 99}, 404, "version_not_found", "version"),
    ("prod", {"version": 1, "weights": {"99": 0.1}}, 404, "version_not_found", "weights.99"),
    ("prod", {"version": "1"}, 400, "invalid_request", "version"),
    ("prod", {"version": 0}, 400, "invalid_request", "version"),
    ("prod", {"weights": {"2": 0.1}}, 400, "invalid_request", "version"),
    ("prod", {"version": 1, "description": "x" * 257}, 400, "invalid_request", "description"),
    ("prod", {"version": 1, "weight": {"2": 0.1}}, 400, "invalid_request", "weight"),
    ("prod", [1], 400, "invalid_request", "(body)"),
    ("Prod", {"version": 2}, 400, "invalid_request", "name"),
    ("123", {"version": 2}, 400, "invalid_request", "name"),
    ("latest", {"version": 2}, 400, "invalid_request", "name"),
    ("a" * 64, {"version": 2}, 400, "invalid_request", "name"),
]


@pytest.mark.parametrize(("name", "body", "status", "code", "field"), BAD_PUTS)
def test_bad_requests_are_refused_and_change_nothing(api, name, body, status, code, field):
    fn = two_versions(api, "refused")
    deploy_wat(api, fn, "echo.wat")  # version 3
    before = put(api, fn, "prod", version=1, weights={"2": 0.2}).json()
    refused = api.put(f"/functions/{fn}/aliases/{name}", json=body)
    problem = assert_problem(refused, status, code)
    assert problem["field"] == field, problem
    assert api.get(f"/functions/{fn}/aliases/prod").json() == before
    assert [a["name"] for a in api.get(f"/functions/{fn}/aliases").json()["aliases"]] == ["prod"]


def test_bodies_that_are_not_json_and_unknown_things(api):
    fn = two_versions(api, "notjson")
    before = put(api, fn, "prod", version=1).json()
    for raw in (b"{version: 2", b"", b"null"):
        r = api.put(f"/functions/{fn}/aliases/prod", content=raw,
                    headers={"Content-Type": "application/json"})
        assert assert_problem(r, 400, "invalid_request")["field"] == "(body)"
    assert api.get(f"/functions/{fn}/aliases/prod").json() == before

    assert_problem(api.get(f"/functions/{fn}/aliases/nope"), 404, "alias_not_found")
    assert_problem(api.delete(f"/functions/{fn}/aliases/nope"), 404, "alias_not_found")
    assert_problem(api.post(f"/invoke/{fn}:nope", json={}), 404, "alias_not_found")
    assert_problem(api.post(f"/invoke/{fn}:No", json={}), 404, "alias_not_found")
    assert_problem(api.post(f"/invoke/{fn}:prod@1", json={}), 400, "invalid_request")
    missing = unique("missing")
    assert_problem(put(api, missing, "prod", version=1), 404, "function_not_found")
    assert_problem(api.get(f"/functions/{missing}/aliases"), 404, "function_not_found")
    assert_problem(api.post(f"/invoke/{missing}:prod", json={}), 404, "function_not_found")
    assert api.get(f"/functions/{fn}/aliases/prod").json() == before


def test_deleting_the_function_deletes_its_aliases(api):
    fn = two_versions(api, "deleted")
    assert put(api, fn, "prod", version=2).status_code == 201
    assert api.post(f"/invoke/{fn}:prod", json={}).json()["version"] == 2
    assert api.delete(f"/functions/{fn}").status_code == 204
    assert_problem(api.post(f"/invoke/{fn}:prod", json={}), 404, "function_not_found")
    deploy_wat(api, fn, "echo.wat")  # the same id again: version 1, no aliases
    assert api.get(f"/functions/{fn}/aliases").json()["aliases"] == []
    assert_problem(api.post(f"/invoke/{fn}:prod", json={}), 404, "alias_not_found")


def test_async_calls_by_alias_record_the_version_they_ran(api):
    fn = two_versions(api, "later")
    assert put(api, fn, "prod", version=2).status_code == 201
    accepted = api.post(f"/invoke/{fn}:prod", json={}, headers={"Prefer": "respond-async"})
    assert accepted.status_code == 202, accepted.text
    done = eventually(
        lambda: (x := api.get(accepted.headers["Location"]).json())["status"] == "completed" and x
    )
    assert (done["version"], done["alias"], done["output"]) == (2, "prod", HELLO)


def test_roles_tenancy_and_audit(api, tiergate_server):
    fn = two_versions(api, "guarded")
    tenant = unique("other")
    invoker = api.post("/admin/keys", json={"tenant": "default", "roles": ["invoke"]}).json()
    stranger = api.post("/admin/keys", json={"tenant": tenant, "roles": ["deploy"]}).json()
    with tiergate_server.client(invoker["key"]) as client:
        assert_problem(put(client, fn, "prod", version=1), 403, "forbidden")
    assert put(api, fn, "prod", version=1).status_code == 201
    with tiergate_server.client(invoker["key"]) as client:
        assert client.post(f"/invoke/{fn}:prod", json={"k": 1}).json()["output"] == {"k": 1}
    with tiergate_server.client(stranger["key"]) as client:
        assert_problem(client.get(f"/functions/{fn}/aliases"), 404, "function_not_found")
        assert_problem(put(client, fn, "prod", version=2), 404, "function_not_found")
    assert put(api, fn, "prod", version=1, weights={"2": 0.5}).status_code == 200
    assert api.delete(f"/functions/{fn}/aliases/prod").status_code == 204
    entries = api.get("/admin/audit?limit=50").json()["entries"]
    mine = [(e["action"], e["details"]) for e in entries if e["target"] == f"default/{fn}:prod"]
    assert mine == [
        ("function.alias.delete", {}),
        ("function.alias.move", {"version": 1, "weights": {"2": 0.5}}),
        ("function.alias.create", {"version": 1, "weights": {}}),
    ]


def test_graph_nodes_name_versions_not_aliases(api):
    fn = two_versions(api, "graphed")
    assert put(api, fn, "prod", version=1).status_code == 201
    graph = {"id": unique("g"), "nodes": {"a": {"function": f"{fn}:prod"}}}
    problem = assert_problem(api.post("/graphs", json=graph), 400, "invalid_graph")
    assert problem["field"] == "nodes.a.function" and "alias" in problem["detail"]
