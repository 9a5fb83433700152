"""Functions calling functions from code (``context.invoke`` in Python), through the gateway's
own invoke path: the output comes back, the callee's execution names the call as its cause and
its caller, refusals come back as ``InvokeError`` with the API's code, the depth is capped, and a
call never reaches another tenant's function."""

from __future__ import annotations

from conftest import deploy_wat, unique

CALLER = (
    "def handler(event, context):\n"
    "    out = context.invoke(event['to'], event.get('input'))\n"
    "    return {'got': out, 'me': context.execution_id}\n"
)
CATCHES = (
    "def handler(event, context):\n"
    "    try:\n"
    "        return {'got': context.invoke(event['to'], event.get('input'))}\n"
    "    except context.InvokeError as exc:\n"
    "        return {'code': exc.code, 'detail': exc.detail}\n"
)
WHO = "def handler(event, context):\n    return {'caller': context.caller, 'in': event}\n"
RECURSES = (
    "def handler(event, context):\n"
    "    n = event['n']\n"
    "    try:\n"
    "        return context.invoke(event['self'], {'n': n + 1, 'self': event['self']})\n"
    "    except context.InvokeError as exc:\n"
    "        return {'deepest': n, 'code': exc.code}\n"
)


def deploy(api, fn: str, code: str, **manifest) -> None:
    answer = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert answer.status_code == 201, answer.text


def invoke(api, fn: str, data) -> dict:
    answer = api.post(f"/invoke/{fn}", json=data)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_function_calls_another_and_the_call_is_its_cause(api):
    caller, callee, echo = unique("caller"), unique("callee"), unique("echo")
    deploy(api, caller, CALLER)
    deploy(api, callee, WHO)
    deploy_wat(api, echo)
    body = invoke(api, caller, {"to": callee, "input": {"x": 1}})
    parent = body["execution_id"]
    assert body["output"] == {
        "got": {"caller": {"kind": "call", "execution_id": parent}, "in": {"x": 1}},
        "me": parent,
    }
    child_id = api.get(f"/functions/{callee}/logs").json()["executions"][0]["execution_id"]
    child = api.get(f"/executions/{child_id}").json()
    assert child["cause"] == {"kind": "call", "execution_id": parent}
    assert child["trace_id"] == api.get(f"/executions/{parent}").json()["trace_id"]
    assert invoke(api, caller, {"to": f"{echo}@1", "input": [1, 2]})["output"]["got"] == [1, 2]


def test_refusals_and_failures_come_back_as_invoke_errors(api):
    catches, fails = unique("catches"), unique("fails")
    deploy(api, catches, CATCHES)
    deploy(api, fails, "def handler(event, context):\n    raise ValueError('no')\n")
    missing = invoke(api, catches, {"to": unique("nowhere")})["output"]
    assert missing["code"] == "function_not_found"
    bad = invoke(api, catches, {"to": "Not An Id"})["output"]
    assert bad["code"] == "invalid_function_id"
    failed = invoke(api, catches, {"to": fails})["output"]
    assert failed["code"] == "cascade_exhausted" and "no" in failed["detail"]
    uncaught = api.post(f"/invoke/{unique('caller')}", json={})
    assert uncaught.status_code == 404  # (the caller itself does not exist)


def test_calls_nest_at_most_four_deep(api):
    fn = unique("recurses")
    deploy(api, fn, RECURSES, pool={"max_size": 6})
    assert invoke(api, fn, {"n": 0, "self": fn})["output"] == {
        "deepest": 4, "code": "call_too_deep"}


def test_a_call_stays_in_the_callers_tenant(tiergate_server, api):
    theirs = unique("private")
    other = api.post("/admin/keys", json={"tenant": unique("other"),
                                          "roles": ["deploy", "invoke"]}).json()
    with tiergate_server.client(other["key"]) as them:
        deploy(them, theirs, WHO)
        assert invoke(them, theirs, {})["output"]["in"] == {}
    catches = unique("catches")
    deploy(api, catches, CATCHES)
    assert invoke(api, catches, {"to": theirs})["output"]["code"] == "function_not_found"


def test_calls_from_code_run_under_their_callers_slot(tiergate_factory):
    """With one slot for the whole gateway, a function that calls another still answers: the
    callee does not queue for the slot its caller holds (it would wait there until its
    deadline)."""
    server = tiergate_factory({"TIERGATE_CONCURRENCY": "1", "TIERGATE_QUEUE_SIZE": "4"})
    with server.client() as api:
        deploy(api, "caller", CALLER, limits={"timeout_ms": 20_000})
        deploy(api, "callee", WHO)
        body = invoke(api, "caller", {"to": "callee", "input": 1})
        assert body["output"]["got"]["in"] == 1
