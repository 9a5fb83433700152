"""``tiergate serve --workers N`` on embedded storage: N processes on one port, sharing state
through the stores (SQLite in WAL mode) and the event log, supervised by the parent."""

from __future__ import annotations

import os
import signal

import httpx
from conftest import assert_problem, eventually, example, metric, unique


def children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(p) for p in f.read().split())
    return found


def gateway_workers(pid: int) -> set[int]:
    """The parent's children that run the gateway (not the resource tracker of multiprocessing)."""
    result = set()
    for child in children(pid):
        with open(f"/proc/{child}/cmdline", "rb") as f:
            if b"spawn_main" in f.read():
                result.add(child)
    return result


def serving(server) -> set[int]:
    """The worker pids, once the parent has said that all of them serve."""
    eventually(lambda: "2 workers)" in server.log(), timeout=30)
    return gateway_workers(server.process.pid)


def fresh(server, method: str, path: str, **kwargs):
    """One request on a new connection, so the kernel may hand it to any worker."""
    with server.client() as client:
        return client.request(method, path, **kwargs)


def test_workers_share_deploys_and_executions(tiergate_factory):
    server = tiergate_factory(args=("--workers", "2"))
    assert len(serving(server)) == 2
    fn = unique("workers")
    body = {"id": fn, "runtime": "wasm", "code": example("hello.wat")}
    assert fresh(server, "POST", "/deploy", json=body).status_code == 201
    for _ in range(12):  # warms the cache of both workers
        assert fresh(server, "POST", f"/invoke/{fn}", json={"v": 2}).json()["version"] == 1

    body["code"] = example("echo.wat")
    assert fresh(server, "POST", "/deploy", json=body).status_code == 201
    eventually(
        lambda: all(
            fresh(server, "POST", f"/invoke/{fn}", json={"v": 2}).json()["output"] == {"v": 2}
            for _ in range(12)
        ),
        timeout=3.0,
    )
    started = [
        fresh(server, "POST", f"/invoke/{fn}", json={"n": n}, headers={"Prefer": "respond-async"})
        for n in range(6)
    ]
    for n, r in enumerate(started):
        assert r.status_code == 202, r.text
        record = eventually(
            lambda r=r: (x := fresh(server, "GET", r.headers["Location"]).json())["status"]
            == "completed" and x
        )
        assert record["output"] == {"n": n}


def test_a_worker_that_dies_is_replaced(tiergate_factory):
    server = tiergate_factory(args=("--workers", "2"))
    before = serving(server)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    for _ in range(10):  # the other worker keeps answering meanwhile
        assert fresh(server, "GET", "/healthz").status_code == 200
    after = eventually(
        lambda: (pids := gateway_workers(server.process.pid)) and len(pids) == 2 and pids,
        timeout=20,
    )
    assert victim not in after
    eventually(lambda: fresh(server, "GET", "/readyz").status_code == 200)
    assert server.stop() == 0
    for pid in after:
        assert not os.path.exists(f"/proc/{pid}"), "a worker outlived the parent"


def test_workers_need_a_fixed_port(tmp_path):
    import subprocess

    from plugins.testing import _tiergate

    done = subprocess.run(
        [_tiergate(), "serve", "--port", "0", "--workers", "2", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "--workers needs a fixed --port" in done.stderr and "Traceback" not in done.stderr
    bad = subprocess.run([_tiergate(), "serve", "--workers", "0"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "--workers" in bad.stderr


def test_bad_requests_get_problems_from_any_worker(tiergate_factory):
    server = tiergate_factory(args=("--workers", "2"))
    for _ in range(6):
        assert_problem(fresh(server, "POST", "/invoke/absent-fn"), 404, "function_not_found")
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_taken_port_is_one_clear_line(tmp_path):
    import socket
    import subprocess

    from plugins.testing import _tiergate

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for extra in ((), ("--workers", "2")):
            done = subprocess.run(
                [_tiergate(), "serve", "--port", port, "--data-dir", str(tmp_path), *extra],
                capture_output=True, text=True, timeout=120,
            )
            assert done.returncode == 1, done.stderr
            assert "Traceback" not in done.stderr
            assert "address already in use" in done.stderr
            assert done.stderr.splitlines()[-1].startswith("error: ")
            assert "serving on" not in done.stdout


def test_metrics_of_every_worker_answer_whichever_takes_the_scrape(tiergate_factory):
    server = tiergate_factory(args=("--workers", "2"))
    serving(server)
    fn = unique("counted")
    body = {"id": fn, "runtime": "wasm", "code": example("echo.wat")}
    assert fresh(server, "POST", "/deploy", json=body).status_code == 201
    for n in range(20):
        assert fresh(server, "POST", f"/invoke/{fn}", json=n).status_code == 200

    def counts() -> dict[str, float]:
        text = fresh(server, "GET", "/metrics").text
        found = {}
        for worker in ("0", "1"):
            value = metric(text, "tiergate_invocations_total", function=fn, worker=worker,
                           status="completed")
            if value is not None:
                found[worker] = value
        return found

    # Both workers served some calls (the kernel spreads new connections). Within a second
    # (each worker writes its file every second) any scrape, whichever worker answers it,
    # reports both, adding up to every call.
    scrapes = eventually(
        lambda: (seen := [counts() for _ in range(6)])
        and all(sum(c.values()) == 20 for c in seen)
        and seen,
        timeout=10,
    )
    assert all(set(c) == {"0", "1"} for c in scrapes), scrapes


def test_a_rate_limit_holds_across_workers(tiergate_factory):
    server = tiergate_factory(args=("--workers", "2"))
    serving(server)
    assert fresh(server, "PUT", "/admin/tenants/rl/rate-limit",
                 json={"rate": 0.2, "burst": 4}).status_code == 200
    key = fresh(server, "POST", "/admin/keys",
                json={"tenant": "rl", "roles": ["invoke"]}).json()["key"]
    codes = []
    for _ in range(10):  # new connections: both workers take some
        with httpx.Client(base_url=server.url,
                          headers={"Authorization": f"Bearer {key}"}) as client:
            codes.append(client.post("/invoke/none").status_code)
    assert codes.count(404) == 4 and codes.count(429) == 6, codes


def test_serve_uses_every_core_by_default(tmp_path):
    """No --workers: one process per core (``auto``); the banner counts them once all serve."""
    from gateway.settings import cores as settings_cores
    from plugins.testing import TiergateServer

    cores = settings_cores()
    server = TiergateServer(tmp_path / "data")
    del server.env["TIERGATE_WORKERS"]
    server.start()
    try:
        if cores > 1:
            eventually(lambda: f"{cores} workers)" in server.log(), timeout=30)
            assert len(gateway_workers(server.process.pid)) == cores
        else:
            assert "workers)" not in server.log()
        assert fresh(server, "GET", "/healthz").status_code == 200
    finally:
        assert server.stop() == 0


def test_auto_on_port_zero_is_one_process(tmp_path):
    """Port 0 picks a port per process, so auto means one there, and saying auto is allowed."""
    import subprocess

    from plugins.testing import _tiergate

    process = subprocess.Popen(
        [_tiergate(), "serve", "--port", "0", "--workers", "auto", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        while line and "serving on" not in line:
            line = process.stdout.readline()
        assert "serving on http://" in line and "workers)" not in line
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
