"""Small holes in the HTTP layer, each closed and held shut here, over HTTP against real servers:
secrets in error details, numeric parameters, slow clients, callback addresses, the last admin
key, rate limits and admins, tenant choice, and the reviewer page's headers."""

from __future__ import annotations

import itertools
import os
import select
import socket
import time

import orjson
import pytest
from conftest import assert_problem, deploy_wat, eventually, example, unique

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


def _trickle(server, at_once: bytes, slowly: bytes, limit: float = 10) -> tuple[bytes, float]:
    """Send ``at_once``, then ``slowly`` a byte every 50 ms over a raw socket; return what the
    server answered by the time it closed the connection, and after how many seconds."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(at_once)
        started, answer = time.monotonic(), b""
        for byte in itertools.cycle(slowly):
            if time.monotonic() - started > limit:
                raise AssertionError(f"still open after {limit} s; answered {answer!r}")
            try:
                sock.send(bytes([byte]))
                if select.select([sock], [], [], 0.05)[0]:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (BrokenPipeError, ConnectionResetError):
                break
        return answer, time.monotonic() - started


@pytest.fixture(scope="module")
def impatient(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(tmp_path_factory.mktemp("impatient"), {"TIERGATE_READ_TIMEOUT_S": "1"})
    yield server.start()
    server.stop()


def test_a_client_trickling_headers_is_cut_off(impatient):
    answer, seconds = _trickle(impatient, b"", b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 4000)
    assert answer == b"" and 0.9 < seconds < 5


def test_a_client_trickling_a_body_gets_408_and_a_closed_connection(impatient):
    head = (
        "POST /deploy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {impatient.admin_key}\r\nContent-Length: 10000\r\n\r\n"
    )
    answer, seconds = _trickle(impatient, head.encode(), b" ")
    assert 0.9 < seconds < 5
    status, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert b"content-type: application/problem+json" in headers.lower()
    assert b"connection: close" in headers.lower()
    assert orjson.loads(body)["code"] == "request_timeout"


def test_slow_handlers_and_paused_bodies_within_the_limit_are_not_cut(impatient):
    fn = unique("sleepy")
    with impatient.client() as api:
        body = {"id": fn, "runtime": "python", "code": example("slow.py")}
        assert api.post("/deploy", json=body).status_code == 201
        assert api.post(f"/invoke/{fn}", json={"seconds": 1.5}).json()["status"] == "completed"

        def paused():
            yield b'{"seconds":'
            time.sleep(0.5)
            yield b" 0.1}"

        r = api.post(f"/invoke/{fn}", content=paused())
        assert r.status_code == 200 and r.json()["output"] == {"slept": 0.1}
