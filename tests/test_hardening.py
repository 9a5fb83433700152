"""Small holes in the HTTP layer, each closed and held shut here, over HTTP against real servers:
secrets in error details, numeric parameters, slow clients, callback addresses, the last admin
key, rate limits and admins, tenant choice, and the reviewer page's headers."""

from __future__ import annotations

import os

from conftest import assert_problem, eventually, unique

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
