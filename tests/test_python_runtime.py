"""The python runtime over HTTP: output and logs, async handlers, errors, isolation, pools."""

from __future__ import annotations

import concurrent.futures
import os
import socket

import pytest
from conftest import assert_problem, example, fixture, unique

CANARY = "TIERGATE_TEST_CANARY_VALUE_5d1e"


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    from plugins.testing import TiergateServer

    os.environ["TIERGATE_CANARY_FOR_TESTS"] = CANARY  # the gateway inherits it; functions must not
    try:
        server = TiergateServer(
            tmp_path_factory.mktemp("python"), {"TIERGATE_CANARY_FOR_TESTS": CANARY}
        ).start()
    finally:
        del os.environ["TIERGATE_CANARY_FOR_TESTS"]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(gate):
    with gate.client() as client:
        yield client


def deploy_py(api, code, fn=None, **manifest):
    fn = fn or unique("py")
    r = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert r.status_code == 201, r.text
    return fn


@pytest.fixture(scope="module")
def probe(api):
    return deploy_py(
        api,
        fixture("python_probe.py"),
        env={"FROM_MANIFEST": "yes"},
        limits={"timeout_ms": 2000, "memory_mb": 64},
    )


def test_output_and_logs_with_levels(api):
    fn = deploy_py(api, example("greet.py"), env={"GREETING": "hi"})
    out = api.post(f"/invoke/{fn}", json={"name": "Ada"}).json()
    assert out["output"] == {"message": "hi, Ada!"} and out["status"] == "completed"
    streams = [(e["stream"], e.get("level")) for e in out["logs"]]
    assert ("stdout", None) in streams and ("log", "INFO") in streams
    assert any(e["message"] == "greeting Ada" for e in out["logs"])


def test_async_handler(api):
    fn = deploy_py(api, example("slow.py"))
    assert api.post(f"/invoke/{fn}", json={"seconds": 0.05}).json()["output"] == {"slept": 0.05}


def test_exception_message_and_traceback(api, probe):
    problem = assert_problem(
        api.post(f"/invoke/{probe}", json={"action": "raise"}), 500, "cascade_exhausted"
    )
    assert problem["attempts"][0]["error"] == "ValueError: asked to fail"
    record = api.get(f"/executions/{problem['execution_id']}").json()
    assert any("Traceback" in e["message"] for e in record["logs"])


def test_output_must_be_json(api, probe):
    problem = assert_problem(
        api.post(f"/invoke/{probe}", json={"action": "not-json"}), 500, "cascade_exhausted"
    )
    assert "JSON" in problem["attempts"][0]["error"]


@pytest.mark.parametrize(
    ("code", "words", "line"),
    [
        ("def handler(event, context):\n    return (\n", "SyntaxError", 2),
        ("x = 1\n", "no `handler", None),
        ("handler = 5\n", "not a function", None),
        ("import not_a_module_anywhere\ndef handler(e, c):\n    return 1\n", "ModuleNotFound", 1),
        ("raise RuntimeError('boom at import')\n", "boom at import", 1),
    ],
)
def test_compile_errors(api, code, words, line):
    r = api.post("/deploy", json={"id": unique("bad"), "runtime": "python", "code": code})
    problem = assert_problem(r, 422, "compile_error")
    assert words in problem["detail"]
    assert problem.get("line") == line


def test_timeout_kills_the_worker_and_others_keep_answering(api, probe):
    echo = deploy_py(api, example("py-echo.py"))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        stuck = pool.submit(api.post, f"/invoke/{probe}", json={"action": "loop"})
        answered = 0
        while not stuck.done():
            assert api.post(f"/invoke/{echo}", json=answered).json()["output"] == answered
            answered += 1
        problem = assert_problem(stuck.result(), 504, "timeout")
    assert problem["attempts"][0]["status"] == "timeout" and answered >= 3
    first = api.post(f"/invoke/{probe}", json={}).json()["output"]
    second = api.post(f"/invoke/{probe}", json={}).json()["output"]
    assert first["worker"] == second["worker"] and second["calls"] == first["calls"] + 1


def test_memory_bomb_fails_that_call_only(api, probe):
    problem = assert_problem(
        api.post(f"/invoke/{probe}", json={"action": "memory"}), 500, "cascade_exhausted"
    )
    assert (
        "MemoryError" in problem["attempts"][0]["error"]
        or "died" in problem["attempts"][0]["error"]
    )
    assert api.post(f"/invoke/{probe}", json={"value": 1}).json()["output"]["input"] == 1


def test_os_exit_fails_that_call_and_the_worker_is_replaced(api, probe):
    before = api.post(f"/invoke/{probe}", json={}).json()["output"]["worker"]
    problem = assert_problem(
        api.post(f"/invoke/{probe}", json={"action": "exit"}), 500, "cascade_exhausted"
    )
    assert "exit status 3" in problem["attempts"][0]["error"]
    after = api.post(f"/invoke/{probe}", json={}).json()["output"]
    assert after["calls"] == 1 and after["worker"] != before  # a fresh worker, freshly imported


def test_clean_environment_private_directory_hidden_gateway(api, probe, gate):
    out = api.post(f"/invoke/{probe}", json={}).json()["output"]
    assert out["env"]["FROM_MANIFEST"] == "yes"
    assert str(gate.process.pid) not in out["processes"] or len(out["processes"]) <= 2
    assert CANARY not in str(out["env"]) and not any(k.startswith("TIERGATE") for k in out["env"])
    assert out["cwd_files"] == []
    key_file = gate.data_dir / "admin.key"
    read = api.post(f"/invoke/{probe}", json={"action": "read", "path": str(key_file)}).json()
    assert "read" not in read["output"]
    environ = f"/proc/{gate.process.pid}/environ"
    read = api.post(f"/invoke/{probe}", json={"action": "read", "path": environ}).json()
    assert "read" not in read["output"] or CANARY not in read["output"]["read"]


def test_no_network(api, probe):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = api.post(f"/invoke/{probe}", json={"action": "connect", "port": port}).json()
    assert out["output"]["connected"] is False


def test_secrets_only_in_context_and_redacted(api, gate):
    tenant_key = api.post("/admin/keys", json={"tenant": "default", "roles": ["deploy", "invoke"]})
    assert tenant_key.status_code == 201
    secret = "py-secret-value-that-must-not-leak-91a2"
    api.put("/admin/secrets/default/API_TOKEN", json={"value": secret})
    granted = deploy_py(api, fixture("python_probe.py"), secrets=["API_TOKEN"])
    other = deploy_py(api, fixture("python_probe.py"))
    seen = api.post(f"/invoke/{granted}", json={"action": "secret"}).json()
    assert seen["output"] == {"has_secret": True, "in_env": False}
    assert secret not in str(seen) and "[redacted]" in str(seen["logs"])
    assert api.post(f"/invoke/{other}", json={"action": "secret"}).json()["output"] == {
        "has_secret": False,
        "in_env": False,
    }


def test_64_concurrent_calls_return_the_right_results(api):
    fn = deploy_py(api, example("py-echo.py"), pool={"kind": "lazy", "max_size": 4})
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda i: api.post(f"/invoke/{fn}", json={"i": i}), range(64)))
    assert [r.json()["output"] for r in results] == [{"i": i} for i in range(64)]


def _pids(api, fn, calls, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        answers = list(
            pool.map(lambda _: api.post(f"/invoke/{fn}", json={"seconds": 0.2}), range(calls))
        )
    return {a.json()["output"]["worker"] for a in answers}


SLOW_PID = (
    "import asyncio, os\n"
    "WORKER = os.urandom(8).hex()\n"
    "async def handler(event, context):\n"
    "    await asyncio.sleep(event.get('seconds', 0))\n"
    "    return {'worker': WORKER}\n"
)


def test_static_pool_keeps_its_size(api):
    fn = deploy_py(api, SLOW_PID, pool={"kind": "static", "size": 2})
    assert len(_pids(api, fn, 8)) == 2


def test_lazy_pool_grows_then_reaps_idle_workers(api):
    import time

    fn = deploy_py(api, SLOW_PID, pool={"kind": "lazy", "max_size": 3, "idle_timeout_s": 1})
    assert len(_pids(api, fn, 9)) == 3
    time.sleep(3.5)
    assert len(_pids(api, fn, 1, workers=1)) == 1


def test_adaptive_pool_grows_under_load(api):
    fn = deploy_py(api, SLOW_PID, pool={"kind": "adaptive", "min_size": 1, "max_size": 4})
    assert len(_pids(api, fn, 12)) > 1


def test_static_pool_queue_full(api):
    fn = deploy_py(api, SLOW_PID, pool={"kind": "static", "size": 1, "queue_size": 1})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: api.post(f"/invoke/{fn}", json={"seconds": 0.5}), range(4))
        )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 2 and codes.count(429) == 2
    refused = next(a for a in answers if a.status_code == 429)
    assert_problem(refused, 429, "queue_full")


def test_tenants_never_share_a_worker(api, gate):
    workers = set()
    for tenant in (unique("ta"), unique("tb")):
        key = api.post("/admin/keys", json={"tenant": tenant, "roles": ["deploy", "invoke"]})
        with gate.client(key.json()["key"]) as client:
            fn = deploy_py(client, SLOW_PID, fn="same-name")
            for _ in range(3):
                workers.add(client.post(f"/invoke/{fn}", json={}).json()["output"]["worker"])
    assert len(workers) == 2


def test_bad_pool_options(api):
    r = api.post(
        "/deploy",
        json={
            "id": unique("badpool"),
            "runtime": "python",
            "code": example("py-echo.py"),
            "pool": {"kind": "huge"},
        },
    )
    assert_problem(r, 400, "invalid_manifest")


FORGER = (
    "import os\n"
    "from plugins.workers.child import _Pipes\n"
    "from plugins.workers.framing import LOG_ID, encode\n"
    "def handler(event, context):\n"
    "    frame = encode(LOG_ID, [event['id'], [[1.0, 'stdout', 'x' * 1000, None]] * 100])\n"
    "    for _ in range(event['frames']):\n"
    "        os.write(_Pipes.write_fd, frame)\n"
    "    return 'done'\n"
)


@pytest.mark.parametrize("frame_id", [1, 987654])  # its own request, and one that is not
def test_code_forging_log_frames_past_the_log_budget_loses_its_worker(api, frame_id):
    """Code can write to its worker's pipe; log frames past what a call's log budget can keep
    end its worker, instead of keeping the gateway's loop decoding them. A few are harmless."""
    fn = unique("forger")
    assert api.post("/deploy", json={"id": fn, "runtime": "python",
                                     "code": FORGER}).status_code == 201
    few = api.post(f"/invoke/{fn}", json={"id": frame_id, "frames": 2})
    assert few.status_code == 200, few.text
    flood = api.post(f"/invoke/{fn}", json={"id": frame_id, "frames": 1000})
    problem = assert_problem(flood, 500, "cascade_exhausted")
    assert "more log entries than a call's log budget allows" in problem["detail"]
    again = api.post(f"/invoke/{fn}", json={"id": frame_id, "frames": 0})
    assert again.status_code == 200 and again.json()["output"] == "done", again.text


def test_code_forging_an_answer_loses_its_worker(api):
    """An answer for a request the worker was not sent is forged (and would reset the bound on
    log frames): the worker is killed, the call fails, the next one gets a fresh worker."""
    fn = unique("answer-forger")
    forged_log = "encode(LOG_ID, [event['id'], [[1.0, 'stdout', 'x' * 1000, None]] * 100])"
    code = FORGER.replace(forged_log, "encode(event['id'], ['ok', None, []], b'1')")
    assert api.post("/deploy", json={"id": fn, "runtime": "python",
                                     "code": code}).status_code == 201
    problem = assert_problem(api.post(f"/invoke/{fn}", json={"id": 987654, "frames": 1}),
                             500, "cascade_exhausted")
    assert "answered a request it was not sent" in problem["detail"]
    again = api.post(f"/invoke/{fn}", json={"id": 987654, "frames": 0})
    assert again.status_code == 200 and again.json()["output"] == "done", again.text
