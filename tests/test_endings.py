"""How executions end: whichever way one ends — its code answered, a person answered, its gateway
process died — it is recorded, counted in the metrics and called back the same way."""

from __future__ import annotations

import contextlib
import signal
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import orjson
import pytest
from conftest import deploy_wat, eventually, example, metric, unique


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


def called_back(received, execution_id):
    return eventually(lambda: [c for c in received if c["execution_id"] == execution_id])[0]


def counted(api, fn):
    """The function's finished invocations as ``/metrics`` counts them: {(status, tier): n}, and
    how many durations it observed."""
    text = api.get("/metrics").text
    mine = {"tenant": "default", "function": fn}
    found = {}
    for status in ("completed", "failed", "timeout", "cancelled"):
        for tier in ("code", "human", "none"):
            value = metric(text, "tiergate_invocations_total", **mine, status=status, tier=tier)
            if value:
                found[status, tier] = value
    return found, metric(text, "tiergate_invocation_duration_seconds_count", **mine)


def test_a_person_answering_counts_like_code_answering(tiergate_factory, receiver):
    url, received = receiver
    server = tiergate_factory({"TIERGATE_CALLBACK_ALLOW_PRIVATE": "true"})
    with server.client() as api:
        by_code = unique("by-code")
        deploy_wat(api, by_code)
        answered = api.post(f"/invoke/{by_code}", json=1, headers={"X-Callback-Url": url}).json()
        assert counted(api, by_code) == ({("completed", "code"): 1}, 1)
        assert called_back(received, answered["execution_id"])["status"] == "completed"

        by_person = unique("by-person")
        deploy_wat(api, by_person, "trap.wat", tiers={"human": {}})
        waiting = api.post(f"/invoke/{by_person}", json=1, headers={"X-Callback-Url": url})
        assert waiting.status_code == 202, waiting.text
        execution = waiting.json()["execution_id"]
        task = next(t for t in api.get("/tasks").json()["tasks"] if t["execution_id"] == execution)
        done = api.post(f"/tasks/{task['id']}/complete", json={"output": {"ok": True}})
        assert done.status_code == 200, done.text
        assert counted(api, by_person) == ({("completed", "human"): 1}, 1)
        sent = called_back(received, execution)
        document = eventually(lambda: (d := api.get(f"/executions/{execution}").json())
                              ["callback"]["status"] == "delivered" and d)  # after it is sent
        document.pop("callback")  # (not in what was sent)
        assert sent == document


def test_an_orphaned_execution_counts_like_any_other_failure(tiergate_factory, receiver):
    """A synchronous call whose gateway process dies is ended by the orphan sweep. (Asynchronous
    work is run again instead: tests/test_composition.py.)"""
    url, received = receiver
    server = tiergate_factory(
        {"TIERGATE_ORPHAN_AFTER_S": "1", "TIERGATE_CALLBACK_ALLOW_PRIVATE": "true"}
    )
    with server.client() as api:
        fn = unique("orphan")
        body = {"id": fn, "runtime": "python", "code": example("slow.py")}
        assert api.post("/deploy", json={**body, "limits": {"timeout_ms": 120_000}}).is_success
        caller = threading.Thread(target=_call_and_lose_the_answer,
                                  args=(server, fn, url), daemon=True)
        caller.start()
        execution = eventually(
            lambda: [e["execution_id"] for e in
                     api.get(f"/functions/{fn}/logs").json()["executions"]
                     if e["status"] == "running"]
        )[0]
    server.stop(signal.SIGKILL)
    server.start()
    with server.client() as api:
        ended = eventually(
            lambda: (r := api.get(f"/executions/{execution}").json())["status"] == "failed" and r,
            timeout=20,
        )
        assert "stopped before it finished" in ended["error"]
        assert counted(api, fn) == ({("failed", "none"): 1}, 1)
        called = called_back(received, execution)
        assert ended.pop("callback")["status"] == "delivered"
        assert called == ended


def _call_and_lose_the_answer(server, fn, url):
    with contextlib.suppress(httpx.HTTPError), server.client() as api:
        api.post(f"/invoke/{fn}", json={"seconds": 60}, headers={"X-Callback-Url": url})
