"""Live streams: logs that reach the record as they are written (so a cancelled or timed-out
call keeps them), and the Server-Sent Events of an execution and of a function's logs, read with
a real SSE client (httpx, line by line) from a real ``tiergate serve``."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from conftest import assert_problem, deploy_wat, eventually, unique
from llm_server import ScriptedLLM

PRINT_THEN_WAIT = """
import logging, time

def handler(event, context):
    print("first line")
    logging.getLogger("fn").warning("second line")
    time.sleep(event.get("seconds", 30))
    print("last line")
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"done": True}
"""

FLOOD = """
def handler(event, context):
    for n in range(event["lines"]):
        print(f"line {n} " + "x" * 200)
    return {"printed": event["lines"]}
"""


@dataclass
class Event:
    name: str
    id: str | None
    data: Any
    at: float = field(default_factory=time.monotonic)  # when it was read


def sse(response: Any) -> Iterator[Event | str]:
    """The events of a ``text/event-stream`` answer as they come (comments as their text)."""
    name, ident, data = "message", None, []
    for line in response.iter_lines():
        if line.startswith(":"):
            yield line[1:].strip()
        elif line == "":
            if data:
                yield Event(name, ident, orjson.loads("\n".join(data)))
            name, ident, data = "message", None, []
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)


def events_of(stream: Any) -> Iterator[Event]:
    return (e for e in sse(stream) if isinstance(e, Event))


def deploy_python(api, code, **manifest):
    fn = unique("live")
    body = {"id": fn, "runtime": "python", "code": code, **manifest}
    response = api.post("/deploy", json=body)
    assert response.status_code == 201, response.text
    return fn


def start_async(api, fn, body):
    started = api.post(f"/invoke/{fn}", json=body, headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    return started.json()["execution_id"]


def messages(logs):
    return [entry["message"] for entry in logs]


def test_log_lines_arrive_while_the_call_runs_and_the_end_carries_the_record(api):
    fn = deploy_python(api, PRINT_THEN_WAIT)
    execution = start_async(api, fn, {"seconds": 1.5, "fail": True})
    with api.stream("GET", f"/executions/{execution}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        seen = []
        for event in events_of(stream):
            seen.append(event)
            if event.name == "log" and event.data["message"] == "first line":
                assert api.get(f"/executions/{execution}").json()["status"] == "running"
            if event.name == "end":
                break
    names = [e.name for e in seen]
    assert names[0] == "status" and names[-1] == "end", names
    assert [int(e.id) for e in seen] == list(range(1, len(seen) + 1))
    logs = [e.data for e in seen if e.name == "log"]
    assert messages(logs)[:3] == ["first line", "second line", "last line"]
    assert logs[0]["execution_id"] == execution and logs[0]["stream"] == "stdout"
    attempt = next(e.data for e in seen if e.name == "attempt")
    assert attempt["tier"] == "code" and attempt["status"] == "failed"
    assert "asked to fail" in attempt["error"]
    statuses = [e.data["status"] for e in seen if e.name == "status"]
    assert statuses[-1] == "failed" and "running" in statuses
    end = seen[-1].data
    assert end == api.get(f"/executions/{execution}").json()
    assert messages(end["logs"])[:3] == ["first line", "second line", "last line"]


def test_an_ended_execution_answers_its_end_at_once(api):
    fn = unique("ended")
    deploy_wat(api, fn)
    done = api.post(f"/invoke/{fn}", json={"hi": 1}).json()
    started = time.monotonic()
    with api.stream("GET", f"/executions/{done['execution_id']}/events") as stream:
        seen = list(events_of(stream))  # the server closes the stream after the end
    assert time.monotonic() - started < 2
    assert [e.name for e in seen] == ["status", "end"]
    assert seen[0].data == {"execution_id": done["execution_id"], "status": "completed"}
    assert seen[1].data["output"] == {"hi": 1} and seen[1].data["status"] == "completed"


def test_logs_written_before_a_cancel_are_kept(api):
    fn = deploy_python(api, PRINT_THEN_WAIT)
    execution = start_async(api, fn, {})
    with api.stream("GET", f"/executions/{execution}/events") as stream:
        seen = []
        for event in events_of(stream):
            seen.append(event)
            if event.name == "log" and event.data["message"] == "second line":
                cancelled = api.delete(f"/executions/{execution}")
                assert cancelled.status_code == 200, cancelled.text
            if event.name == "end":
                break
    assert seen[-1].data["status"] == "cancelled"
    attempt = next(e.data for e in seen if e.name == "attempt")
    assert attempt["status"] == "cancelled"
    record = api.get(f"/executions/{execution}").json()
    assert record["status"] == "cancelled"
    assert messages(record["logs"]) == ["first line", "second line"], record["logs"]
    assert record["logs"][0]["stream"] == "stdout"
    assert record["logs"][1]["stream"] == "log" and record["logs"][1]["level"] == "WARNING"


def test_logs_written_before_a_timeout_are_kept(api):
    fn = deploy_python(api, PRINT_THEN_WAIT, limits={"timeout_ms": 1500})
    response = api.post(f"/invoke/{fn}", json={})
    assert response.status_code == 504, response.text
    record = api.get(f"/executions/{response.json()['execution_id']}").json()
    assert record["status"] == "timeout"
    assert messages(record["logs"]) == ["first line", "second line"], record["logs"]


def test_log_caps_hold_for_streamed_entries(api):
    fn = deploy_python(api, FLOOD)
    record = api.post(f"/invoke/{fn}", json={"lines": 20_000}).json()
    assert record["output"] == {"printed": 20_000}
    assert sum(len(m) + 128 for m in messages(record["logs"])) <= 1024 * 1024
    assert record["logs"][-1]["message"].startswith("dropped ")


def test_another_tenant_gets_404(api, tiergate_server):
    fn = deploy_python(api, PRINT_THEN_WAIT)
    execution = start_async(api, fn, {"seconds": 0.1})
    key = api.post(
        "/admin/keys", json={"tenant": unique("other"), "roles": ["invoke"], "name": "other"}
    ).json()["key"]
    with tiergate_server.client(key) as other:
        answer = other.get(f"/executions/{execution}/events")
    assert_problem(answer, 404, "execution_not_found")
    assert_problem(
        api.get(f"/executions/{unique('nope')}/events"), 404, "execution_not_found"
    )


def test_follow_a_function_s_logs(api):
    fn = deploy_python(api, PRINT_THEN_WAIT)
    with api.stream("GET", f"/functions/{fn}/logs?follow=true") as stream:
        assert stream.status_code == 200
        execution = start_async(api, fn, {"seconds": 0.2})
        seen = []
        for event in events_of(stream):
            seen.append(event)
            if event.name == "execution":
                break
    logs = [e.data for e in seen if e.name == "log"]
    assert messages(logs) == ["first line", "second line", "last line"]
    assert {entry["execution_id"] for entry in logs} == {execution}
    ended = seen[-1].data
    assert ended["execution_id"] == execution and ended["status"] == "completed"
    assert "logs" not in ended
    assert_problem(api.get(f"/functions/{fn}/logs?follow=maybe"), 400, "invalid_request")
    assert_problem(
        api.get(f"/functions/{unique('absent')}/logs?follow=true"), 404, "function_not_found"
    )


def test_a_follow_stream_opened_mid_execution_has_every_line_once(api):
    fn = deploy_python(api, PRINT_THEN_WAIT)
    execution = start_async(api, fn, {"seconds": 1.5})
    with api.stream("GET", f"/executions/{execution}/events") as stream:
        for event in events_of(stream):
            if event.name == "log" and event.data["message"] == "second line":
                break  # the execution has written two lines and goes on
    with api.stream("GET", f"/functions/{fn}/logs?follow=true") as stream:
        seen = []
        for event in events_of(stream):
            seen.append(event)
            if event.name == "execution":
                break
    logs = [e.data["message"] for e in seen if e.name == "log"]
    assert logs == ["first line", "second line", "last line"]


# Tokens: the generative tier streams its model's answer.


@pytest.fixture(scope="module")
def llm():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gen_api(llm, tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(
        tmp_path_factory.mktemp("tokens"),
        {"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test"},
    ).start()
    with server.client() as client:
        yield client
    server.stop()


def test_tokens_arrive_before_the_end(gen_api, llm):
    chunks = ['{"ans', 'wer": ', "42", "}"]
    model = llm.script(unique("tokens"), [{"chunks": chunks, "chunk_delay": 0.4}])
    fn = unique("gen")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    manifest = {"id": fn, "output_schema": schema, "tiers": {"generative": {"model": model}}}
    assert gen_api.post("/deploy", json=manifest).status_code == 201
    execution = start_async(gen_api, fn, {"q": "?"})
    with gen_api.stream("GET", f"/executions/{execution}/events") as stream:
        seen = []
        for event in events_of(stream):
            seen.append(event)
            if event.name == "token" and len(seen) == 2:
                record = gen_api.get(f"/executions/{execution}").json()
                assert record["status"] == "running"
            if event.name == "end":
                break
    tokens = [e.data for e in seen if e.name == "token"]
    assert [t["text"] for t in tokens] == chunks
    assert all(t["tier"] == "generative" for t in tokens)
    assert seen[-1].data["output"] == {"answer": 42} and seen[-1].data["tier"] == "generative"
    assert llm.requests[model][0]["stream"] is True


def test_a_streamed_answer_is_still_checked(gen_api, llm):
    model = llm.script(unique("bad"), [{"content": '{"answer": "not a number"}'}])
    fn = unique("genbad")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    manifest = {"id": fn, "output_schema": schema, "tiers": {"generative": {"model": model}}}
    assert gen_api.post("/deploy", json=manifest).status_code == 201
    answer = gen_api.post(f"/invoke/{fn}", json={})
    problem = assert_problem(answer, 500, "cascade_exhausted")
    assert "output_schema" in problem["attempts"][0]["error"]


# Bounds: a slow reader is cut off, a tenant holds a few streams at once, quiet streams ping.


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(
        tmp_path_factory.mktemp("bounded"),
        {
            "TIERGATE_STREAM_QUEUE_EVENTS": "16",
            "TIERGATE_MAX_STREAMS_PER_TENANT": "2",
            "TIERGATE_STREAM_HEARTBEAT_S": "0.2",
        },
    ).start()
    yield server
    server.stop()


def test_a_slow_reader_is_cut_off_with_a_last_event(bounded):
    with bounded.client() as api:
        flood = deploy_python(api, FLOOD)
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(("127.0.0.1", bounded.port))
        reader.sendall(
            f"GET /functions/{flood}/logs?follow=true HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {bounded.admin_key}\r\n\r\n".encode()
        )
        time.sleep(0.5)  # the stream is open; this reader now reads nothing for a while
        assert api.post(f"/invoke/{flood}", json={"lines": 5000}).status_code == 200
        reader.settimeout(20)
        received = bytearray()
        while chunk := reader.recv(65536):
            received += chunk
        reader.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    text = _dechunk(body).decode()
    last = text.rstrip().rsplit("\n\n", 1)[-1]
    assert "event: error" in last and '"code":"slow_reader"' in last, last[-500:]
    assert text.count("event: log") < 5000


def _dechunk(body: bytes) -> bytes:
    """A chunked HTTP/1.1 body, put together (it must end with its last, empty chunk)."""
    data = bytearray()
    while True:
        size, _, body = body.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            return bytes(data)
        data += body[:length]
        body = body[length + 2 :]


def test_a_tenant_holds_a_bounded_number_of_streams(bounded):
    with bounded.client() as api:
        fn = deploy_python(api, PRINT_THEN_WAIT)
        execution = start_async(api, fn, {"seconds": 30})
        path = f"/executions/{execution}/events"
        with api.stream("GET", path) as first, api.stream("GET", path) as second:
            assert first.status_code == second.status_code == 200
            problem = assert_problem(api.get(path), 429, "too_many_streams")
            assert "TIERGATE_MAX_STREAMS_PER_TENANT" in problem["detail"]
            assert api.get(path).headers["retry-after"]
        eventually(lambda: _opens(api, path))
        api.delete(f"/executions/{execution}")


def _opens(api, path):
    with api.stream("GET", path) as stream:
        return stream.status_code == 200


def test_a_quiet_stream_sends_heartbeats(bounded):
    with bounded.client() as api:
        fn = deploy_python(api, "import time\ndef handler(e, c):\n    time.sleep(1.2)\n")
        execution = start_async(api, fn, {})
        with api.stream("GET", f"/executions/{execution}/events") as stream:
            seen = list(sse(stream))
    assert "ping" in seen
    assert isinstance(seen[-1], Event) and seen[-1].name == "end"


# The SDK and the CLI on the streams.


def test_sdk_events_and_stream_read_the_event_stream(api, tiergate_server):
    from gateway.sdk import Client, StreamEvent

    fn = deploy_python(api, PRINT_THEN_WAIT)
    with Client(tiergate_server.url, tiergate_server.admin_key) as tg:
        started = tg.invoke_async(fn, {"seconds": 1})
        seen: list[StreamEvent] = []
        for event in tg.events(started):
            seen.append(event)
            if event.event == "log" and event.data["message"] == "first line":
                assert tg.execution(started.execution_id).status == "running"
        assert [e.event for e in seen][-1] == "end"
        logs = [e.data["message"] for e in seen if e.event == "log"]
        assert logs == ["first line", "second line", "last line"]
        statuses = [e.status for e in tg.stream(tg.invoke_async(fn, {"seconds": 0.5}))]
        assert statuses[-1] == "completed" and "running" in statuses
        lines = []
        later = threading.Timer(0.5, lambda: api.post(f"/invoke/{fn}", json={"seconds": 0.1}))
        later.start()  # once the stream below is open
        for event in tg.follow_logs(fn):
            lines.append(event)
            if event.event == "execution":
                break
        later.join()
        assert next(e.data["message"] for e in lines if e.event == "log") == "first line"


def test_cli_invoke_wait_says_log_lines_as_they_come(api, tiergate_server):
    from conftest import run_cli

    fn = deploy_python(api, PRINT_THEN_WAIT)
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    followed = run_cli("invoke", fn, "--async", "--wait", "-d", '{"seconds": 0.5}', env=env)
    assert followed.returncode == 0, followed.stderr
    assert orjson.loads(followed.stdout) == {"done": True}
    said = followed.stderr.splitlines()
    assert said.index("[stdout] first line") < said.index("[stdout] last line")
    assert "[log] second line" in said


# Across processes: the process running an execution forwards its events to the processes whose
# streams follow it (a lease, then batches); the end still comes from the record.

FLOOD_LATER = """
import time

def handler(event, context):
    time.sleep(event["wait"])
    for n in range(event["lines"]):
        print(f"line {n} " + "x" * 200)
    time.sleep(event["wait"])
    return {"printed": event["lines"]}
"""


@pytest.fixture(scope="module")
def pair(redis_server, s3_server, llm, tmp_path_factory):
    """Two instances on one Redis, and that Redis database's URL."""
    from conftest import shared_env

    from plugins.testing import TiergateServer

    env = shared_env(redis_server, s3_server)
    env |= {"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test"}
    servers = [TiergateServer(tmp_path_factory.mktemp(f"live-{n}"), env).start() for n in "ab"]
    clients = [server.client() for server in servers]
    yield (*clients, env["TIERGATE_KV"])
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def _listed(api, fn):
    """The id of ``fn``'s newest execution, once ``api``'s instance lists one."""
    return eventually(
        lambda: [e["execution_id"] for e in api.get(f"/functions/{fn}/logs").json()["executions"]]
    )[0]


def test_a_stream_on_another_instance_gets_the_events_as_they_happen(pair):
    a, b, _ = pair
    fn = deploy_python(a, PRINT_THEN_WAIT)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(a.post, f"/invoke/{fn}", json={"seconds": 3, "fail": True})  # on a
        execution = _listed(b, fn)
        with b.stream("GET", f"/executions/{execution}/events") as stream:
            assert stream.headers["x-tiergate-process"]
            seen = []
            for event in events_of(stream):
                seen.append(event)
                if event.name == "log" and event.data["message"] == "second line":
                    assert not call.done()  # the call still sleeps on a
                    assert b.get(f"/executions/{execution}").json()["status"] == "running"
        assert call.result().status_code == 500
    names = [e.name for e in seen]
    assert names[0] == "status" and seen[0].data["status"] == "running"
    logs = [e.data for e in seen if e.name == "log"]
    assert messages(logs)[:3] == ["first line", "second line", "last line"]  # then the traceback
    assert messages(logs) == messages(seen[-1].data["logs"])  # each once
    assert {entry["execution_id"] for entry in logs} == {execution}
    attempt = next(e.data for e in seen if e.name == "attempt")
    assert attempt["tier"] == "code" and attempt["status"] == "failed"
    assert names.index("attempt") < names.index("end")
    assert seen[-1].name == "end" and seen[-1].data["status"] == "failed"
    assert seen[-1].data == b.get(f"/executions/{execution}").json()
    assert [int(e.id) for e in seen] == list(range(1, len(seen) + 1))


def test_tokens_cross_instances(pair, llm):
    a, b, _ = pair
    chunks = ['{"ans', 'wer": ', "42", "}"]
    model = llm.script(unique("far"), [{"chunks": chunks, "delay": 2, "chunk_delay": 0.3}])
    fn = unique("genfar")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    manifest = {"id": fn, "output_schema": schema, "tiers": {"generative": {"model": model}}}
    assert a.post("/deploy", json=manifest).status_code == 201
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(a.post, f"/invoke/{fn}", json={"q": "?"})  # runs on a
        execution = _listed(b, fn)
        with b.stream("GET", f"/executions/{execution}/events") as stream:
            seen = list(events_of(stream))
        assert call.result().status_code == 200
    assert [e.data["text"] for e in seen if e.name == "token"] == chunks
    assert [e.name for e in seen][-1] == "end"
    assert seen[-1].data["output"] == {"answer": 42}


def test_a_flood_across_instances_is_bounded_and_every_entry_comes_once(pair):
    import redis

    a, b, kv = pair
    fn = deploy_python(a, FLOOD_LATER)

    def call():
        # The function waits before it floods, so that b's lease has reached a, and after, so
        # that what a forwards reaches b before the record says the execution ended.
        answer = a.post(f"/invoke/{fn}", json={"wait": 1, "lines": 5000})
        return answer, time.monotonic()

    with (
        b.stream("GET", f"/functions/{fn}/logs?follow=true") as stream,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        called = pool.submit(call)
        seen = []
        for event in sse(stream):
            seen.append(event)
            if isinstance(event, Event) and event.name == "execution":
                break
        answer, answered = called.result()
    assert answer.status_code == 200, answer.text
    record = b.get(f"/executions/{answer.json()['execution_id']}").json()
    logs = [e for e in seen if isinstance(e, Event) and e.name == "log"]
    assert messages(e.data for e in logs) == messages(record["logs"])  # in order, each once
    assert logs[0].at < answered - 0.5  # forwarded as the flood went on
    dropped = [e for e in seen if isinstance(e, str) and e.startswith("dropped:")]
    assert len(dropped) == 1 and record["execution_id"] in dropped[0]
    assert 0 < seen.index(dropped[0]) < len(seen) - 1
    # The batches went over the channel alone: the event log every process scans stays small.
    logged = list(redis.Redis.from_url(kv).scan_iter("event/*"))
    assert len(logged) < 20, len(logged)


# Across the processes of ``serve --workers 2`` on the embedded SQLite KV (the event log alone).


@contextlib.contextmanager
def on_two_processes(server, path):
    """Two open streams of ``path`` served by two different processes (each on a new
    connection, until the kernel hands one to the other process): with two processes, one of
    them is not the one that runs the execution."""
    with contextlib.ExitStack() as held:

        def open_one():
            client = held.enter_context(server.client())
            stream = held.enter_context(client.stream("GET", path))
            assert stream.status_code == 200, stream.read()
            return client, stream

        _, one = open_one()
        for _ in range(20):
            client, other = open_one()
            if other.headers["x-tiergate-process"] != one.headers["x-tiergate-process"]:
                yield one, other
                return
            client.close()
        raise AssertionError("every stream landed on one process")


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(tmp_path_factory.mktemp("live-workers"), args=("--workers", "2"))
    server.start()
    eventually(lambda: "2 workers)" in server.log(), timeout=30)
    yield server
    server.stop()


def test_streams_on_either_worker_get_the_events_as_they_happen(workers):
    with workers.client() as api:
        fn = deploy_python(api, PRINT_THEN_WAIT)
        execution = start_async(api, fn, {"seconds": 3})
        with (
            on_two_processes(workers, f"/executions/{execution}/events") as streams,
            concurrent.futures.ThreadPoolExecutor(2) as pool,
        ):
            seen = list(pool.map(lambda s: list(events_of(s)), streams))
        record = api.get(f"/executions/{execution}").json()
    for events in seen:
        names = [e.name for e in events]
        logs = [e.data["message"] for e in events if e.name == "log"]
        assert logs == ["first line", "second line", "last line"], names
        ended = max(n for n, e in enumerate(events) if e.name == "status")
        assert events[ended].data["status"] == "completed"
        assert names.index("log") < ended, names  # live: the first line came before the end
        assert "attempt" in names, names
        assert events[-1].name == "end" and events[-1].data == record


def test_a_follow_stream_on_either_worker_gets_lines_before_the_ending(workers):
    with workers.client() as api:
        fn = deploy_python(api, PRINT_THEN_WAIT)
        with on_two_processes(workers, f"/functions/{fn}/logs?follow=true") as streams:
            # Nothing shows when the leases reach the other process (a tick, then its next
            # poll of the event log, 0.5 s): a second is plenty.
            time.sleep(1)
            execution = start_async(api, fn, {"seconds": 2})
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                seen = list(pool.map(_until_execution, streams))
    for events in seen:
        assert [e.name for e in events] == ["log", "log", "log", "execution"]
        assert [e.data["message"] for e in events[:3]] == ["first line", "second line", "last line"]
        assert {e.data["execution_id"] for e in events} == {execution}
        assert all(e.at < events[-1].at - 1 for e in events[:2])  # not all at the ending


def _until_execution(stream):
    seen = []
    for event in events_of(stream):
        seen.append(event)
        if event.name == "execution":
            break
    return seen
