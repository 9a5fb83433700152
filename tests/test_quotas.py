"""Per-tenant quotas over HTTP, each set low on a real server: functions per tenant, deploys in
progress, ceilings on what a manifest asks for (refused at deploy, cut down for versions stored
before), and worker processes per tenant across its functions' pools."""

from __future__ import annotations

import concurrent.futures
import os
import time

import httpx
import pytest
from conftest import assert_problem, deploy_wat, eventually, example, metric, unique

WORKER = (
    "import os, time\n"
    "WORKER = os.urandom(8).hex()\n"
    "def handler(event, context):\n"
    "    if event.get('exit'):\n"
    "        os._exit(3)\n"
    "    time.sleep(event.get('seconds', 0))\n"
    "    return {'worker': WORKER, 'pad': event.get('pad', '')}\n"
)
WAT = example("echo.wat")
SLOW_IMPORT = "import time\ntime.sleep(3)\n\ndef handler(event, context):\n    return event\n"


def tenant_client(server, admin, tenant):
    key = admin.post("/admin/keys", json={"tenant": tenant, "roles": ["deploy", "invoke"]})
    assert key.status_code == 201, key.text
    return server.client(key.json()["key"])


def deploy_py(api, fn=None, code=WORKER, **manifest):
    fn = fn or unique("q")
    r = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code, **manifest})
    assert r.status_code == 201, r.text
    return fn


def workers_seen(api, fn, calls, seconds=0.5):
    """The distinct workers that answered ``calls`` calls made at once."""
    with concurrent.futures.ThreadPoolExecutor(calls) as threads:
        answers = list(
            threads.map(
                lambda _: api.post(f"/invoke/{fn}", json={"seconds": seconds}), range(calls)
            )
        )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return {a.json()["output"]["worker"] for a in answers}


def worker_of(api, fn, query=""):
    answer = api.post(f"/invoke/{fn}{query}", json={})
    assert answer.status_code == 200, answer.text
    return answer.json()["output"]["worker"]


def tenant_workers(admin, tenant):
    return metric(admin.get("/metrics").text, "tiergate_tenant_workers", tenant=tenant)


def processes(server, module: bytes) -> int:
    """Processes of a python module the gateway runs now (children: bubblewrap, or python)."""
    count = 0
    for task in os.listdir(f"/proc/{server.process.pid}/task"):
        with open(f"/proc/{server.process.pid}/task/{task}/children") as f:
            for pid in f.read().split():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        count += module in cmdline.read()
                except FileNotFoundError:
                    continue
    return count


def test_functions_per_tenant(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_FUNCTIONS_PER_TENANT": "2"})
    with (
        server.client() as admin,
        tenant_client(server, admin, "small") as api,
        tenant_client(server, admin, "other") as other,
    ):
        deploy_wat(api, "one")
        deploy_wat(api, "two")
        # Refused before compiling: this code would not compile.
        refused = api.post("/deploy", json={"id": "three", "runtime": "wasm", "code": "x"})
        problem = assert_problem(refused, 403, "quota_exceeded")
        assert problem["limit"] == 2 and "TIERGATE_MAX_FUNCTIONS_PER_TENANT" in problem["detail"]
        deploy_wat(api, "one")  # a redeploy always works
        assert sorted(f["id"] for f in api.get("/functions").json()["functions"]) == ["one", "two"]
        deploy_wat(other, "three")  # another tenant counts its own
        assert api.delete("/functions/two").status_code == 204
        deploy_wat(api, "three")


def test_deploys_in_progress_per_tenant(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT": "1"})
    with (
        server.client() as admin,
        tenant_client(server, admin, "busy") as api,
        tenant_client(server, admin, "calm") as other,
        concurrent.futures.ThreadPoolExecutor(1) as threads,
    ):
        body = {"id": "slow-import", "runtime": "python", "code": SLOW_IMPORT}
        slow = threads.submit(api.post, "/deploy", json=body)  # its check imports for 3 s
        eventually(lambda: processes(server, b"plugins.python.check"))
        answer = api.post("/deploy", json={"id": "quick", "runtime": "wasm", "code": WAT})
        problem = assert_problem(answer, 429, "too_many_deploys")
        assert problem["limit"] == 1 and answer.headers["Retry-After"] == "1"
        deploy_wat(other, "quick")  # other tenants deploy meanwhile
        assert not slow.done()
        assert slow.result().status_code == 201
        deploy_wat(api, "quick")


def test_a_deploy_whose_client_went_away_keeps_its_place_until_it_ends(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT": "1"})
    body = {"id": "abandoned", "runtime": "python", "code": SLOW_IMPORT}
    with server.client() as api:
        with (
            httpx.Client(base_url=server.url, headers=api.headers, timeout=0.5) as impatient,
            pytest.raises(httpx.TimeoutException),
        ):
            impatient.post("/deploy", json=body)
        # Nothing says when the gateway noticed the client leave; its check runs 2.5 s more.
        time.sleep(1)
        quick = {"id": "quick", "runtime": "wasm", "code": WAT}
        assert_problem(api.post("/deploy", json=quick), 429, "too_many_deploys")
        eventually(lambda: api.get("/functions/abandoned").status_code == 200)  # it ended well
        assert api.post("/deploy", json=quick).status_code == 201


LOW_CEILINGS = {
    "TIERGATE_MAX_MEMORY_MB": "256",
    "TIERGATE_MAX_TIMEOUT_MS": "5000",
    "TIERGATE_MAX_OUTPUT_KB": "4",
    "TIERGATE_MAX_WORKERS_PER_FUNCTION": "1",
}
WORKERS_SETTING = "TIERGATE_MAX_WORKERS_PER_FUNCTION"


@pytest.fixture(scope="module")
def low(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(tmp_path_factory.mktemp("ceilings"), LOW_CEILINGS).start()
    with server.client() as api:
        yield api
    server.stop()


@pytest.mark.parametrize(
    ("asked", "field", "ceiling", "setting"),
    [
        ({"limits": {"memory_mb": 257}}, "limits.memory_mb", 256, "TIERGATE_MAX_MEMORY_MB"),
        (
            {"limits": {"memory_mb": 256, "tmp_mb": 129}},
            "limits.tmp_mb",
            128,
            "TIERGATE_MAX_MEMORY_MB / 2",
        ),
        ({"limits": {"timeout_ms": 5001}}, "limits.timeout_ms", 5000, "TIERGATE_MAX_TIMEOUT_MS"),
        (
            {"cascade": {"tier_timeouts_ms": {"code": 60_000}}},
            "cascade.tier_timeouts_ms.code",
            5000,
            "TIERGATE_MAX_TIMEOUT_MS",
        ),
        ({"limits": {"max_output_kb": 5}}, "limits.max_output_kb", 4, "TIERGATE_MAX_OUTPUT_KB"),
        ({"pool": {"kind": "static", "size": 2}}, "pool.size", 1, WORKERS_SETTING),
        ({"pool": {"kind": "adaptive", "min_size": 2}}, "pool.min_size", 1, WORKERS_SETTING),
        ({"pool": {"max_size": 256}}, "pool.max_size", 1, WORKERS_SETTING),
    ],
)
def test_a_manifest_above_a_ceiling_is_refused(low, asked, field, ceiling, setting):
    body = {"id": unique("big"), "runtime": "python", "code": example("py-echo.py"), **asked}
    problem = assert_problem(low.post("/deploy", json=body), 400, "invalid_manifest")
    assert (problem["field"], problem["ceiling"], problem["setting"]) == (field, ceiling, setting)
    assert field in problem["detail"] and setting in problem["detail"]


def test_a_manifest_at_every_ceiling_deploys_and_defaults_are_cut_down(low):
    deploy_py(
        low,
        limits={"memory_mb": 256, "tmp_mb": 128, "timeout_ms": 5000, "max_output_kb": 4},
        cascade={"tier_timeouts_ms": {"code": 5000}},
        pool={"kind": "adaptive", "min_size": 1, "max_size": 1},
    )
    echo = unique("echo")
    deploy_wat(low, echo)  # no limits.max_output_kb: its default (6144) is cut down to 4
    problem = assert_problem(low.post(f"/invoke/{echo}", json="x" * 5000), 500, "cascade_exhausted")
    assert problem["attempts"][0]["code"] == "output_too_large"
    fn = deploy_py(low)  # the python runtime's default pool.max_size (the cores) is cut down to 1
    assert len(workers_seen(low, fn, 4)) == 1
    too_long = low.post(f"/invoke/{echo}?timeout_ms=5001", json=1)
    assert "TIERGATE_MAX_TIMEOUT_MS" in assert_problem(too_long, 400, "invalid_request")["detail"]


def test_versions_stored_above_lowered_ceilings_still_load_cut_down(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_MEMORY_MB": "4096"})
    with server.client() as api:
        fn = deploy_py(
            api,
            limits={"memory_mb": 2048, "tmp_mb": 600, "max_output_kb": 64},
            pool={"kind": "lazy", "max_size": 4},
        )
        assert len(workers_seen(api, fn, 4)) > 1
        assert api.post(f"/invoke/{fn}", json={"pad": "x" * 5000}).status_code == 200
    server.stop()
    lowered = {
        "TIERGATE_MAX_MEMORY_MB": "256",  # and so limits.tmp_mb at most 128
        "TIERGATE_MAX_WORKERS_PER_FUNCTION": "1",
        "TIERGATE_MAX_OUTPUT_KB": "4",
    }
    with tiergate_factory(lowered, data_dir=server.data_dir).client() as api:
        assert len(workers_seen(api, fn, 4)) == 1
        big = api.post(f"/invoke/{fn}", json={"pad": "x" * 5000})
        assert assert_problem(big, 500, "cascade_exhausted")["attempts"][0]["code"] == (
            "output_too_large"
        )


def test_workers_per_tenant_across_its_functions(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_WORKERS_PER_TENANT": "2"})
    with (
        server.client() as admin,
        tenant_client(server, admin, "capped") as api,
        tenant_client(server, admin, "neighbour") as other,
        concurrent.futures.ThreadPoolExecutor(3) as threads,
    ):
        a, b, c = (deploy_py(api, pool={"kind": "lazy", "max_size": 2}) for _ in range(3))
        theirs = deploy_py(other)
        busy = [threads.submit(api.post, f"/invoke/{a}", json={"seconds": 3}) for _ in range(2)]
        eventually(lambda: tenant_workers(admin, "capped") == 2)
        # Both workers are busy: a call of another function waits for one until its deadline.
        waited = assert_problem(api.post(f"/invoke/{b}?timeout_ms=1000", json={}), 504, "timeout")
        assert waited["attempts"][0]["error"] == "waited for a free worker until its deadline"
        assert processes(server, b"plugins.python.worker") == 2
        assert worker_of(other, theirs)  # another tenant is not held up
        # This call waits until one of a's calls ends; that worker then makes way for b's.
        waiting = threads.submit(worker_of, api, b, "?timeout_ms=6000")
        assert all(f.result().status_code == 200 for f in busy)
        first_b = waiting.result()
        first_c = worker_of(api, c)  # stops a's idle worker
        assert worker_of(api, b) == first_b  # b's worker is now more recently used than c's
        worker_of(api, a)  # a needs one again: c's, the least recently used, is stopped
        assert worker_of(api, b) == first_b
        assert worker_of(api, c) != first_c
        assert tenant_workers(admin, "capped") == 2


def test_worker_places_come_back_however_workers_end(tiergate_factory):
    server = tiergate_factory({"TIERGATE_MAX_WORKERS_PER_TENANT": "1"})
    quick = "?timeout_ms=3000"  # a place that never came back would end these calls in 504
    with server.client() as admin, tenant_client(server, admin, "single") as api:
        a = deploy_py(api, pool={"kind": "lazy", "idle_timeout_s": 1})
        b = deploy_py(api)
        assert worker_of(api, a, quick)
        crashed = api.post(f"/invoke/{a}{quick}", json={"exit": True})
        assert (
            "exit status 3"
            in assert_problem(crashed, 500, "cascade_exhausted")["attempts"][0]["error"]
        )
        assert worker_of(api, b, quick)
        killed = api.post(f"/invoke/{a}?timeout_ms=2500", json={"seconds": 10})  # takes b's place
        error = assert_problem(killed, 504, "timeout")["attempts"][0]["error"]
        assert error == "did not finish in time; its worker was stopped"
        assert worker_of(api, b, quick)
        assert api.delete(f"/functions/{b}").status_code == 204  # unloaded with its worker
        assert worker_of(api, a, quick)
        eventually(lambda: tenant_workers(admin, "single") is None)  # a's idle worker was reaped
        assert worker_of(api, deploy_py(api), quick)
