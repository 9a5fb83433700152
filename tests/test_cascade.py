"""The cascade over HTTP: code → generative → agentic → human, against the real ``openai``
client talking to a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import concurrent.futures
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest
from conftest import assert_problem, eventually, example, fixture, metric, unique
from llm_server import ScriptedLLM

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}


@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(llm, tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(
        tmp_path_factory.mktemp("cascade"),
        {
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test",
            "TIERGATE_CALLBACK_ALLOW_PRIVATE": "true",
            "TIERGATE_TASK_SWEEP_S": "0.3",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(gate):
    with gate.client() as client:
        yield client


def deploy(api, code="trap.wat", runtime="wasm", **manifest):
    fn = manifest.pop("id", None) or unique("casc")
    body = {"id": fn, **manifest}
    if code:
        source = example(code) if not code.endswith(".fixture") else fixture(code[:-8])
        body.update(runtime=runtime, code=source)
    r = api.post("/deploy", json=body)
    assert r.status_code == 201, r.text
    return fn


def statuses(result):
    return [(a["tier"], a["status"]) for a in result["attempts"]]


def test_generative_answers_when_the_code_fails(api, llm):
    model = llm.script(unique("gen"), [{"content": '{"answer": 42}'}])
    fn = deploy(
        api,
        description="answers questions",
        output_schema=SCHEMA,
        tiers={"generative": {"model": model, "prompt": "Be precise."}},
    )
    result = api.post(f"/invoke/{fn}", json={"q": "6 x 7"}).json()
    assert result["status"] == "completed" and result["tier"] == "generative"
    assert result["output"] == {"answer": 42}
    assert statuses(result) == [("code", "failed"), ("generative", "succeeded")]
    assert result["details"]["model"] == model
    request = llm.requests[model][0]
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert "answers questions" in system and "Be precise." in system and '"answer"' in system
    assert '"6 x 7"' in user
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == SCHEMA


def test_response_format_falls_back_when_refused(api, llm):
    model = llm.script(unique("fmt"), [{"refuse": "json_schema"}, {"content": '{"answer": 1}'}])
    fn = deploy(api, output_schema=SCHEMA, tiers={"generative": {"model": model}})
    assert api.post(f"/invoke/{fn}", json=1).json()["output"] == {"answer": 1}
    kinds = [r.get("response_format", {}).get("type") for r in llm.requests[model]]
    assert kinds == ["json_schema", "json_object"]


@pytest.mark.parametrize(
    ("step", "attempt_status", "words"),
    [
        ({"content": "sure! the answer is 42"}, "failed", "not JSON"),
        ({"content": '{"answer": "forty-two"}'}, "failed", "output_schema"),
        ({"status": 500, "error": "model overloaded"}, "failed", "HTTP 500"),
        ({"content": '{"answer": 1}', "delay": 2.0}, "timeout", "1 s"),
    ],
)
def test_generative_failure_modes(api, llm, step, attempt_status, words):
    model = llm.script(unique("gfail"), [step])
    fn = deploy(
        api,
        output_schema=SCHEMA,
        tiers={"generative": {"model": model}},
        cascade={"tier_timeouts_ms": {"generative": 1000}},
    )
    r = api.post(f"/invoke/{fn}", json=1)
    assert r.status_code == (504 if attempt_status == "timeout" else 500), r.text
    attempt = r.json()["attempts"][-1]
    assert attempt["tier"] == "generative" and attempt["status"] == attempt_status
    assert words in attempt["error"]


def test_retries_start_skip_and_fallback(api, llm):
    model = llm.script(unique("retry"), [{"content": "nope"}, {"content": '{"answer": 3}'}])
    fn = deploy(
        api,
        output_schema=SCHEMA,
        tiers={"generative": {"model": model}},
        cascade={"tier_retries": {"generative": 1}},
    )
    result = api.post(f"/invoke/{fn}", json=1).json()
    assert statuses(result) == [
        ("code", "failed"),
        ("generative", "failed"),
        ("generative", "succeeded"),
    ]
    assert [a["attempt"] for a in result["attempts"]] == [1, 1, 2]
    llm.script(model, [{"content": '{"answer": 4}'}])
    started = api.post(f"/invoke/{fn}?start_tier=generative", json=1).json()
    assert statuses(started) == [("generative", "succeeded")]
    skipped = api.post(f"/invoke/{fn}?skip_tiers=generative", json=1)
    assert statuses(assert_problem(skipped, 500, "cascade_exhausted")) == [("code", "failed")]
    stopped = api.post(f"/invoke/{fn}?fallback=false", json=1)
    assert statuses(assert_problem(stopped, 500, "cascade_exhausted")) == [("code", "failed")]
    manifest_start = deploy(
        api,
        output_schema=SCHEMA,
        tiers={"generative": {"model": model}},
        cascade={"start_tier": "generative"},
    )
    assert statuses(api.post(f"/invoke/{manifest_start}", json=1).json()) == [
        ("generative", "succeeded")
    ]


def test_parallel_lowest_successful_tier_wins(api, llm):
    model = llm.script(unique("par"), [{"content": '{"answer": 7}', "delay": 0.3}])
    fn = deploy(api, "echo.wat", tiers={"generative": {"model": model}}, cascade={"parallel": True})
    result = api.post(f"/invoke/{fn}", json={"answer": 1}).json()
    assert result["tier"] == "code" and result["output"] == {"answer": 1}
    assert ("generative", "cancelled") in statuses(result)
    failing = deploy(
        api, "trap.wat", tiers={"generative": {"model": model}}, cascade={"parallel": True}
    )
    result = api.post(f"/invoke/{failing}", json=1).json()
    assert result["tier"] == "generative" and result["output"] == {"answer": 7}


def test_no_endpoint_means_skipped(tiergate_factory, llm):
    server = tiergate_factory()  # no OPENAI_BASE_URL
    with server.client() as api:
        fn = deploy(api, tiers={"generative": {"model": "any"}, "agentic": {"model": "any"}})
        problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
        assert statuses(problem) == [
            ("code", "failed"),
            ("generative", "skipped"),
            ("agentic", "skipped"),
        ]
        assert "OPENAI_BASE_URL" in problem["attempts"][1]["error"]


def add_py():
    return "def handler(event, context):\n    return {'sum': event['a'] + event['b']}\n"


def test_agent_calls_tools_through_the_gateway(api, llm):
    adder = unique("add")
    r = api.post(
        "/deploy",
        json={
            "id": adder,
            "runtime": "python",
            "code": add_py(),
            "description": "adds a and b",
            "input_schema": {
                "type": "object",
                "required": ["a", "b"],
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            },
        },
    )
    assert r.status_code == 201, r.text
    model = llm.script(
        unique("agent"),
        [
            {"tool_calls": [{"name": adder, "arguments": {"a": 2, "b": 3}}]},
            lambda body: {
                "content": orjson.dumps(
                    {"answer": orjson.loads(body["messages"][-1]["content"])["sum"]}
                ).decode()
            },
        ],
    )
    fn = deploy(
        api,
        output_schema=SCHEMA,
        tiers={"agentic": {"model": model, "tools": [adder], "instructions": "use the tools"}},
    )
    result = api.post(f"/invoke/{fn}", json={"question": "2+3"}).json()
    assert result["tier"] == "agentic" and result["output"] == {"answer": 5}
    first = llm.requests[model][0]
    tool = first["tools"][0]["function"]
    assert tool["name"] == adder and tool["description"] == "adds a and b"
    assert tool["parameters"]["required"] == ["a", "b"]
    assert any(adder in e["message"] for e in result["logs"])
    tool_runs = api.get(f"/functions/{adder}/logs").json()["executions"]
    assert tool_runs and tool_runs[0]["status"] == "completed"  # through the invoke path


def test_agent_tool_errors_unknown_tools_and_endless_loops(api, llm):
    model = llm.script(
        unique("loop"),
        [
            {"tool_calls": [{"name": "not-a-tool", "arguments": {}}]},
            lambda body: {
                "content": orjson.dumps(
                    {"answer": 1 if "no tool" in body["messages"][-1]["content"] else 0}
                ).decode()
            },
        ],
    )
    fn = deploy(api, output_schema=SCHEMA, tiers={"agentic": {"model": model, "tools": []}})
    assert api.post(f"/invoke/{fn}", json=1).json()["output"] == {"answer": 1}
    tool = deploy(api, "echo.wat")
    forever = llm.script(unique("forever"), [{"tool_calls": [{"name": tool, "arguments": {}}]}])
    fn = deploy(api, tiers={"agentic": {"model": forever, "tools": [tool], "max_steps": 3}})
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert "max_steps" in problem["attempts"][-1]["error"]
    assert len(llm.requests[forever]) == 3


def test_model_tiers_that_could_never_run_are_refused_at_deploy(api, tiergate_factory):
    problem = assert_problem(
        api.post("/deploy", json={"id": unique("agent"), "tiers": {
            "agentic": {"model": "m", "tools": [unique("nowhere")]}}}),
        400, "invalid_manifest",
    )
    assert problem["field"] == "tiers.agentic.tools[0]" and "has no function" in problem["detail"]
    itself = unique("self-tool")
    body = {"id": itself, "tiers": {"agentic": {"model": "m", "tools": [itself]}}}
    assert api.post("/deploy", json=body).status_code == 201  # a function may be its own tool
    server = tiergate_factory({"TIERGATE_LLM_MODEL": ""})
    with server.client() as bare:
        for tier in ("generative", "agentic"):
            problem = assert_problem(
                bare.post("/deploy", json={"id": unique("nomodel"), "tiers": {tier: {}}}),
                400, "invalid_manifest",
            )
            assert problem["field"] == f"tiers.{tier}.model"
            assert "TIERGATE_LLM_MODEL" in problem["detail"]
    with tiergate_factory({"TIERGATE_LLM_MODEL": "default-model"}).client() as defaulted:
        body = {"id": unique("defaulted"), "tiers": {"generative": {}}}
        assert defaulted.post("/deploy", json=body).status_code == 201


def test_a_failing_tool_goes_back_to_the_model(api, llm):
    broken = deploy(api, "trap.wat")
    model = llm.script(
        unique("broken"),
        [
            {"tool_calls": [{"name": broken, "arguments": {"input": 1}}]},
            lambda body: {
                "content": orjson.dumps(
                    {"answer": 9 if "cascade_exhausted" in body["messages"][-1]["content"] else 0}
                ).decode()
            },
        ],
    )
    fn = deploy(api, output_schema=SCHEMA, tiers={"agentic": {"model": model, "tools": [broken]}})
    assert api.post(f"/invoke/{fn}", json=1).json()["output"] == {"answer": 9}


def test_tool_calls_are_bounded_in_depth(api, llm):
    fn = unique("recursive")
    model = llm.script(
        unique("deep"),
        [
            lambda body: (
                {"content": '{"answer": 0}'}
                if body["messages"][-1]["role"] == "tool"
                else {"tool_calls": [{"name": fn, "arguments": {"input": 1}}]}
            ),
        ],
    )
    deploy(api, None, id=fn, tiers={"agentic": {"model": model, "tools": [fn]}})
    result = api.post(f"/invoke/{fn}", json=1).json()
    assert result["output"] == {"answer": 0}
    requests = llm.requests[model]
    assert len(requests) == 8  # the agent at depth 0, 1, 2 and 3: a tool call, then an answer
    refused = [
        r["messages"][-1]["content"] for r in requests if r["messages"][-1]["role"] == "tool"
    ]
    assert any("nest deeper than 3" in content for content in refused)


def test_other_tenants_functions_are_not_tools(api, gate, llm):
    other = api.post("/admin/keys", json={"tenant": unique("other"), "roles": ["deploy"]})
    with gate.client(other.json()["key"]) as client:
        hidden = deploy(client, "echo.wat")
    agent = {"id": unique("agent"), "output_schema": SCHEMA,
             "tiers": {"agentic": {"model": "m", "tools": [hidden]}}}
    problem = assert_problem(api.post("/deploy", json=agent), 400, "invalid_manifest")
    assert problem["field"] == "tiers.agentic.tools[0]"
    gone = deploy(api, "echo.wat")  # a tool deleted after the deploy is not offered either
    model = llm.script(unique("tenant"), [{"content": '{"answer": 1}'}])
    fn = deploy(api, output_schema=SCHEMA, tiers={"agentic": {"model": model, "tools": [gone]}})
    assert api.delete(f"/functions/{gone}").status_code == 204
    api.post(f"/invoke/{fn}", json=1)
    assert "tools" not in llm.requests[model][0]


def test_a_dead_provider_fails_fast(tiergate_factory, llm):
    server = tiergate_factory({"OPENAI_BASE_URL": llm.base_url})  # a breaker of its own
    model = llm.script(unique("dead"), [{"status": 503, "error": "down"}])
    with server.client() as api:
        fn = deploy(api, None, output_schema=SCHEMA, tiers={"generative": {"model": model}})
        for _ in range(5):
            api.post(f"/invoke/{fn}", json=1)
        asked = len(llm.requests[model])
        problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
        assert "failing" in problem["attempts"][0]["error"]
        assert len(llm.requests[model]) == asked == 5  # the open breaker did not call it


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(orjson.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    server.shutdown()


HUMAN_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


def review_key(api, tenant="default"):
    return api.post("/admin/keys", json={"tenant": tenant, "roles": ["review"]}).json()["key"]


def test_human_review_end_to_end(api, gate, receiver):
    url, received = receiver
    fn = deploy(
        api,
        "trap.wat",
        output_schema=HUMAN_SCHEMA,
        tiers={"human": {"instructions": "Approve if the amount is small."}},
    )
    r = api.post(f"/invoke/{fn}", json={"amount": 12}, headers={"X-Callback-Url": url})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] == "awaiting_human"
    record = api.get(accepted["status_url"]).json()
    assert record["status"] == "awaiting_human" and record["tier"] == "human"
    alice, bob = review_key(api), review_key(api)
    with gate.client(alice) as a, gate.client(bob) as b:
        task = next(
            t
            for t in a.get("/tasks").json()["tasks"]
            if t["execution_id"] == accepted["execution_id"]
        )
        assert task["input"] == {"amount": 12} and task["instructions"].startswith("Approve")
        assert task["attempts"][0]["tier"] == "code"
        assert a.post(f"/tasks/{task['id']}/claim").status_code == 200
        assert_problem(
            b.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": True}}),
            409,
            "task_claimed",
        )
        bad = a.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": "yes"}})
        assert assert_problem(bad, 400, "invalid_output")["errors"][0]["path"] == "/approved"
        done = a.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": True}})
        assert done.status_code == 200, done.text
        assert_problem(
            a.post(f"/tasks/{task['id']}/complete", json={"output": {}}), 400, "invalid_request"
        )
    final = api.get(accepted["status_url"]).json()
    assert final["status"] == "completed" and final["tier"] == "human"
    assert final["output"] == {"approved": True}
    assert final["review"]["action"] == "completed" and final["review"]["by"]
    assert statuses(final)[-1] == ("human", "succeeded")
    callback = eventually(
        lambda: [c for c in received if c["execution_id"] == final["execution_id"]]
    )
    assert callback[0]["status"] == "completed"


def test_human_reject_cancel_and_tenancy(api, gate):
    fn = deploy(api, None, output_schema=HUMAN_SCHEMA, tiers={"human": {}})
    key = review_key(api)
    outsider = review_key(api, tenant=unique("elsewhere"))
    with gate.client(key) as reviewer, gate.client(outsider) as other:
        first = api.post(f"/invoke/{fn}", json=1).json()
        task = reviewer.get("/tasks?status=pending").json()["tasks"][-1]
        assert_problem(other.get(f"/tasks/{task['id']}"), 404, "task_not_found")
        assert task["id"] not in [t["id"] for t in other.get("/tasks").json()["tasks"]]
        assert_problem(
            reviewer.post(f"/tasks/{task['id']}/reject", json={}), 400, "invalid_request"
        )
        rejected = reviewer.post(f"/tasks/{task['id']}/reject", json={"reason": "not enough data"})
        assert rejected.json()["status"] == "failed"
        assert "not enough data" in api.get(f"/executions/{first['execution_id']}").json()["error"]
        second = api.post(f"/invoke/{fn}", json=2).json()
        cancelled = api.delete(f"/executions/{second['execution_id']}").json()
        assert cancelled["status"] == "cancelled"
        assert_problem(reviewer.get("/tasks/t_missing"), 404, "task_not_found")
        assert_problem(reviewer.post(f"/invoke/{fn}", json=1), 403, "forbidden")


def test_human_expiry_with_and_without_default(api):
    with_default = deploy(
        api,
        None,
        output_schema=HUMAN_SCHEMA,
        tiers={"human": {"expires_in_s": 1, "default_output": {"approved": False}}},
    )
    without = deploy(api, None, tiers={"human": {"expires_in_s": 1}})
    a = api.post(f"/invoke/{with_default}", json=1).json()
    b = api.post(f"/invoke/{without}", json=1).json()
    done_a = eventually(
        lambda: (r := api.get(a["status_url"]).json())["status"] != "awaiting_human" and r
    )
    done_b = eventually(
        lambda: (r := api.get(b["status_url"]).json())["status"] != "awaiting_human" and r
    )
    assert done_a["status"] == "completed" and done_a["output"] == {"approved": False}
    assert done_a["review"]["action"] == "expired"
    assert done_b["status"] == "timeout"


def test_callback_urls_are_checked(tiergate_factory):
    server = tiergate_factory()  # private addresses not allowed here
    with server.client() as api:
        fn = deploy(api, "echo.wat")
        for url in ("ftp://example.com/x", "http://127.0.0.1:9/hook", "not a url"):
            r = api.post(f"/invoke/{fn}", json=1, headers={"X-Callback-Url": url})
            assert_problem(r, 400, "invalid_request")


def test_pending_tasks_survive_a_restart(tiergate_factory):
    server = tiergate_factory()
    with server.client() as api:
        fn = deploy(api, None, output_schema=HUMAN_SCHEMA, tiers={"human": {}})
        waiting = api.post(f"/invoke/{fn}", json={"keep": True}).json()
    server.restart()
    with server.client() as api:
        key = review_key(api)
        with server.client(key) as reviewer:
            task = reviewer.get("/tasks").json()["tasks"][0]
            assert task["execution_id"] == waiting["execution_id"]
            done = reviewer.post(
                f"/tasks/{task['id']}/complete", json={"output": {"approved": True}}
            )
            assert done.status_code == 200, done.text
        assert api.get(waiting["status_url"]).json()["status"] == "completed"


def test_the_whole_cascade_and_its_metrics(api, gate, llm):
    generative = llm.script(unique("g"), [{"content": "not json"}])
    agentic = llm.script(unique("a"), [{"content": '{"answer": 11}'}])
    fn = deploy(
        api,
        output_schema=SCHEMA,
        tiers={"generative": {"model": generative}, "agentic": {"model": agentic}, "human": {}},
    )
    result = api.post(f"/invoke/{fn}", json=1).json()
    assert statuses(result) == [
        ("code", "failed"),
        ("generative", "failed"),
        ("agentic", "succeeded"),
    ]
    text = api.get("/metrics").text
    assert metric(text, "tiergate_tier_attempts_total", tier="agentic", status="succeeded") >= 1
    assert metric(text, "tiergate_tier_duration_seconds_count", tier="generative") >= 1


def test_async_invocations_reach_the_human_tier_too(api):
    fn = deploy(api, None, tiers={"human": {}})
    r = api.post(f"/invoke/{fn}", json=1, headers={"Prefer": "respond-async"})
    assert r.status_code == 202
    record = eventually(
        lambda: (x := api.get(r.json()["status_url"]).json())["status"] == "awaiting_human" and x
    )
    assert record["tier"] == "human"


def test_concurrent_reviewers_cannot_both_answer(api, gate):
    fn = deploy(api, None, tiers={"human": {}})
    execution = api.post(f"/invoke/{fn}", json=1).json()
    keys = [review_key(api) for _ in range(4)]
    task = api.get("/tasks").json()["tasks"]
    task_id = next(t["id"] for t in task if t["execution_id"] == execution["execution_id"])

    def answer(key):
        with gate.client(key) as client:
            return client.post(f"/tasks/{task_id}/complete", json={"output": {"by": key[:6]}})

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(r.status_code for r in pool.map(answer, keys))
    assert codes.count(200) == 1
