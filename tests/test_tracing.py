"""OpenTelemetry tracing (the ``otel`` extra): a real ``tiergate serve`` exports its spans over
OTLP/HTTP to a receiver this test runs on 127.0.0.1, which decodes them with opentelemetry-proto.

Checked: the span tree of a call (``invoke`` → ``tier code`` → ``runtime wasm``, the storage
reads of a cold load under ``invoke``, the record's write), its attributes, a caller's
``traceparent`` joined and the execution's ``trace_id`` equal to the spans'; a failing tier; a
function calling a function; an async call's run under its 202's span and a chained execution
under its cause's. And that a gateway not asked to trace never imports OpenTelemetry, and one
asked to trace without the extra says so in one line."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import TIERGATE, deploy_wat, eventually, unique
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from plugins.testing import free_port

CALLER = (
    "def handler(event, context):\n"
    "    return {'got': context.invoke(event['to'], event['input'])}\n"
)
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every span it is sent, flattened to a dict."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.take(self.path, ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self, path: str, request: ExportTraceServiceRequest) -> None:
        assert path == "/v1/traces"
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                self.resources.append(resource)
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(_span(span) for span in scope_spans.spans)

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [span for span in self.spans if predicate(span)]

    def wait(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1) -> Any:
        """The spans ``predicate`` picks, once there are ``count`` of them."""
        return eventually(lambda: (found := self.find(predicate)) and len(found) >= count and found)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value"))


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent": span.parent_span_id.hex(),
        "kind": span.kind,
        "status": span.status.code,
        "attributes": _attributes(span.attributes),
    }


def named(name: str, **attributes: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda span: (
        span["name"] == name
        and all(span["attributes"].get(key) == value for key, value in attributes.items())
    )


def children(receiver: Receiver, parent: dict[str, Any]) -> list[dict[str, Any]]:
    return receiver.find(lambda span: span["parent"] == parent["span_id"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Any]:
    from plugins.testing import TiergateServer

    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "tiergate-under-test",
    }
    server = TiergateServer(tmp_path_factory.mktemp("traced"), env).start()
    with server.client() as api:
        yield api
    server.stop()


def test_a_cold_call_is_one_trace_from_invoke_to_runtime_and_storage(traced, receiver):
    fn = unique("traced-echo")
    deploy_wat(traced, fn)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    answer = traced.post(
        f"/invoke/{fn}",
        json={"a": 1},
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["trace_id"] == caller_trace
    assert traced.get(f"/executions/{body['execution_id']}").json()["trace_id"] == caller_trace

    [invoke] = receiver.wait(named("invoke", **{"tiergate.function_id": fn}))
    assert invoke["trace_id"] == caller_trace and invoke["parent"] == caller_span
    assert invoke["kind"] == SERVER_KIND
    assert invoke["attributes"] == {
        "tiergate.function_id": fn,
        "tiergate.tenant": "default",
        "tiergate.execution_id": body["execution_id"],
        "tiergate.version": 1,
        "tiergate.status": "completed",
        "tiergate.tier": "code",
        "tiergate.cache_hit": False,
    }
    assert answer.headers["traceparent"] == f"00-{caller_trace}-{invoke['span_id']}-01"

    expected = {"execution_record write", "kv get", "object get", "tier code"}
    eventually(lambda: {span["name"] for span in children(receiver, invoke)} == expected)
    under_invoke = children(receiver, invoke)
    # the cold load: the version record from the KV (and the function's, when not known yet)…
    kv_keys = {
        s["attributes"]["tiergate.storage.key"] for s in under_invoke if s["name"] == "kv get"
    }
    assert f"fnv/default/{fn}/{1:010d}" in kv_keys
    assert kv_keys <= {f"fn/default/{fn}", f"fnv/default/{fn}/{1:010d}"}
    # …and the compiled code from the object store
    [object_get] = [span for span in under_invoke if span["name"] == "object get"]
    assert object_get["attributes"]["tiergate.storage.key"].startswith(f"code/default/{fn}/v1/")
    assert object_get["attributes"]["tiergate.storage.found"] is True
    write = next(span for span in under_invoke if span["name"] == "execution_record write")
    assert write["attributes"]["tiergate.execution_id"] == body["execution_id"]

    tier = next(span for span in under_invoke if span["name"] == "tier code")
    assert tier["attributes"] == {
        "tiergate.tier": "code",
        "tiergate.attempt": 1,
        "tiergate.outcome": "succeeded",
    }
    [runtime] = children(receiver, tier)
    assert runtime["name"] == "runtime wasm"
    assert runtime["attributes"]["tiergate.runtime"] == "wasm"
    assert runtime["attributes"]["tiergate.wasm.placement"] in ("inline", "worker")
    assert {span["trace_id"] for span in [*under_invoke, runtime]} == {caller_trace}
    assert receiver.resources[-1]["service.name"] == "tiergate-under-test"


def test_a_warm_call_reads_no_storage_and_starts_its_own_trace(traced, receiver):
    fn = unique("traced-warm")
    deploy_wat(traced, fn)
    traced.post(f"/invoke/{fn}", json=1)
    body = traced.post(f"/invoke/{fn}", json=2).json()
    assert body["metrics"]["cache_hit"] is True
    [invoke] = receiver.wait(named("invoke", **{"tiergate.execution_id": body["execution_id"]}))
    assert invoke["trace_id"] == body["trace_id"] and invoke["parent"] == ""
    assert invoke["attributes"]["tiergate.cache_hit"] is True
    expected = ["execution_record write", "tier code"]
    eventually(lambda: sorted(span["name"] for span in children(receiver, invoke)) == expected)


def test_a_failing_tier_is_an_error_span_with_its_outcome(traced, receiver):
    fn = unique("traced-fail")
    deploy_wat(traced, fn, "fail.wat")
    answer = traced.post(f"/invoke/{fn}", json=1)
    assert answer.status_code == 500
    execution = answer.json()["execution_id"]
    [invoke] = receiver.wait(named("invoke", **{"tiergate.execution_id": execution}))
    assert invoke["attributes"]["tiergate.error_code"] == "cascade_exhausted"
    assert invoke["status"] == ERROR
    [tier] = receiver.wait(
        lambda span: span["parent"] == invoke["span_id"] and span["name"] == "tier code"
    )
    assert tier["attributes"]["tiergate.outcome"] == "failed"
    assert tier["status"] == ERROR
    assert traced.get(f"/executions/{execution}").json()["trace_id"] == invoke["trace_id"]


def test_a_function_called_from_code_runs_under_the_callers_runtime_span(traced, receiver):
    caller, callee = unique("traced-caller"), unique("traced-callee")
    answer = traced.post("/deploy", json={"id": caller, "runtime": "python", "code": CALLER})
    assert answer.status_code == 201, answer.text
    deploy_wat(traced, callee)
    body = traced.post(f"/invoke/{caller}", json={"to": callee, "input": [1]}).json()
    assert body["output"] == {"got": [1]}, body
    [outer] = receiver.wait(named("invoke", **{"tiergate.execution_id": body["execution_id"]}))
    [inner] = receiver.wait(named("invoke", **{"tiergate.function_id": callee}))
    [runtime] = receiver.find(lambda span: span["span_id"] == inner["parent"])
    assert runtime["name"] == "runtime python"
    [tier] = receiver.find(lambda span: span["span_id"] == runtime["parent"])
    assert tier["parent"] == outer["span_id"]
    assert inner["trace_id"] == outer["trace_id"] == body["trace_id"]


def test_an_async_call_runs_under_its_202s_span_and_its_chain_under_it(traced, receiver):
    first, second = unique("traced-first"), unique("traced-second")
    deploy_wat(traced, second)
    deploy_wat(traced, first, chains=[{"to": second}])
    accepted = traced.post(f"/invoke/{first}", json={"n": 1}, headers={"Prefer": "respond-async"})
    assert accepted.status_code == 202, accepted.text
    execution = accepted.json()["execution_id"]
    [queued] = receiver.wait(named("invoke", **{"tiergate.execution_id": execution}))
    assert queued["attributes"]["tiergate.status"] == "pending"
    [run] = receiver.wait(named("execute", **{"tiergate.execution_id": execution}))
    assert run["parent"] == queued["span_id"]
    assert run["attributes"]["tiergate.status"] == "completed"
    assert {s["name"] for s in children(receiver, run)} >= {"tier code"}

    [chained] = receiver.wait(named("invoke", **{"tiergate.function_id": second}))
    assert chained["parent"] == queued["span_id"]
    record = traced.get(f"/executions/{execution}").json()
    assert chained["trace_id"] == queued["trace_id"] == run["trace_id"] == record["trace_id"]
    child = eventually(lambda: traced.get(f"/executions/{execution}").json()["children"])[0]
    assert traced.get(f"/executions/{child}").json()["trace_id"] == record["trace_id"]


def test_a_refused_call_names_its_code_and_is_no_error_of_the_gateway(traced, receiver):
    fn = unique("traced-schema")
    deploy_wat(traced, fn, input_schema={"type": "object"})
    assert traced.post(f"/invoke/{fn}", json=[1]).status_code == 400
    [invoke] = receiver.wait(named("invoke", **{"tiergate.function_id": fn}))
    assert invoke["attributes"]["tiergate.error_code"] == "invalid_input"
    assert invoke["status"] != ERROR


def test_a_graph_runs_nodes_in_the_runs_trace(traced, receiver):
    fn, graph = unique("traced-node"), unique("traced-graph")
    deploy_wat(traced, fn)
    nodes = {"first": {"function": fn}, "second": {"function": fn, "needs": ["first"]}}
    assert traced.post("/graphs", json={"id": graph, "nodes": nodes}).status_code == 201
    run = traced.post(f"/graphs/{graph}/runs", json={"x": 1}).json()
    assert run["status"] == "completed", run
    for node in run["nodes"].values():
        execution = node["execution_id"]
        assert traced.get(f"/executions/{execution}").json()["trace_id"] == run["trace_id"]
        [queued] = receiver.wait(named("invoke", **{"tiergate.execution_id": execution}))
        [ran] = receiver.wait(named("execute", **{"tiergate.execution_id": execution}))
        assert queued["trace_id"] == ran["trace_id"] == run["trace_id"]
        assert ran["parent"] == queued["span_id"]


def _blocked_extra(tmp_path: Path) -> str:
    """A ``PYTHONPATH`` where ``opentelemetry`` cannot be imported, as without the extra."""
    blocked = tmp_path / "blocked"
    (blocked / "opentelemetry").mkdir(parents=True)
    (blocked / "opentelemetry" / "__init__.py").write_text(
        "raise ImportError('the otel extra is not installed here')\n"
    )
    return str(blocked)


def test_a_gateway_that_does_not_trace_never_imports_opentelemetry(tiergate_factory, receiver):
    """``PYTHONPROFILEIMPORTTIME``: the server's Python reports every module it imports, when it
    does. (redis-py 8 imports OpenTelemetry's metrics API and SDK by itself whenever they are
    installed, traced or not; what tracing would import is the tracing SDK and the exporter.)"""
    quiet = tiergate_factory({"PYTHONPROFILEIMPORTTIME": "1"})
    loud = tiergate_factory(
        {
            "PYTHONPROFILEIMPORTTIME": "1",
            "TIERGATE_TRACING": "on",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        }
    )
    for server in (quiet, loud):
        with server.client() as api:
            fn = unique("untraced")
            deploy_wat(api, fn)
            assert api.post(f"/invoke/{fn}", json=1).status_code == 200
    tracing = re.compile(
        r"^import time:.*\|\s+(gateway\.tracing\.otel|opentelemetry\.(sdk\.trace|exporter))",
        re.MULTILINE,
    )
    quiet_log, loud_log = quiet.log_path.read_text(), loud.log_path.read_text()
    assert re.search(r"^import time:.*\|\s+gateway\.tracing$", quiet_log, re.MULTILINE)
    assert not tracing.search(quiet_log)
    assert tracing.search(loud_log)  # the check can fail: tracing imports them


def test_tracing_asked_for_without_the_extra_is_one_line_at_start(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIERGATE_", "OTEL_"))}
    env = {**clean, "PYTHONPATH": _blocked_extra(tmp_path), "TIERGATE_TRACING": "on"}
    command = [TIERGATE, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.strip() == (
        "error: TIERGATE_TRACING=on: tracing needs the otel extra: pip install 'tiergate[otel]'"
    )


def test_an_otlp_endpoint_without_the_extra_serves_untraced_with_a_warning(
    tiergate_factory, tmp_path
):
    server = tiergate_factory(
        {
            "PYTHONPATH": _blocked_extra(tmp_path),
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        }
    )
    with server.client() as api:
        fn = unique("untraced-warned")
        deploy_wat(api, fn)
        assert api.post(f"/invoke/{fn}", json=1).status_code == 200
    assert "an OTLP endpoint is set, but tracing needs the otel extra" in server.log()
    assert "Traceback" not in server.log()
