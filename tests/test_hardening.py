"""Small holes in the HTTP layer, each closed and held shut here, over HTTP against real servers:
secrets in error details, numeric parameters, slow clients, callback addresses, the last admin
key, rate limits and admins, tenant choice, and the reviewer page's headers."""

from __future__ import annotations

import os

import orjson
import pytest
from conftest import assert_problem, deploy_wat, eventually, unique

LEAKY = """
import time

def handler(event, context):
    token = context.secrets["LEAK_TOKEN"]
    print(f"printed: {token}")
    if event == "raise":
        raise RuntimeError(f"raised: {token}")
    if event == "hang":
        time.sleep(60)
    if event == "bad-output":
        return token  # breaks output_schema, whose error message quotes the value
    return {"ok": True}
"""


def test_a_secret_never_leaves_in_any_answer_record_or_log(api, tiergate_server):
    secret = f"hardening-secret-{os.urandom(8).hex()}"
    assert api.put("/admin/secrets/default/LEAK_TOKEN", json={"value": secret}).status_code == 200
    fn = unique("leaky")
    manifest = {
        "id": fn,
        "runtime": "python",
        "code": LEAKY,
        "secrets": ["LEAK_TOKEN"],
        "output_schema": {"type": "object"},
        "limits": {"timeout_ms": 1500},
    }
    assert api.post("/deploy", json=manifest).status_code == 201
    answers = [ok := api.post(f"/invoke/{fn}", json="ok")]
    assert ok.status_code == 200 and "[redacted]" in str(ok.json()["logs"])
    raised = api.post(f"/invoke/{fn}", json="raise")
    assert "[redacted]" in assert_problem(raised, 500, "cascade_exhausted")["detail"]
    bad = api.post(f"/invoke/{fn}", json="bad-output")
    assert "[redacted]" in assert_problem(bad, 500, "cascade_exhausted")["detail"]
    hung = api.post(f"/invoke/{fn}", json="hang")
    assert_problem(hung, 504, "timeout")
    later = api.post(f"/invoke/{fn}", json="raise", headers={"Prefer": "respond-async"})
    assert later.status_code == 202
    answers += [raised, bad, hung, later]
    executions = [ok.json()["execution_id"], later.json()["execution_id"]] + [
        r.json()["execution_id"] for r in (raised, bad, hung)
    ]
    eventually(lambda: api.get(f"/executions/{executions[1]}").json()["status"] == "failed")
    answers += [
        eventually(lambda e=e: (r := api.get(f"/executions/{e}")).is_success and r)
        for e in executions
    ]
    answers.append(api.get(f"/functions/{fn}/logs"))
    assert all(r.status_code in (200, 202, 500, 504) for r in answers)
    for answer in answers:
        assert secret not in answer.text, answer.text
    assert "[redacted]" in answers[-1].text
    assert secret not in tiergate_server.log()


HUGE = "9" * 5000  # int() refuses strings this long


@pytest.fixture(scope="module")
def echo(tiergate_server):
    fn = unique("numbers")
    with tiergate_server.client() as api:
        deploy_wat(api, fn)
    return fn


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/invoke/{fn}@99999999999999999999", 1, 404, "version_not_found"),
        ("POST", "/invoke/{fn}@" + HUGE, 1, 404, "version_not_found"),
        ("POST", "/invoke/{fn}@9999999999", 1, 404, "version_not_found"),
        ("POST", "/invoke/{fn}@1%C2%B2", 1, 404, "version_not_found"),  # '1²' passes isdigit()
        ("POST", "/invoke/{fn}?timeout_ms=" + HUGE, 1, 400, "invalid_request"),
        ("POST", "/invoke/{fn}?timeout_ms=%C2%B2", 1, 400, "invalid_request"),
        ("GET", "/functions/{fn}/logs?limit=" + HUGE, None, 400, "invalid_request"),
        ("GET", "/functions/{fn}/logs?limit=%C2%B2", None, 400, "invalid_request"),
        ("GET", "/functions/{fn}/logs?before=%ED%A0%80", None, 200, None),
        ("GET", "/admin/audit?limit=%C2%B2", None, 400, "invalid_request"),
        ("POST", "/functions/{fn}/rollback", {"version": 10**20}, 400, "invalid_request"),
        ("POST", "/functions/{fn}/rollback", {"version": 2**64 - 1}, 404, "version_not_found"),
        (
            "POST",
            "/admin/storage/migrate",
            {"id": "{fn}", "version": 2**64 - 1},
            404,
            "version_not_found",
        ),
    ],
)
def test_numeric_parameters_answer_problems(api, echo, method, path, body, status, code):
    if isinstance(body, dict) and body.get("id") == "{fn}":
        body = {**body, "id": echo}
    r = api.request(method, path.format(fn=echo), json=body)
    if code is None:
        assert r.status_code == status, r.text
    else:
        assert_problem(r, status, code)


def test_a_problem_whose_extension_json_cannot_hold_still_renders():
    from gateway.errors import VersionNotFound
    from gateway.problems import problem_response

    response = problem_response(VersionNotFound("no such version", version=10**30))
    assert response.status == 404 and response.content_type == "application/problem+json"
    assert orjson.loads(response.body)["version"] == str(10**30)
