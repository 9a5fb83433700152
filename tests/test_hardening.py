"""Small holes in the HTTP layer, each closed and held shut here, over HTTP against real servers:
secrets in error details, numeric parameters, slow clients, callback addresses, the last admin
key, rate limits and admins, tenant choice, and the reviewer page's headers."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from conftest import (
    assert_problem,
    deploy_wat,
    eventually,
    example,
    run,
    shared_env,
    unique,
)

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
        ("GET", "/admin/audit?limit=%C2%B2", None, 400, "invalid_request"),
        ("PUT", "/admin/tenants/{fn}/rate-limit", {"rate": 1e300}, 400, "invalid_request"),
        (
            "PUT",
            "/admin/tenants/{fn}/rate-limit",
            {"rate": 1, "burst": 2**64 - 1},
            400,
            "invalid_request",
        ),
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
    assert_problem(api.request(method, path.format(fn=echo), json=body), status, code)


def test_a_problem_whose_extension_json_cannot_hold_still_renders():
    from gateway.errors import VersionNotFound
    from gateway.http.problems import problem_response

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


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[::ffff:7f00:1]/hook",  # IPv4-mapped
        "http://[::ffff:0:a00:1]/hook",  # IPv4-translated (10.0.0.1)
        "http://[64:ff9b::7f00:1]/hook",  # NAT64
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 to the cloud metadata service
        "http://[64:ff9b:1:808:8:800::]/hook",  # local-use NAT64, even to 8.8.8.8
        "http://[2002:7f00:1::1]/hook",  # 6to4
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "http://[::1]:8080/hook",
        "http://localhost/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1/hook",  # a broken IPv6 literal
        "http://example.com:99999/hook",  # a port out of range
    ],
)
def test_callback_urls_that_reach_inside_are_refused(api, echo, url):
    r = api.post(f"/invoke/{echo}", json=1, headers={"X-Callback-Url": url})
    assert_problem(r, 400, "invalid_request")


class _Hook(BaseHTTPRequestHandler):
    """Counts POSTs per path; ``/bounce`` answers 307 to ``/target``."""

    hits: collections.Counter[str] = collections.Counter()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.hits[self.path] += 1
        self.send_response(307 if self.path == "/bounce" else 200)
        self.send_header("Location", "/target")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_callbacks_never_follow_redirects(tiergate_factory):
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    server = tiergate_factory({"TIERGATE_CALLBACK_ALLOW_PRIVATE": "true"})
    try:
        with server.client() as api:
            deploy_wat(api, fn := unique("bounced"))
            url = f"http://127.0.0.1:{hook.server_address[1]}/bounce"
            assert api.post(f"/invoke/{fn}", json=1, headers={"X-Callback-Url": url}).is_success
            eventually(lambda: _Hook.hits["/bounce"] >= 2)  # the 307 was a failed attempt
        assert _Hook.hits["/target"] == 0
    finally:
        hook.shutdown()


class _Script(AbstractResolver):
    """A name service that answers each question with the next address of a script (the last
    one from then on)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    async def resolve(self, host, port=0, family=socket.AF_INET):
        address = self.addresses.pop(0) if len(self.addresses) > 1 else self.addresses[0]
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": flags,
            }
        ]

    async def close(self):
        pass


def test_a_delivery_connects_only_to_an_address_it_checked(monkeypatch):
    """No real DNS and no public address can be reached here, so this one drives the gateway's
    ``Callbacks`` in-process with two stand-ins: a scripted name service, and a policy under which
    127.0.0.1 plays the public address and 127.0.0.2 a private one. The rest is real: the aiohttp
    session and resolver a delivery uses, the sockets, and the receivers on both addresses."""
    from gateway.invoke import callbacks

    monkeypatch.setattr(callbacks, "allowed", lambda address: str(address) == "127.0.0.1")
    hosts: dict[str, list[str]] = {"127.0.0.1": [], "127.0.0.2": []}

    async def hook(request):
        hosts[request.transport.get_extra_info("sockname")[0]].append(request.headers["Host"])
        return web.Response()

    async def deliver(*answers: str) -> str | None:
        sender = callbacks.Callbacks(dns=_Script(*answers))
        url = f"http://hooks.test:{port}/hook"
        assert await sender.check(url) == url  # the first answer, 127.0.0.1, passes
        try:
            async with asyncio.timeout(10):
                return await sender.deliver(url, b'{"status": "completed"}')
        finally:
            await sender.close()

    async def scenario() -> None:
        nonlocal port
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        await web.TCPSite(runner, "127.0.0.2", port).start()
        try:
            assert await deliver("127.0.0.1", "127.0.0.1") is None
            assert hosts == {"127.0.0.1": [f"hooks.test:{port}"], "127.0.0.2": []}
            assert await deliver("127.0.0.1", "127.0.0.2") is not None  # rebound: refused
            assert hosts["127.0.0.2"] == []
        finally:
            await runner.cleanup()

    port = 0
    run(scenario())


def _new_admin(api) -> tuple[str, str]:
    r = api.post("/admin/keys", json={"tenant": "default", "roles": ["admin"], "name": "spare"})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def _admin_ids(api) -> set[str]:
    return {k["id"] for k in api.get("/admin/keys").json()["keys"] if "admin" in k["roles"]}


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at the same moment; their results in order."""
    start = threading.Barrier(len(calls))

    def call(fn: Callable[[], Any]) -> Any:
        start.wait()
        return fn()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, calls))


def test_the_last_admin_key_cannot_be_revoked(tiergate_factory):
    server = tiergate_factory()
    with server.client() as root:
        (first,) = _admin_ids(root)
        assert_problem(root.delete(f"/admin/keys/{first}"), 409, "last_admin_key")
        assert _admin_ids(root) == {first}  # and the key still works
        other = root.post("/admin/keys", json={"tenant": "default", "roles": ["deploy"]}).json()
        assert root.delete(f"/admin/keys/{other['id']}").status_code == 204
        second, token = _new_admin(root)
        assert root.delete(f"/admin/keys/{first}").status_code == 204
    with server.client(token) as admin:
        assert_problem(admin.delete(f"/admin/keys/{second}"), 409, "last_admin_key")
        assert _admin_ids(admin) == {second}


def test_two_instances_revoking_the_last_two_admin_keys_at_once_leave_one(
    tiergate_factory, redis_server, s3_server
):
    env = shared_env(redis_server, s3_server)
    one, two = tiergate_factory(env), tiergate_factory(env)
    with one.client() as root:
        keys = dict([_new_admin(root), _new_admin(root)])
        (bootstrap,) = _admin_ids(root) - set(keys)
        assert root.delete(f"/admin/keys/{bootstrap}").status_code == 204
    for _ in range(5):
        (a, token_a), (b, token_b) = keys.items()
        with one.client(token_a) as on_one, two.client(token_b) as on_two:
            assert on_one.get("/admin/keys").is_success and on_two.get("/admin/keys").is_success
            answers = _at_once(
                functools.partial(on_one.delete, f"/admin/keys/{b}"),
                functools.partial(on_two.delete, f"/admin/keys/{a}"),
            )
        statuses = [r.status_code for r in answers]
        assert statuses != [204, 204] and set(statuses) <= {204, 401, 409}, statuses
        survivors = {}
        for key_id, token in keys.items():
            with one.client(token) as client:
                if (r := client.get("/admin/keys")).is_success:
                    survivors[key_id] = token
                    left = {k["id"] for k in r.json()["keys"] if "admin" in k["roles"]}
        assert survivors and set(survivors) == left
        if len(survivors) == 1:
            with one.client(next(iter(survivors.values()))) as client:
                survivors.update([_new_admin(client)])
        keys = survivors


def test_admin_keys_are_never_rate_limited(tiergate_factory):
    server = tiergate_factory()
    with server.client() as admin:
        key = admin.post("/admin/keys", json={"tenant": "default", "roles": ["deploy"]}).json()
        limit = {"rate": 0.01, "burst": 1}
        assert admin.put("/admin/tenants/default/rate-limit", json=limit).status_code == 200
        with server.client(key["key"]) as deployer:
            assert deployer.get("/functions").status_code == 200
            assert_problem(deployer.get("/functions"), 429, "rate_limited")
            assert all(admin.get("/functions").status_code == 200 for _ in range(20))
            assert admin.delete("/admin/tenants/default/rate-limit").status_code == 204
            eventually(lambda: deployer.get("/functions").status_code == 200)


def test_only_admin_keys_name_another_tenant_on_any_route(api, tiergate_server, echo):
    mine, theirs = unique("mine"), unique("theirs")
    waiting = {}
    for tenant in (mine, theirs):
        fn = unique("asks")
        human = {"id": fn, "tiers": {"human": {"instructions": "answer"}}}
        assert api.post(f"/deploy?tenant={tenant}", json=human).status_code == 201
        waiting[tenant] = api.post(f"/invoke/{fn}?tenant={tenant}", json=1).json()
    roles = ["review", "invoke", "deploy"]
    key = api.post("/admin/keys", json={"tenant": mine, "roles": roles}).json()["key"]
    with tiergate_server.client(key) as member:
        (task,) = member.get("/tasks").json()["tasks"]
        assert task["execution_id"] == waiting[mine]["execution_id"]
        assert member.get(f"/tasks?tenant={mine}").json()["tasks"] == [task]
        for method, path in [
            ("GET", f"/tasks?tenant={theirs}"),
            ("GET", f"/tasks?tenant={mine}&tenant={theirs}"),
            ("GET", f"/tasks/{task['id']}?tenant={theirs}"),
            ("POST", f"/tasks/{task['id']}/claim?tenant={theirs}"),
            ("GET", f"/executions/{waiting[mine]['execution_id']}?tenant={theirs}"),
            ("GET", f"/functions?tenant={theirs}"),
            ("POST", f"/invoke/{echo}?tenant={theirs}"),
            ("GET", f"/openapi.json?tenant={theirs}"),
        ]:
            assert_problem(member.request(method, path), 403, "forbidden")
    (theirs_only,) = api.get(f"/tasks?tenant={theirs}").json()["tasks"]
    assert theirs_only["execution_id"] == waiting[theirs]["execution_id"]
    everyone = {t["execution_id"] for t in api.get("/tasks").json()["tasks"]}
    assert {w["execution_id"] for w in waiting.values()} <= everyone


def test_the_reviewer_page_is_sent_with_a_strict_policy(tiergate_server):
    with tiergate_server.client(key="") as anonymous:
        for path in (
            "/ui",
            "/ui/",
            "/ui/static/review.js",
            "/ui/static/review.css",
            "/ui/static/x",
        ):
            headers = anonymous.get(path).headers
            policy = dict(
                d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";")
            )
            assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
            assert policy["script-src"] == "'self'" and "unsafe" not in str(policy)
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"


# A manifest's schemas run on the event loop: they must not be able to stall it.

EVIL = "(a+)+$"  # exponential in Python's re: 40 characters would take days


def test_schema_patterns_match_in_linear_time(api):
    fn = unique("redos")
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}},
              "patternProperties": {EVIL: {"type": "integer"}}}
    deploy_wat(api, fn, input_schema=schema)
    with api.__class__(base_url=api.base_url, headers=api.headers, timeout=10) as quick:
        problem = assert_problem(
            quick.post(f"/invoke/{fn}", json={"s": "a" * 40 + "!", "a" * 40 + "!": "x"}),
            400, "invalid_input",
        )
    assert problem["errors"][0]["path"] == "/s"
    assert quick_echo(api, fn, {"s": "aaa"}) == {"s": "aaa"}


def quick_echo(api, fn, value):
    answer = api.post(f"/invoke/{fn}", json=value)
    assert answer.status_code == 200, answer.text
    return answer.json()["output"]


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)b", r"(?<!x)y"])
def test_patterns_that_need_backtracking_are_refused_at_deploy(api, pattern):
    problem = assert_problem(
        api.post("/deploy", json={"id": unique("backref"), "runtime": "wasm",
                                  "code": example("echo.wat"),
                                  "output_schema": {"type": "string", "pattern": pattern}}),
        400, "invalid_manifest",
    )
    assert problem["field"] == "output_schema" and "RE2" in problem["detail"]


def test_a_schema_that_refers_elsewhere_is_an_input_error_not_a_fetch(api):
    fn = unique("remote-ref")
    deploy_wat(api, fn, input_schema={"$ref": "http://169.254.169.254/latest/meta-data"})
    problem = assert_problem(api.post(f"/invoke/{fn}", json=1), 400, "invalid_input")
    assert "cannot be used" in problem["errors"][0]["message"]


def test_a_schema_nested_too_deeply_is_refused(api):
    schema: dict = {}
    for _ in range(900):
        schema = {"items": schema}
    problem = assert_problem(
        api.post("/deploy", json={"id": unique("deep"), "runtime": "wasm",
                                  "code": example("echo.wat"), "input_schema": schema}),
        400, "invalid_manifest",
    )
    assert problem["field"] == "input_schema"


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        ({"cascade": {"tier_retries": {"code": 1_000_000}}}, "cascade.tier_retries.code"),
        ({"cascade": {"tier_timeouts_ms": {"human": 10**15}}}, "cascade.tier_timeouts_ms.human"),
        ({"limits": {"max_concurrency": 10**9}}, "limits.max_concurrency"),
        ({"limits": {"fuel": 2**64}}, "limits.fuel"),
    ],
)
def test_every_number_a_manifest_sets_is_bounded(api, manifest, field):
    """A failing function retried a million times, or a fuel count no engine can hold, would
    keep the gateway busy for one manifest's sake."""
    problem = assert_problem(
        api.post("/deploy", json={"id": unique("unbounded"), "runtime": "wasm",
                                  "code": example("echo.wat"), **manifest}),
        400, "invalid_manifest",
    )
    assert problem["field"] == field
