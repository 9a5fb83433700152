"""The Python SDK (``gateway.sdk``, ``tiergate.Client``) against a real ``tiergate serve``: both
clients, typed results, one exception class per problem code, deploys of files, directories and
manifests, aliases, graphs, review tasks, and the defaults the CLI uses."""

from __future__ import annotations

import asyncio
import inspect
import io
import itertools
import json
import re
import subprocess
import sys
import zipfile

import pytest
from conftest import EXAMPLES, ROOT, eventually, example, unique

import tiergate
from gateway.sdk import (
    AsyncClient,
    Attempt,
    Client,
    Deployment,
    Execution,
    GraphRun,
    LogLine,
    Task,
    errors,
)
from gateway.sdk.errors import error_from_answer
from gateway.sdk.operations import zip_directory
from plugins.testing import free_port

HUMAN_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}},
}


@pytest.fixture
def tg(tiergate_server):
    with Client(tiergate_server.url, tiergate_server.admin_key) as client:
        yield client


def deploy_example(tg: Client, name: str, **manifest) -> str:
    fn = unique(name.split(".")[0])
    deployed = tg.deploy(EXAMPLES / name, id=fn, manifest=manifest or None)
    assert deployed.id == fn
    return fn


def new_key(api, *roles: str, tenant: str = "default") -> str:
    answer = api.post("/admin/keys", json={"tenant": tenant, "roles": list(roles)})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["key"]


# Invocations and typed results.


def test_invoke_answers_a_typed_execution(tg, api):
    fn = deploy_example(tg, "hello.wat")
    result = tg.invoke(fn, {"who": "you"})
    assert isinstance(result, Execution)
    assert result.output == {"message": "hello from wasm"}
    assert (result.function_id, result.version, result.status, result.tier) == (
        fn, 1, "completed", "code")
    assert result.ended and result.completed and result.error is None
    assert re.fullmatch(r"[0-9a-f]{32}", result.trace_id)
    assert isinstance(result.attempts[0], Attempt) and result.attempts[0].status == "succeeded"
    assert isinstance(result.logs[0], LogLine) and result.logs[0].message == "saying hello"
    assert result.metrics["duration_ms"] >= 0
    assert result.raw["execution_id"] == result.execution_id
    assert result.raw["output"] == result.output
    record = eventually(lambda: api.get(f"/executions/{result.execution_id}").json())
    read = tg.execution(result.execution_id)
    assert read.raw == record
    assert read.input == {"who": "you"} and read.started_at and read.ended_at
    with pytest.raises(Exception, match=r"frozen|cannot assign"):
        result.status = "failed"


def test_invoke_sends_the_options(tg, api):
    fn = deploy_example(tg, "echo.wat")
    tg.deploy(EXAMPLES / "hello.wat", id=fn)
    pinned = tg.invoke(f"{fn}@1", [1, 2], context={"user": "ada"}, skip_tiers=["generative"])
    assert pinned.output == [1, 2] and pinned.version == 1
    assert tg.execution(pinned.execution_id).raw["custom"] == {"user": "ada"}
    assert tg.invoke(fn, None).output == {"message": "hello from wasm"}
    key = unique("same")
    once = tg.invoke(f"{fn}@1", "once", idempotency_key=key)
    twice = tg.invoke(f"{fn}@1", "twice", idempotency_key=key)
    assert twice.execution_id == once.execution_id and twice.output == "once"
    with pytest.raises(errors.InvalidRequest) as caught:
        tg.invoke(fn, 1, timeout_ms=10**9)
    assert caught.value.status == 400 and isinstance(caught.value, errors.BadRequest)


def test_a_timeout_is_a_timeout_error_with_its_execution(tg):
    fn = deploy_example(tg, "loop.wat")
    with pytest.raises(errors.Timeout) as caught:
        tg.invoke(fn, 1, timeout_ms=300)
    error = caught.value
    assert isinstance(error, TimeoutError) and isinstance(error, errors.ServerError)
    assert (error.status, error.code) == (504, "timeout") and error.execution_id
    assert tg.execution(error.execution_id).status == "timeout"


def test_invoke_async_then_wait_and_stream(tg):
    fn = deploy_example(tg, "echo.wat")
    started = tg.invoke_async(fn, {"later": True})
    assert started.status in ("pending", "running") and started.output is None
    assert started.status_url == f"/executions/{started.execution_id}"
    assert started.function_id == fn
    seen = list(tg.stream(started, timeout=30, poll_s=0.05))
    assert seen[-1].status == "completed" and seen[-1].output == {"later": True}
    statuses = [e.status for e in seen]
    assert all(a != b for a, b in itertools.pairwise(statuses)), statuses
    assert all(e.execution_id == started.execution_id for e in seen)
    done = tg.wait(started.execution_id, timeout=30)
    assert done.output == {"later": True}
    assert tg.wait(done) is done  # ended already: no request


def test_a_human_tier_answers_202_and_a_reviewer_completes_it(tg, api, tiergate_server):
    fn = deploy_example(
        tg, "trap.wat", output_schema=HUMAN_SCHEMA,
        tiers={"human": {"instructions": "Approve small amounts."}},
    )
    waiting = tg.invoke(fn, {"amount": 12})
    assert waiting.status == "awaiting_human" and waiting.output is None and not waiting.ended
    with pytest.raises(errors.ClientTimeout) as caught:
        tg.wait(waiting, timeout=0.3, poll_s=0.1)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.execution_id == waiting.execution_id

    task = next(t for t in tg.tasks() if t.execution_id == waiting.execution_id)
    assert isinstance(task, Task) and task.status == "pending" and task.function_id == fn
    assert task.input == {"amount": 12} and task.instructions == "Approve small amounts."
    assert task.attempts[0].tier == "code" and task.attempts[0].status == "failed"
    assert tg.claim(task).claimed_by_id
    with Client(tiergate_server.url, new_key(api, "review")) as other:
        with pytest.raises(errors.TaskClaimed) as claimed:
            other.complete(task.id, {"approved": False})
        assert isinstance(claimed.value, errors.Conflict) and claimed.value.status == 409
    assert tg.release(task.id).claimed_by_id is None
    with pytest.raises(errors.InvalidOutput) as bad:
        tg.complete(task, {"approved": "yes"})
    assert bad.value.errors[0]["path"] == "/approved"
    answered = tg.complete(task, {"approved": True})
    assert answered.status == "completed" and answered.tier == "human"
    assert tg.wait(waiting, timeout=10).output == {"approved": True}
    assert tg.task(task.id).status == "completed"
    assert task.id in [t.id for t in tg.tasks("completed")]

    rejected = tg.invoke(fn, {"amount": 10**6})
    task = next(t for t in tg.tasks() if t.execution_id == rejected.execution_id)
    assert tg.reject(task, "too much").status == "failed"
    cancelled = tg.cancel(tg.invoke(fn, {"amount": 1}))
    assert cancelled.status == "cancelled"
    with pytest.raises(errors.TaskNotFound):
        tg.claim("t_no_such_task")


# Errors: one class per code, grouped by status.


def test_problem_answers_raise_their_code_s_class(tg, tiergate_server):
    with pytest.raises(errors.FunctionNotFound) as caught:
        tg.invoke(unique("missing"), 1)
    error = caught.value
    assert isinstance(error, errors.NotFound) and isinstance(error, tiergate.TiergateError)
    assert (error.status, error.code) == (404, "function_not_found")
    assert error.problem["type"] == "about:blank" and error.problem["status"] == 404
    assert error.detail and str(error) == f"{error.detail} (function_not_found, HTTP 404)"
    assert error.execution_id is None

    typed = unique("typed")
    tg.deploy({"id": typed, "runtime": "wasm", "code": example("echo.wat"),
               "input_schema": {"type": "object", "required": ["n"]}})
    with pytest.raises(errors.InvalidInput) as caught:
        tg.invoke(typed, {"m": 1})
    assert caught.value.errors == [{"path": "/", "message": "'n' is a required property"}]
    assert "'n' is a required property" in str(caught.value)

    trap = deploy_example(tg, "trap.wat")
    with pytest.raises(errors.CascadeExhausted) as caught:
        tg.invoke(trap, 1)
    exhausted = caught.value
    assert (exhausted.status, exhausted.code) == (500, "cascade_exhausted")
    assert isinstance(exhausted, errors.ServerError)
    assert exhausted.attempts[0]["status"] == "failed" and "unreachable" in exhausted.detail
    assert tg.execution(exhausted.execution_id).status == "failed"

    with pytest.raises(errors.VersionNotFound):
        tg.invoke(f"{typed}@9", {"n": 1})
    with pytest.raises(errors.ExecutionNotFound):
        tg.execution("no-such-execution")
    with pytest.raises(errors.InvalidFunctionId):
        tg.versions("Not An Id")
    with pytest.raises(errors.CompileError) as caught:
        tg.deploy({"id": unique("broken"), "runtime": "wasm", "code": "(module (oops))"})
    assert caught.value.status == 422
    with pytest.raises(errors.UnknownRuntime):
        tg.deploy({"id": unique("cobol"), "runtime": "cobol", "code": "x"})
    with pytest.raises(errors.InvalidManifest) as caught:
        tg.deploy({"id": unique("limits"), "runtime": "wasm", "code": example("echo.wat"),
                   "limits": {"timeout_ms": "soon"}})
    assert caught.value.field

    for key in ("not-a-key", ""):
        with (
            Client(tiergate_server.url, key, env={}) as stranger,
            pytest.raises(errors.Unauthenticated) as caught,
        ):
            stranger.functions()
        assert isinstance(caught.value, errors.Unauthorized) and caught.value.status == 401
        assert "TIERGATE_KEY" in str(caught.value)


def test_a_rate_limit_says_when_to_come_back(tiergate_factory):
    server = tiergate_factory({"TIERGATE_RATE_LIMIT_RPS": "0.2", "TIERGATE_RATE_LIMIT_BURST": "1"})
    with server.client() as admin, Client(server.url, server.admin_key) as tg:
        fn = deploy_example(tg, "echo.wat")
        with Client(server.url, new_key(admin, "invoke")) as limited:
            assert limited.invoke(fn, 1).output == 1
            with pytest.raises(errors.RateLimited) as caught:
                limited.invoke(fn, 2)
    error = caught.value
    assert (error.status, error.code) == (429, "rate_limited")
    assert isinstance(error, errors.TooManyRequests) and isinstance(error, errors.RetryLater)
    assert error.retry_after is not None and 1 <= error.retry_after <= 5


def test_every_documented_code_has_its_class():
    table = (ROOT / "docs" / "api.md").read_text().split("## Error codes", 1)[1]
    codes = {code: int(status) for code, status in re.findall(r"`([a-z_]+)` (\d{3})", table)}
    assert len(codes) >= 35
    for code, status in codes.items():
        name = "".join(part.capitalize() for part in code.split("_"))
        cls = getattr(errors, name, None)
        assert cls is not None, f"gateway.sdk.errors has no {name} for {code}"
        assert errors.CODES[code] is cls and cls.code == code, code
        assert cls.status == status, (code, cls.status, status)
        assert issubclass(cls, errors.STATUSES[status]), code
        assert name in errors.__all__


def test_unknown_codes_and_answers_map_by_status():
    new = error_from_answer(404, {"code": "planet_not_found", "detail": "no"}, {})
    assert type(new) is errors.NotFound and new.code == "planet_not_found"
    assert type(error_from_answer(409, {"code": "brand_new"}, {})) is errors.Conflict
    assert type(error_from_answer(418, {"code": "teapot"}, {})) is errors.TiergateError
    bare = error_from_answer(502, "<html>Bad Gateway</html>", {})
    assert type(bare) is errors.ServerError and bare.code is None
    assert bare.detail == "HTTP 502: <html>Bad Gateway</html>"
    busy = error_from_answer(503, {"code": "circuit_open"}, {"Retry-After": "7"})
    assert isinstance(busy, errors.CircuitOpen) and busy.retry_after == 7.0
    assert isinstance(busy, errors.ServiceUnavailable) and isinstance(busy, errors.ServerError)
    past = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert error_from_answer(429, {"code": "queue_full"}, past).retry_after == 0.0
    started = error_from_answer(500, {"code": "cascade_exhausted", "execution_id": "e1"}, {})
    assert started.execution_id == "e1"


def test_an_unreachable_gateway_and_a_slow_answer(tg):
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "k") as nowhere, pytest.raises(errors.ConnectionFailed) as caught:
        nowhere.functions()
    assert isinstance(caught.value, ConnectionError) and url in str(caught.value)
    assert caught.value.url == url and caught.value.status is None

    fn = deploy_example(tg, "loop.wat")
    with (
        Client(tg.url, tg.key, timeout=0.3) as impatient,
        pytest.raises(errors.ClientTimeout) as slow,
    ):
        impatient.invoke(fn, 1, timeout_ms=5000)
    assert isinstance(slow.value, TimeoutError) and tg.url in str(slow.value)


# Deploys.


def test_deploy_a_file_a_manifest_and_a_manifest_file(tg, tmp_path):
    fn = unique("file")
    first = tg.deploy(EXAMPLES / "echo.wat", id=fn, manifest={"description": "an echo"})
    assert isinstance(first, Deployment)
    assert (first.id, first.version, first.runtime, first.precompiled) == (fn, 1, "wasm", True)
    assert first.code_sha256 and first.code_size == len((EXAMPLES / "echo.wat").read_bytes())
    assert tg.function(fn).description == "an echo"

    named = tmp_path / "Named Function.wat"
    named.write_text(example("hello.wat"))
    assert tg.deploy(str(named)).id == "named-function"

    manifest = {"id": fn, "runtime": "wasm", "code": example("hello.wat"), "description": "v2"}
    second = tg.deploy(manifest)
    assert second.version == 2 and tg.invoke(fn).output == {"message": "hello from wasm"}

    path = tmp_path / "third.json"
    path.write_text(json.dumps({**manifest, "description": "from a file"}))
    third = tg.deploy(path)
    assert (third.id, third.version) == (fn, 3)
    assert tg.function(fn).description == "from a file"

    as_runtime = tg.deploy(EXAMPLES / "echo.wat", id=fn, runtime="wasm")
    assert as_runtime.version == 4
    odd = tmp_path / "code.txt"
    odd.write_text("x")
    with pytest.raises(ValueError, match=r"cannot tell the runtime of code\.txt"):
        tg.deploy(odd)
    with pytest.raises(FileNotFoundError):
        tg.deploy(tmp_path / "missing.wat")


def _package(root):
    root.mkdir()
    (root / "handler.py").write_text(
        "from shouting import shout\n\n"
        "def handler(event, context):\n"
        "    return {'said': shout(event['text'])}\n"
    )
    (root / "shouting.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "shouting.cpython-311.pyc").write_bytes(b"\0compiled")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "stale.pyc").write_bytes(b"\0")
    return root


def test_a_directory_is_zipped_without_caches(tmp_path):
    root = _package(tmp_path / "pkg")
    data = zip_directory(root)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["handler.py", "shouting.py"]
    assert zip_directory(root) == data  # the same files, the same bytes


def test_deploy_a_directory_with_two_modules(tg, tmp_path):
    root = _package(tmp_path / "Shout Pkg")
    try:
        deployed = tg.deploy(root)
    except (errors.BadRequest, errors.CompileError, errors.PayloadTooLarge) as refused:
        pytest.skip(f"this gateway does not take a code archive for the python runtime yet: "
                    f"{refused}")
    except errors.RuntimeUnavailable as unavailable:
        pytest.skip(f"the python runtime cannot run code here: {unavailable}")
    assert (deployed.id, deployed.runtime) == ("shout-pkg", "python")
    assert tg.invoke("shout-pkg", {"text": "hi"}).output == {"said": "HI!"}
    fn = unique("shout")
    assert tg.deploy(root, id=fn).id == fn
    with pytest.raises(ValueError, match=r"no handler\.py"):
        empty = tmp_path / "empty"
        empty.mkdir()
        tg.deploy(empty)


# Functions, aliases, events, graphs.


def test_versions_rollback_logs_and_delete(tg):
    fn = deploy_example(tg, "hello.wat")
    tg.deploy(EXAMPLES / "echo.wat", id=fn)
    assert [v.version for v in tg.versions(fn)] == [1, 2]
    assert all(v.runtime == "wasm" and v.code_sha256 for v in tg.versions(fn))
    assert tg.invoke(fn, "x").output == "x"
    rolled = tg.rollback(fn, 1)
    assert (rolled.id, rolled.latest_version) == (fn, 1)
    assert tg.invoke(fn, "x").output == {"message": "hello from wasm"}
    listed = {f.id: f for f in tg.functions()}
    assert listed[fn].latest_version == 1 and listed[fn].tenant == "default"
    detail = tg.function(fn)
    assert detail.latest_version == 1 and [v.version for v in detail.versions] == [1, 2]
    recent = tg.logs(fn, limit=1)
    assert len(recent) == 1 and recent[0].function_id == fn and recent[0].version == 1
    older = tg.logs(fn, limit=5, before=recent[0].execution_id)
    assert [e.version for e in older] == [2]
    with pytest.raises(errors.VersionNotFound):
        tg.rollback(fn, 7)
    assert tg.delete(fn) is None
    with pytest.raises(errors.FunctionNotFound):
        tg.invoke(fn, 1)


def test_aliases(tg):
    fn = deploy_example(tg, "hello.wat")
    tg.deploy(EXAMPLES / "echo.wat", id=fn)
    alias = tg.set_alias(fn, "prod", 1, description="stable")
    assert (alias.name, alias.function_id, alias.version, alias.weights) == ("prod", fn, 1, {})
    assert alias.description == "stable" and alias.created_at
    call = tg.invoke(f"{fn}:prod", 1)
    assert (call.version, call.alias, call.function_id) == (1, "prod", fn)
    split = tg.set_alias(fn, "prod", 1, {2: 1.0})
    assert split.weights == {"2": 1.0}
    assert tg.invoke(f"{fn}:prod", 5).output == 5  # all of it to version 2
    assert [a.name for a in tg.aliases(fn)] == ["prod"]
    with pytest.raises(errors.InvalidRequest):
        tg.set_alias(fn, "latest", 1)
    tg.delete_alias(fn, "prod")
    with pytest.raises(errors.AliasNotFound):
        tg.invoke(f"{fn}:prod", 1)


def test_events_start_triggered_functions(tg):
    kind = f"sdk.{unique('event')}"
    fn = deploy_example(tg, "echo.wat", triggers=[{"event": kind}])
    event = tg.publish(kind, {"order": 1}, idempotency_key=unique("event"))
    assert event.event_id and len(event.started) == 1
    assert tg.wait(event.started[0], timeout=30).output == {"order": 1}
    assert tg.execution(event.started[0]).function_id == fn
    assert tg.publish(f"{kind}.other").started == ()


def test_a_graph_runs(tg):
    echo, hello = deploy_example(tg, "echo.wat"), deploy_example(tg, "hello.wat")
    graph_id = unique("graph")
    graph = tg.deploy_graph({
        "id": graph_id,
        "nodes": {
            "first": {"function": echo},
            "second": {"function": echo, "needs": ["first"], "input": "first.n"},
            "greet": {"function": hello},
        },
    })
    assert (graph.id, graph.version) == (graph_id, 1)
    assert graph.nodes.index("first") < graph.nodes.index("second")

    run = tg.run_graph(graph_id, {"n": 3})
    assert isinstance(run, GraphRun) and run.ended and run.status == "completed"
    assert run.graph_id == graph_id and run.version == 1 and run.trace_id
    assert run.nodes["second"].output == 3 and run.nodes["second"].function == echo
    assert run.nodes["first"].execution_id and run.nodes["first"].status == "completed"
    assert run.output == {"second": 3, "greet": {"message": "hello from wasm"}}
    again = tg.run_graph(graph_id, {"n": 3}, base_run=run.run_id)
    assert {n.status for n in again.nodes.values()} == {"reused"}
    assert again.base_run == run.run_id

    later = tg.run_graph(graph_id, {"n": 4}, wait=False)
    assert later.status in ("running", "completed")
    ended = tg.wait(later, timeout=30)
    assert isinstance(ended, GraphRun) and ended.nodes["second"].output == 4
    assert tg.graph_run(graph_id, later.run_id).raw == ended.raw
    with pytest.raises(errors.GraphNotFound):
        tg.run_graph(unique("nograph"), 1)
    with pytest.raises(errors.RunNotFound):
        tg.graph_run(graph_id, "no-such-run")
    with pytest.raises(errors.InvalidGraph) as caught:
        tg.deploy_graph({"id": unique("cycle"), "nodes": {
            "a": {"function": echo, "needs": ["b"]}, "b": {"function": echo, "needs": ["a"]}}})
    assert "a → b → a" in caught.value.detail or "cycle" in caught.value.detail


# The async client: the same operations over httpx.AsyncClient.


def test_the_async_client(tiergate_server):
    async def main():
        async with AsyncClient(tiergate_server.url, tiergate_server.admin_key) as tg:
            fn = unique("async-echo")
            deployed = await tg.deploy(EXAMPLES / "echo.wat", id=fn)
            assert deployed.version == 1
            calls = await asyncio.gather(*(tg.invoke(fn, n) for n in range(4)))
            assert [c.output for c in calls] == [0, 1, 2, 3]
            assert all(isinstance(c, Execution) for c in calls)
            started = await tg.invoke_async(fn, "later")
            seen = [e.status async for e in tg.stream(started, timeout=30, poll_s=0.05)]
            assert seen[-1] == "completed"
            assert (await tg.wait(started.execution_id)).output == "later"
            assert [v.version for v in await tg.versions(fn)] == [1]
            with pytest.raises(errors.FunctionNotFound):
                await tg.invoke(unique("missing"), 1)
            trap = unique("async-trap")
            await tg.deploy(EXAMPLES / "trap.wat", id=trap)
            with pytest.raises(errors.CascadeExhausted) as caught:
                await tg.invoke(trap, 1)
            assert (await tg.execution(caught.value.execution_id)).status == "failed"
            graph = await tg.deploy_graph({"id": unique("agraph"),
                                           "nodes": {"only": {"function": fn}}})
            run = await tg.run_graph(graph.id, 9)
            assert run.nodes["only"].output == 9
            assert await tg.delete(fn) is None
        nowhere = AsyncClient(f"http://127.0.0.1:{free_port()}", "k")
        with pytest.raises(errors.ConnectionFailed):
            await nowhere.functions()
        await nowhere.close()

    asyncio.run(main())


def test_both_clients_share_their_signatures():
    for name, method in inspect.getmembers(Client, inspect.isfunction):
        if name.startswith("__") and name not in ("__init__",):
            continue
        twin = getattr(AsyncClient, name)
        assert inspect.signature(twin).parameters.keys() == (
            inspect.signature(method).parameters.keys()), name
        if not name.startswith("_") and name not in ("stream", "events", "follow_logs", "__init__"):
            assert inspect.iscoroutinefunction(twin), name
    assert inspect.isasyncgenfunction(AsyncClient._iterate)


# Where the gateway and the key come from.


def test_defaults_are_the_cli_s(tiergate_server, tmp_path, monkeypatch):
    url, key = tiergate_server.url, tiergate_server.admin_key
    with Client(env={}) as bare:
        assert (bare.url, bare.key) == ("http://127.0.0.1:8080", None)
    with Client(env={"TIERGATE_URL": url + "/", "TIERGATE_KEY": key}) as from_env:
        assert (from_env.url, from_env.key) == (url, key)
        assert isinstance(from_env.functions(), list)
    with Client("http://elsewhere:1", "mine", env={"TIERGATE_URL": url, "TIERGATE_KEY": key}) as c:
        assert (c.url, c.key) == ("http://elsewhere:1", "mine")

    data = tmp_path / "data"
    data.mkdir()
    (data / "admin.key").write_text(key + "\n")
    with Client(env={"TIERGATE_URL": url, "TIERGATE_DATA_DIR": str(data)}) as from_file:
        assert from_file.key == key and isinstance(from_file.functions(), list)

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tiergate").mkdir()
    (tmp_path / ".tiergate" / "admin.key").write_text(key)
    for name in ("TIERGATE_KEY", "TIERGATE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIERGATE_URL", url)
    with Client() as local:  # os.environ, and ./.tiergate/admin.key
        assert (local.url, local.key) == (url, key)
        assert isinstance(local.functions(), list)
        assert key not in repr(local)

    with pytest.raises(ValueError, match="'localhost:8080' has no scheme"):
        Client("localhost:8080")
    with pytest.raises(ValueError, match="'gateway:9' has no scheme"):
        AsyncClient(env={"TIERGATE_URL": "gateway:9"})


# The top-level module.


def test_tiergate_exports_the_sdk_lazily():
    assert tiergate.Client is Client and tiergate.AsyncClient is AsyncClient
    assert tiergate.TiergateError is errors.TiergateError and tiergate.errors is errors
    assert tiergate.Execution is Execution and tiergate.GraphRun is GraphRun
    assert "Client" not in tiergate.__all__  # __all__ stays the plugin API
    assert tiergate.CompileError is not errors.CompileError  # the plugin API's keeps its name
    assert {"Client", "AsyncClient", "errors"} <= set(dir(tiergate))
    with pytest.raises(AttributeError):
        tiergate.NoSuchName  # noqa: B018
    probe = (
        "import sys, tiergate\n"
        "assert 'httpx' not in sys.modules and 'gateway.sdk' not in sys.modules\n"
        "from tiergate import Client, errors\n"
        "assert 'httpx' in sys.modules and errors.FunctionNotFound.code == 'function_not_found'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


def test_the_sdk_loads_nothing_of_the_server():
    probe = (
        "import sys, gateway.sdk\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in\n"
        "                ('tiers', 'plugins', 'storage', 'aiohttp', 'wasmtime')\n"
        "                or (m.startswith('gateway.') and not m.startswith('gateway.sdk')))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)
