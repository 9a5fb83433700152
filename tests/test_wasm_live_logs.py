"""WebAssembly functions' logs reach the gateway while the call runs in a wasm worker (in batches,
``plugins/wasm/log_flusher.py``), as Python functions' do: a live stream shows them before the
end, and a call that never answers — cancelled while it spins, or while it waits for a function
it called — keeps them on its record. The log caps hold over every batch."""

from __future__ import annotations

import orjson
import pytest
from conftest import eventually, fixture, unique
from test_live_streams import events_of, messages

from plugins.logs import ENTRY_OVERHEAD, EXECUTION_BYTES, SUMMARY_BYTES

SLEEPS = "import time\n\ndef handler(event, context):\n    time.sleep(event)\n    return 'woke'\n"


def deploy(api, runtime: str, code: str, **manifest) -> str:
    fn = unique("live-wasm")
    answer = api.post("/deploy", json={"id": fn, "runtime": runtime, "code": code, **manifest})
    assert answer.status_code == 201, answer.text
    return fn


def start_async(api, fn: str, body: bytes = b"null") -> str:
    started = api.post(f"/invoke/{fn}", content=body, headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    return started.json()["execution_id"]


@pytest.mark.parametrize(
    ("module", "stream"), [("log-then-spin.wat", "log"), ("wasi-log-then-spin.wat", "stderr")]
)
def test_a_spinning_call_s_log_is_live_and_outlives_its_cancel(api, module, stream):
    fn = deploy(api, "wasm", fixture(module), limits={"timeout_ms": 5000})
    execution = start_async(api, fn)
    with api.stream("GET", f"/executions/{execution}/events") as events:
        seen = []
        for event in events_of(events):
            seen.append(event)
            if event.name == "log":  # while the call spins: no answer brought it
                assert event.data["message"] == "before the loop"
                assert event.data["stream"] == stream
                assert api.get(f"/executions/{execution}").json()["status"] == "running"
                assert api.delete(f"/executions/{execution}").status_code == 200
            if event.name == "end":
                break
    assert [e.name for e in seen if e.name in ("log", "end")] == ["log", "end"]
    record = api.get(f"/executions/{execution}").json()
    assert record["status"] == "cancelled"
    assert [(e["stream"], e["message"]) for e in record["logs"]] == [(stream, "before the loop")]
    assert seen[-1].data == record


@pytest.mark.parametrize("module", ["log-then-call.wat", "wasi-log-then-call.wat"])
def test_a_call_cancelled_while_it_waits_on_a_callee_keeps_what_it_logged(api, module):
    """Its worker blocks in ``tiergate.invoke`` and is killed at the cancel: no answer comes."""
    caller = deploy(api, "wasm", fixture(module), limits={"timeout_ms": 60_000})
    sleeps = deploy(api, "python", SLEEPS)
    execution = start_async(api, caller, orjson.dumps(sleeps))

    def callee_running() -> bool:
        listed = api.get(f"/functions/{sleeps}/logs").json()["executions"]
        return bool(listed) and listed[0]["status"] == "running"

    eventually(callee_running)
    assert api.delete(f"/executions/{execution}").status_code == 200
    record = api.get(f"/executions/{execution}").json()
    assert record["status"] == "cancelled"
    assert messages(record["logs"]) == ["calling it"], record["logs"]


def test_a_module_logging_without_end_is_capped_over_every_batch(api):
    fn = deploy(api, "wasm", fixture("log-forever.wat"), limits={"timeout_ms": 1000})
    response = api.post(f"/invoke/{fn}", json=None)
    assert response.status_code == 504, response.text
    record = api.get(f"/executions/{response.json()['execution_id']}").json()
    assert record["status"] == "timeout"
    *kept, summary = record["logs"]
    assert all(e["message"] == "x" * 100 and e["stream"] == "log" for e in kept)
    # the worker's allowance, sent in many batches and the answer, each entry once
    assert len(kept) == (EXECUTION_BYTES - SUMMARY_BYTES) // (100 + ENTRY_OVERHEAD)
    assert summary["message"].startswith("dropped ") and summary["level"] == "WARNING"
