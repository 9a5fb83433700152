"""Who is calling, as a Python function sees it: ``context.caller`` (the API key, or the cause of
work the gateway started), ``context.custom`` (the ``X-Tiergate-Context`` header) and
``context.trace_id``, through sync and async invokes, an event trigger, a chain and a graph node."""

from __future__ import annotations

import pytest
from conftest import assert_problem, eventually, unique

WHO = (
    "def handler(event, context):\n"
    "    return {'caller': context.caller, 'custom': context.custom,\n"
    "            'trace_id': context.trace_id}\n"
)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def deploy(api, fn: str, **manifest) -> None:
    answer = api.post("/deploy", json={"id": fn, "runtime": "python", "code": WHO, **manifest})
    assert answer.status_code == 201, answer.text


def ended(api, execution_id: str) -> dict:
    def done():
        body = api.get(f"/executions/{execution_id}").json()
        return body if body["status"] in ("completed", "failed") else None

    return eventually(done, timeout=30)


@pytest.fixture
def invoker(tiergate_server, api):
    made = api.post("/admin/keys", json={"tenant": "default", "roles": ["invoke"],
                                         "name": "caller-test"}).json()
    with tiergate_server.client(made["key"]) as client:
        yield client, made["id"]


def test_the_key_and_the_context_header_reach_the_code(api, invoker):
    client, key_id = invoker
    fn = unique("who")
    deploy(api, fn)
    answer = client.post(
        f"/invoke/{fn}",
        json={},
        headers={
            "X-Tiergate-Context": '{"user": "u-17", "locale": "de"}',
            "traceparent": f"00-{TRACE}-b7ad6b7169203331-01",
        },
    )
    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    assert output == {
        "caller": {"key_id": key_id, "tenant": "default", "roles": ["invoke"]},
        "custom": {"user": "u-17", "locale": "de"},
        "trace_id": TRACE,
    }
    shown = api.get(f"/executions/{answer.json()['execution_id']}").json()
    assert shown["caller"] == output["caller"] and shown["custom"] == output["custom"]

    queued = client.post(f"/invoke/{fn}", json={}, headers={
        "Prefer": "respond-async", "X-Tiergate-Context": "[1, 2]"})
    assert queued.status_code == 202
    done = ended(api, queued.json()["execution_id"])
    assert done["output"]["caller"]["key_id"] == key_id
    assert done["output"]["custom"] == [1, 2]
    assert client.post(f"/invoke/{fn}", json={}).json()["output"]["custom"] is None


def test_a_bad_context_header_is_refused_before_anything_runs(api):
    fn = unique("who")
    deploy(api, fn)
    problem = assert_problem(
        api.post(f"/invoke/{fn}", json={}, headers={"X-Tiergate-Context": "{nope"}),
        400, "invalid_request",
    )
    assert "X-Tiergate-Context is not valid JSON" in problem["detail"]
    big = '"' + "x" * 5000 + '"'
    problem = assert_problem(
        api.post(f"/invoke/{fn}", json={}, headers={"X-Tiergate-Context": big}),
        400, "invalid_request",
    )
    assert "at most 4096" in problem["detail"]
    assert api.get(f"/functions/{fn}/logs").json()["executions"] == []


def test_work_the_gateway_started_names_its_cause_as_the_caller(api):
    target, first, gid = unique("who"), unique("who"), unique("who-graph")
    deploy(api, target, triggers=[{"event": "who.called"}])
    deploy(api, first, chains=[{"to": target}])
    event = api.post("/events", json={"type": "who.called", "data": {}}).json()
    triggered = ended(api, event["started"][0])
    assert triggered["output"]["caller"] == {"kind": "event", "event_id": event["event_id"]}
    assert "caller" not in triggered  # no key asked for it: its cause says who did

    parent = api.post(f"/invoke/{first}", json={}).json()["execution_id"]
    child = eventually(lambda: api.get(f"/executions/{parent}").json()["children"])[0]
    assert ended(api, child)["output"]["caller"] == {"kind": "chain", "execution_id": parent}

    assert api.post("/graphs", json={"id": gid, "nodes": {"node": {"function": target}}}
                    ).status_code == 201
    run = api.post(f"/graphs/{gid}/runs", json={}).json()
    caller = run["nodes"]["node"]["output"]["caller"]
    assert caller == {"kind": "graph", "run_id": run["run_id"], "graph_id": gid, "node": "node"}
