"""Controlled egress: a Python function with ``network: {"allow": [...]}`` reaches exactly those
destinations through the gateway's proxy, and nothing else; every connection is counted on its
execution (``metrics.egress``) and every refusal logged there. Against a real ``tiergate serve``
with ``TIERGATE_EGRESS_ALLOW_PRIVATE=true`` (the destinations here are servers on 127.0.0.1), and
one without it."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import socket
import threading
import time

import pytest
from conftest import assert_problem, eventually, run, unique

from plugins.testing import TiergateServer

FETCH = '''
import http.client, os, socket, time, urllib.error, urllib.request

KEPT = []


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return {"status": answer.status, "body": answer.read().decode()}
    except urllib.error.HTTPError as exc:
        return {"error": f"HTTP {exc.code}", "body": exc.read().decode()}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def tunnel(host, port, keep=False):
    """https-style: CONNECT through the proxy (http.client), then a request inside."""
    proxy = os.environ["HTTPS_PROXY"].rsplit("/", 1)[1]
    conn = http.client.HTTPConnection(proxy, timeout=10)
    conn.set_tunnel(host, port)
    try:
        conn.request("GET", "/tunnel")
        return {"status": conn.getresponse().status}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        KEPT.append(conn) if keep else conn.close()


def handler(event, context):
    if "url" in event:
        return fetch(event["url"])
    if "tunnel" in event:
        return tunnel(event.get("host", "127.0.0.1"), event["tunnel"], event.get("keep", False))
    if "hold" in event:  # tunnels opened and kept open, no request sent
        host, port = os.environ["HTTPS_PROXY"].rsplit("/", 1)[1].split(":")
        lines = []
        for _ in range(event["count"]):
            held = socket.create_connection((host, int(port)), timeout=10)
            held.sendall(f"CONNECT 127.0.0.1:{event['hold']} HTTP/1.1\\r\\n\\r\\n".encode())
            lines.append(held.recv(4096).decode().split("\\r\\n")[0])
            KEPT.append(held)
        time.sleep(event.get("then_sleep", 0))
        return lines
    if "direct" in event:
        try:
            socket.create_connection(("127.0.0.1", event["direct"]), timeout=2).close()
            return "connected"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
    return {k: os.environ.get(k) for k in ("HTTP_PROXY", "https_proxy")}
'''

AT_IMPORT = '''
import urllib.request

try:
    urllib.request.urlopen("http://127.0.0.1:{port}/import", timeout=5)
    SEEN = "connected"
except Exception as exc:
    SEEN = f"{{type(exc).__name__}}: {{exc}}"


def handler(event, context):
    return SEEN
'''


BIG_MB = 3
CAP_MB = 1  # the gateway's TIERGATE_EGRESS_MAX_MB here


class Site:
    """A real HTTP server on 127.0.0.1 (a free port) that remembers the paths it served."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.paths.append(self.path)
                body = f"hello from {self.path}".encode()
                if self.path.startswith("/big"):
                    body = bytes(BIG_MB << 20)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sites():
    allowed, other = Site(), Site()
    yield allowed, other
    allowed.stop()
    other.stop()


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    server = TiergateServer(
        tmp_path_factory.mktemp("egress"),
        {"TIERGATE_EGRESS_ALLOW_PRIVATE": "true", "TIERGATE_EGRESS_MAX_MB": str(CAP_MB)},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(gate):
    with gate.client() as client:
        yield client


def deploy(api, allow=None, code=FETCH, **manifest):
    fn = unique("egress")
    if allow is not None:
        manifest["network"] = {"allow": allow}
    r = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert r.status_code == 201, r.text
    return fn


@pytest.fixture(scope="module")
def fetcher(api, sites):
    return deploy(api, [f"127.0.0.1:{sites[0].port}"])


def refusals(execution):
    return [e["message"] for e in execution["logs"] if e["message"].startswith("egress ")]


def test_an_allowed_destination_is_reached_and_counted(api, sites, fetcher):
    allowed, _ = sites
    answer = api.post(f"/invoke/{fetcher}", json={"url": allowed.url("/plain")}).json()
    assert answer["output"] == {"status": 200, "body": "hello from /plain"}, answer
    assert "/plain" in allowed.paths
    egress = answer["metrics"]["egress"]
    assert egress["allowed"] == 1 and egress["refused"] == egress["failed"] == 0, egress
    assert egress["bytes_sent"] > 0 and egress["bytes_received"] > len("hello from /plain")
    assert refusals(answer) == []
    stored = api.get(f"/executions/{answer['execution_id']}").json()
    assert stored["metrics"]["egress"] == egress


def test_a_tunnel_to_an_allowed_destination_works(api, sites, fetcher):
    allowed, _ = sites
    answer = api.post(f"/invoke/{fetcher}", json={"tunnel": allowed.port}).json()
    assert answer["output"] == {"status": 200}, answer
    assert "/tunnel" in allowed.paths
    assert answer["metrics"]["egress"]["allowed"] == 1


def test_another_port_is_refused_logged_and_counted(api, sites, fetcher):
    other = sites[1]
    answer = api.post(f"/invoke/{fetcher}", json={"url": other.url("/secret")}).json()
    assert answer["output"]["error"] == "HTTP 403", answer
    where = f"127.0.0.1:{other.port}"
    assert f"egress refused: {where} (not in network.allow)" in answer["output"]["body"]
    assert other.paths == []
    egress = answer["metrics"]["egress"]
    assert egress["refused"] == 1 and egress["allowed"] == 0, egress
    assert refusals(answer) == [f"egress refused: {where} (not in network.allow)"]
    assert [e["level"] for e in answer["logs"] if e["message"].startswith("egress")] == ["WARNING"]
    tunnelled = api.post(f"/invoke/{fetcher}", json={"tunnel": other.port}).json()
    assert "403" in tunnelled["output"]["error"], tunnelled
    assert tunnelled["metrics"]["egress"]["refused"] == 1
    assert other.paths == []


def test_a_function_that_fails_still_has_its_connections_counted(api, sites):
    code = (
        "import urllib.request\n"
        "def handler(event, context):\n"
        "    urllib.request.urlopen(event['url'], timeout=5)\n"
    )
    fn = deploy(api, [f"127.0.0.1:{sites[0].port}"], code=code)
    problem = assert_problem(
        api.post(f"/invoke/{fn}", json={"url": sites[1].url()}), 500, "cascade_exhausted"
    )
    failed = api.get(f"/executions/{problem['execution_id']}").json()
    assert failed["status"] == "failed" and "403" in failed["error"], failed
    assert failed["metrics"]["egress"]["refused"] == 1
    assert refusals(failed) == [f"egress refused: 127.0.0.1:{sites[1].port} (not in network.allow)"]


def test_names_are_resolved_by_the_proxy(api, sites):
    allowed, _ = sites
    fn = deploy(api, [f"localhost:{allowed.port}"])
    answer = api.post(f"/invoke/{fn}", json={"url": f"http://LocalHost:{allowed.port}/n"}).json()
    assert answer["output"] == {"status": 200, "body": "hello from /n"}, answer
    by_address = api.post(f"/invoke/{fn}", json={"url": allowed.url("/ip")}).json()
    assert by_address["output"]["error"] == "HTTP 403"  # listed by name, not by its address


def test_a_function_without_network_has_none(api, sites):
    allowed, _ = sites
    fn = deploy(api)
    answer = api.post(f"/invoke/{fn}", json={"url": allowed.url("/none")}).json()
    assert "error" in answer["output"] and "Connection refused" in answer["output"]["error"]
    assert api.post(f"/invoke/{fn}", json={}).json()["output"] == {
        "HTTP_PROXY": None, "https_proxy": None}
    assert "egress" not in answer["metrics"]
    assert "/none" not in allowed.paths


def test_even_with_network_nothing_goes_around_the_proxy(api, sites, fetcher):
    answer = api.post(f"/invoke/{fetcher}", json={"direct": sites[0].port}).json()
    assert answer["output"].startswith("ConnectionRefusedError"), answer
    proxy = api.post(f"/invoke/{fetcher}", json={}).json()["output"]
    assert proxy["HTTP_PROXY"].startswith("http://127.0.0.1:") and proxy["https_proxy"]


def test_there_is_no_network_outside_a_call(api, sites):
    """Module code runs at deploy (no network at all) and when a worker starts (no call: the
    proxy refuses); neither reaches the server."""
    allowed, _ = sites
    fn = deploy(api, [f"127.0.0.1:{allowed.port}"], code=AT_IMPORT.format(port=allowed.port))
    seen = api.post(f"/invoke/{fn}", json=None).json()
    assert "403" in seen["output"], seen
    assert "/import" not in allowed.paths


def test_a_connection_ends_with_its_call(api):
    """A tunnel the code leaves open is closed by the gateway once the call is over."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    fn = deploy(api, [f"127.0.0.1:{port}"])
    box: list[dict] = []
    caller = threading.Thread(target=lambda: box.append(
        api.post(f"/invoke/{fn}", json={"tunnel": port, "keep": True}).json()))
    caller.start()
    listener.settimeout(10)
    conn, _ = listener.accept()
    conn.settimeout(10)
    request = conn.recv(4096)
    assert request.startswith(b"GET /tunnel"), request
    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    caller.join(30)
    assert box[0]["output"] == {"status": 204}, box
    started = time.monotonic()
    assert conn.recv(4096) == b""  # the gateway ended it once the call was over
    assert time.monotonic() - started < 5
    conn.close()
    listener.close()


def test_too_many_connections_at_once_are_refused(api, sites):
    """A call holds at most 16 connections open at once."""
    allowed, _ = sites
    fn = deploy(api, [f"127.0.0.1:{allowed.port}"])
    answer = api.post(f"/invoke/{fn}", json={"hold": allowed.port, "count": 20}).json()
    assert answer["output"] == ["HTTP/1.1 200 Connection established"] * 16 + [
        "HTTP/1.1 403 Forbidden"] * 4, answer
    egress = answer["metrics"]["egress"]
    assert egress["allowed"] == 16 and egress["refused"] == 4, egress
    assert all("holds 16 connections open already" in m for m in refusals(answer)), answer["logs"]


def test_a_call_moving_more_than_the_cap_is_cut_off(api, sites):
    """The call's connections together move at most TIERGATE_EGRESS_MAX_MB; then every one ends,
    later ones are refused, it is logged once, and the next call starts afresh."""
    allowed, _ = sites
    many = ('def handler(event, context):\n'
            '    return [fetch(url) for url in event["urls"]]\n')
    fn = deploy(api, [f"127.0.0.1:{allowed.port}"], code=FETCH + many)
    urls = [allowed.url("/big"), allowed.url("/after")]
    answer = api.post(f"/invoke/{fn}", json={"urls": urls}).json()
    assert "output" in answer, answer
    big, after = answer["output"]
    assert "error" in big and "status" not in big, big
    assert after["error"] == "HTTP 403" and "TIERGATE_EGRESS_MAX_MB" in after["body"], after
    egress = answer["metrics"]["egress"]
    assert CAP_MB << 20 < egress["bytes_received"] < (CAP_MB << 20) + (256 << 10), egress
    assert egress["allowed"] == 1 and egress["refused"] == 1, egress
    cut = [m for m in refusals(answer) if m.startswith("egress cut:")]
    assert cut == [f"egress cut: the call moved more than {CAP_MB} MiB (TIERGATE_EGRESS_MAX_MB)"]
    again = api.post(f"/invoke/{fn}", json={"urls": [allowed.url("/small")]}).json()
    assert again["output"] == [{"status": 200, "body": "hello from /small"}], again


def test_a_call_that_times_out_still_counts_its_connections(api, sites):
    allowed, _ = sites
    fn = deploy(api, [f"127.0.0.1:{allowed.port}"], limits={"timeout_ms": 1500})
    body = {"hold": allowed.port, "count": 2, "then_sleep": 30}
    problem = assert_problem(api.post(f"/invoke/{fn}", json=body), 504, "timeout")
    execution = api.get(f"/executions/{problem['execution_id']}").json()
    assert execution["status"] == "timeout"
    assert execution["metrics"]["egress"]["allowed"] == 2, execution["metrics"]


@pytest.mark.parametrize(("entry", "field"), [
    ("nohostport", "network.allow[1]"),
    ("host:0", "network.allow[1]"),
    ("host:70000", "network.allow[1]"),
    ("a b:80", "network.allow[1]"),
    ("*.:80", "network.allow[1]"),
    (443, "network.allow[1]"),
])
def test_an_invalid_entry_is_refused_naming_it(api, entry, field):
    fn = unique("bad-egress")
    body = {"id": fn, "runtime": "python", "code": FETCH,
            "network": {"allow": ["ok.example:443", entry]}}
    problem = assert_problem(api.post("/deploy", json=body), 400, "invalid_manifest")
    assert problem["field"] == field and field in problem["detail"], problem
    assert api.get(f"/functions/{fn}").status_code == 404  # nothing changed


def test_other_network_problems_are_refused(api, fetcher):
    versions = api.get(f"/functions/{fetcher}/versions").json()
    cases = [
        ({"allow": [f"h{n}.example:443" for n in range(33)]}, "network.allow"),
        ({"allow": "api.example:443"}, "network.allow"),
        ({"allow": [], "deny": []}, "network.deny"),
        (["api.example:443"], "network"),
    ]
    for network, field in cases:
        body = {"id": fetcher, "runtime": "python", "code": FETCH, "network": network}
        problem = assert_problem(api.post("/deploy", json=body), 400, "invalid_manifest")
        assert problem["field"] == field, problem
    wasm = {"id": unique("wasm-net"), "runtime": "wasm", "code": "(module)",
            "network": {"allow": ["api.example:443"]}}
    problem = assert_problem(api.post("/deploy", json=wasm), 400, "invalid_manifest")
    assert problem["field"] == "network" and "wasm" in problem["detail"]
    assert api.get(f"/functions/{fetcher}/versions").json() == versions  # nothing changed


def test_the_manifest_schema_documents_network(api, sites, fetcher):
    shown = api.get(f"/functions/{fetcher}").json()
    assert shown["network"] == {"allow": [f"127.0.0.1:{sites[0].port}"]}
    manifest = api.get("/openapi.json").json()["components"]["schemas"]["Manifest"]
    network = manifest["properties"]["network"]
    assert network["properties"]["allow"]["maxItems"] == 32
    execution = api.get("/openapi.json").json()["components"]["schemas"]["Execution"]
    assert "egress" in execution["properties"]["metrics"]["properties"]


def test_private_addresses_are_closed_unless_the_operator_allows_them(tmp_path_factory, sites):
    allowed, _ = sites
    server = TiergateServer(tmp_path_factory.mktemp("egress-closed")).start()
    try:
        with server.client() as api:
            fn = deploy(api, [f"127.0.0.1:{allowed.port}", f"localhost:{allowed.port}"])
            for host in ("127.0.0.1", "localhost"):
                url = f"http://{host}:{allowed.port}/closed"
                answer = api.post(f"/invoke/{fn}", json={"url": url}).json()
                assert answer["output"]["error"] == "HTTP 403", answer
                assert "is not a public address" in answer["output"]["body"]
                assert answer["metrics"]["egress"]["refused"] == 1
                assert "is not a public address" in refusals(answer)[0]
            assert "/closed" not in allowed.paths
        assert "TIERGATE_EGRESS_ALLOW_PRIVATE" not in server.log()
    finally:
        server.stop()


def test_the_operator_is_warned_when_private_addresses_are_open(gate):
    log = gate.log_path.read_text()
    assert "WARNING tiergate.sandbox: TIERGATE_EGRESS_ALLOW_PRIVATE=true" in log
    assert "Traceback" not in log  # ended connections, refusals, failures: none is an error


def test_unsandboxed_network_is_not_enforced_and_says_so(tmp_path_factory, sites):
    server = TiergateServer(tmp_path_factory.mktemp("egress-none"), {"TIERGATE_SANDBOX": "none"})
    server.start()
    try:
        with server.client() as api:
            fn = deploy(api, ["api.example:443"])
            eventually(lambda: f"function {fn} has network.allow" in server.log())
            assert "the list is not enforced" in server.log()
    finally:
        server.stop()


def test_wildcards_and_names_that_resolve_to_a_closed_address(monkeypatch, tmp_path, sites):
    """In-process, with a scripted name service and a policy under which 127.0.0.1 plays a
    public address and 127.0.0.2 a private one: a wildcard takes one label or more but not its
    suffix, and a name with any closed address is refused whole (its open one is not tried)."""
    from plugins.sandbox import proxy as egress_proxy
    from plugins.sandbox.egress import AllowList, EgressLedger

    monkeypatch.setattr(egress_proxy, "allowed", lambda address: str(address) == "127.0.0.1")
    allowed_site, _ = sites
    port = allowed_site.port
    names = {
        "a.internal.example": ["127.0.0.1"],
        "a.b.internal.example": ["127.0.0.1"],
        "internal.example": ["127.0.0.1"],
        "mixed.internal.example": ["127.0.0.1", "127.0.0.2"],
        "private.internal.example": ["127.0.0.2"],
    }

    async def resolve(host, _port):
        return [ipaddress.ip_address(a) for a in names[host]]

    async def ask(path, host):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(f"GET http://{host}:{port}/w HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
        return answer.split(b"\r\n", 1)[0].decode()

    async def scenario():
        allow = AllowList.parse([f"*.internal.example:{port}"])
        proxy = egress_proxy.EgressProxy(tmp_path / "e.sock", allow, resolve=resolve)
        ledger = EgressLedger()
        proxy.calls = lambda: ledger
        await proxy.start()
        try:
            return {host: await ask(proxy.path, host) for host in names}, ledger
        finally:
            ledger.close()
            proxy.close()

    answers, ledger = run(scenario())
    assert answers == {
        "a.internal.example": "HTTP/1.0 200 OK",
        "a.b.internal.example": "HTTP/1.0 200 OK",
        "internal.example": "HTTP/1.1 403 Forbidden",
        "mixed.internal.example": "HTTP/1.1 403 Forbidden",
        "private.internal.example": "HTTP/1.1 403 Forbidden",
    }, answers
    assert (ledger.allowed, ledger.refused) == (2, 3)
    assert [e[2] for e in ledger.entries] == [
        f"egress refused: internal.example:{port} (not in network.allow)",
        f"egress refused: mixed.internal.example:{port} (127.0.0.2 is not a public address: "
        "loopback, private, link-local and metadata addresses are closed)",
        f"egress refused: private.internal.example:{port} (127.0.0.2 is not a public address: "
        "loopback, private, link-local and metadata addresses are closed)",
    ]
