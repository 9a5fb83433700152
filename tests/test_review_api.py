"""What the reviewer page reads from the API: ``GET /whoami``, a task's claim holder by key id and
the end of its earlier attempts' logs (a review key cannot read the execution), ``review.at`` as
ISO-8601 like every other time, and ``trace_id`` on the 200 answer of ``POST /invoke``."""

from __future__ import annotations

import re
from datetime import datetime

from conftest import assert_problem, deploy_wat, unique

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}
NOISY = """
def handler(event, context):
    for n in range(80):
        print(f"line {n}")
    raise ValueError("cannot decide this one")
"""


def new_key(api, name, roles=("review",), tenant="default"):
    made = api.post("/admin/keys", json={"tenant": tenant, "roles": list(roles), "name": name})
    assert made.status_code in (200, 201), made.text
    return made.json()


def waiting_task(api, fn, data=1):
    accepted = api.post(f"/invoke/{fn}", json=data)
    assert accepted.status_code == 202, accepted.text
    execution_id = accepted.json()["execution_id"]
    tasks = api.get("/tasks").json()["tasks"]
    return next(t for t in tasks if t["execution_id"] == execution_id), execution_id


def human_function(api, **manifest):
    fn = unique("asks")
    body = {"id": fn, "output_schema": SCHEMA, "tiers": {"human": {}}, **manifest}
    assert api.post("/deploy", json=body).status_code == 201
    return fn


def test_whoami_tells_a_key_who_it_is(api, tiergate_server):
    made = new_key(api, "ada", roles=("review", "invoke"))
    with tiergate_server.client(made["key"]) as ada:
        assert ada.get("/whoami").json() == {
            "key_id": made["id"],
            "name": "ada",
            "tenant": "default",
            "roles": ["invoke", "review"],
        }
    admin = api.get("/whoami").json()
    assert "admin" in admin["roles"] and admin["tenant"] == "default"
    assert set(admin) == {"key_id", "name", "tenant", "roles"}
    with tiergate_server.client(key="") as anonymous:
        assert_problem(anonymous.get("/whoami"), 401, "unauthenticated")
    with tiergate_server.client("tg_not_a_key") as stranger:
        assert_problem(stranger.get("/whoami"), 401, "unauthenticated")


def test_review_at_is_iso_8601_in_every_execution_document(api, tiergate_server):
    fn = human_function(api)
    reviewer = new_key(api, "grace")
    with tiergate_server.client(reviewer["key"]) as grace:
        task, done_id = waiting_task(api, fn)
        done = grace.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": True}})
        assert done.status_code == 200, done.text
        task, rejected_id = waiting_task(api, fn)
        rejected = grace.post(f"/tasks/{task['id']}/reject", json={"reason": "no data"})
        assert rejected.status_code == 200, rejected.text
    for answer, execution_id in ((done.json(), done_id), (rejected.json(), rejected_id)):
        shown = api.get(f"/executions/{execution_id}").json()
        for review in (answer["review"], shown["review"]):
            assert isinstance(review["at"], str) and ISO.match(review["at"]), review
            assert review["by"] == reviewer["id"] and review["by_name"] == "grace"
        at = datetime.fromisoformat(shown["review"]["at"].replace("Z", "+00:00"))
        started = datetime.fromisoformat(shown["started_at"].replace("Z", "+00:00"))
        assert started <= at
    assert api.get(f"/executions/{rejected_id}").json()["review"]["reason"] == "no data"


def test_an_expired_task_has_an_iso_review_time_too(api):
    from conftest import eventually

    fn = human_function(api, tiers={"human": {"expires_in_s": 1}})
    accepted = api.post(f"/invoke/{fn}", json=1).json()
    ended = eventually(
        lambda: (r := api.get(accepted["status_url"]).json())["status"] != "awaiting_human" and r
    )
    assert ended["review"]["action"] == "expired" and ISO.match(ended["review"]["at"])


def test_the_sync_answer_carries_the_trace_id(api):
    fn = unique("traced")
    deploy_wat(api, fn)
    answer = api.post(
        f"/invoke/{fn}", json={"a": 1}, headers={"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace_id"] == TRACE
    assert api.get(f"/executions/{body['execution_id']}").json()["trace_id"] == TRACE
    fresh = api.post(f"/invoke/{fn}", json=2).json()
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["trace_id"])
    assert fresh["trace_id"] != TRACE
    assert api.get(f"/executions/{fresh['execution_id']}").json()["trace_id"] == fresh["trace_id"]
    # the hot path stays lean: the fields of GET /executions beyond trace_id are not on it
    assert "started_at" not in body and "input" not in body


def test_a_task_shows_its_claim_holder_and_the_end_of_its_logs(api, tiergate_server):
    fn = unique("noisy")
    body = {
        "id": fn,
        "runtime": "python",
        "code": NOISY,
        "output_schema": SCHEMA,
        "tiers": {"human": {"instructions": "look at the logs"}},
    }
    assert api.post("/deploy", json=body).status_code == 201
    task, execution_id = waiting_task(api, fn)
    made = new_key(api, "linus")
    with tiergate_server.client(made["key"]) as linus:
        assert_problem(linus.get(f"/executions/{execution_id}"), 403, "forbidden")
        shown = linus.get(f"/tasks/{task['id']}").json()
        assert shown["attempts"][0]["error"] == "ValueError: cannot decide this one"
        messages = [line["message"] for line in shown["logs"]]
        assert len(messages) == 50 < shown["logs_total"]
        text = "\n".join(messages)
        assert "Traceback (most recent call last)" in text and "ValueError" in text
        printed = {m.strip() for m in messages if m.startswith("line ")}
        assert "line 79" in printed and "line 0" not in printed  # the last 50 lines, not the first
        assert all(line["stream"] in ("stdout", "stderr", "log") for line in shown["logs"])
        assert shown["claimed_by"] is None and shown["claimed_by_id"] is None
        claimed = linus.post(f"/tasks/{task['id']}/claim").json()
        assert claimed["claimed_by"] == "linus" and claimed["claimed_by_id"] == made["id"]
        assert ISO.match(claimed["claimed_until"])
        listed = next(t for t in linus.get("/tasks").json()["tasks"] if t["id"] == task["id"])
        assert listed["claimed_by_id"] == made["id"] and "logs" not in listed
        released = linus.post(f"/tasks/{task['id']}/release").json()
        assert released["claimed_by"] is None and released["claimed_by_id"] is None
    full = api.get(f"/executions/{execution_id}").json()
    assert shown["logs"] == full["logs"][-50:] and shown["logs_total"] == len(full["logs"])
