"""Two ``tiergate serve`` instances sharing one S3-compatible bucket (moto, over HTTP) and one
``redis-server``: whatever one instance is told, the other answers for."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from conftest import (
    assert_problem,
    eventually,
    example,
    fixture,
    s3_client,
    shared_env,
    start_slow_execution,
    unique,
)


@pytest.fixture(scope="module")
def stores(redis_server, s3_server):
    return shared_env(redis_server, s3_server)


@pytest.fixture(scope="module")
def pair(stores, tmp_path_factory):
    from plugins.testing import TiergateServer

    # The deploy race below runs four deploys of one tenant at once on each instance.
    env = {**stores, "TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT": "4"}
    servers = [TiergateServer(tmp_path_factory.mktemp(name), env).start() for name in "ab"]
    clients = [server.client() for server in servers]
    yield clients
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def deploy(client, fn, code="echo.wat", runtime="wasm", **manifest):
    r = client.post("/deploy", json={"id": fn, "runtime": runtime, "code": code, **manifest})
    assert r.status_code == 201, r.text
    return r.json()


def test_deploy_on_one_invoke_on_the_other(pair):
    a, b = pair
    fn = unique("shared")
    deploy(a, fn, example("echo.wat"))
    r = b.post(f"/invoke/{fn}", json={"from": "b"})
    assert r.status_code == 200, r.text
    assert r.json()["output"] == {"from": "b"}
    assert r.json()["metrics"]["cold_start"] is True
    assert b.get(f"/functions/{fn}").json()["latest_version"] == 1


def test_redeploy_rollback_and_delete_reach_the_other_within_a_second(pair):
    a, b = pair
    fn = unique("switch")
    deploy(a, fn, example("hello.wat"))
    assert b.post(f"/invoke/{fn}", json={"v": 2}).json()["output"] == {"message": "hello from wasm"}
    assert b.post(f"/invoke/{fn}", json={"v": 2}).json()["metrics"]["cache_hit"] is True

    deploy(a, fn, example("echo.wat"))
    switched = eventually(lambda: b.post(f"/invoke/{fn}", json={"v": 2}).json()["version"] == 2,
                          timeout=1.0, interval=0.02)
    assert switched
    assert b.post(f"/invoke/{fn}", json={"v": 2}).json()["output"] == {"v": 2}

    assert a.post(f"/functions/{fn}/rollback", json={"version": 1}).status_code == 200
    eventually(lambda: b.post(f"/invoke/{fn}", json={}).json()["version"] == 1,
               timeout=1.0, interval=0.02)

    assert a.delete(f"/functions/{fn}").status_code == 204
    eventually(lambda: b.post(f"/invoke/{fn}", json={}).status_code == 404,
               timeout=1.0, interval=0.02)
    assert_problem(b.post(f"/invoke/{fn}", json={}), 404, "function_not_found")
    assert_problem(b.post(f"/invoke/{fn}@1", json={}), 404, "function_not_found")


def test_an_alias_moved_on_one_is_followed_by_the_other_within_a_second(pair):
    a, b = pair
    fn = unique("aliased")
    deploy(a, fn, example("echo.wat"))
    deploy(a, fn, example("hello.wat"))
    created = a.put(f"/functions/{fn}/aliases/prod", json={"version": 1})
    assert created.status_code == 201, created.text
    # b never heard of the alias: it looks again rather than refusing a call it cannot place.
    first = b.post(f"/invoke/{fn}:prod", json={"x": 1})
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["output"]) == (1, {"x": 1})
    warm = b.post(f"/invoke/{fn}:prod", json={"x": 1}).json()
    assert warm["version"] == 1 and warm["metrics"]["cache_hit"] is True

    assert a.put(f"/functions/{fn}/aliases/prod", json={"version": 2}).status_code == 200
    eventually(lambda: b.post(f"/invoke/{fn}:prod", json={}).json()["version"] == 2,
               timeout=1.0, interval=0.02)
    assert b.get(f"/functions/{fn}/aliases/prod").json()["version"] == 2
    # Moving an alias keeps b's loaded versions warm.
    assert b.post(f"/invoke/{fn}@1", json={}).json()["metrics"]["cache_hit"] is True

    assert a.put(f"/functions/{fn}/aliases/prod", json={"version": 1}).status_code == 200
    eventually(lambda: b.post(f"/invoke/{fn}:prod", json={}).json()["version"] == 1,
               timeout=1.0, interval=0.02)
    assert a.delete(f"/functions/{fn}/aliases/prod").status_code == 204
    eventually(lambda: b.post(f"/invoke/{fn}:prod", json={}).status_code == 404,
               timeout=1.0, interval=0.02)
    assert_problem(b.post(f"/invoke/{fn}:prod", json={}), 404, "alias_not_found")


def test_a_function_deleted_and_created_again_is_not_served_from_the_old_cache(pair):
    a, b = pair
    fn = unique("again")
    deploy(a, fn, example("hello.wat"))
    assert b.post(f"/invoke/{fn}@1", json={"x": 1}).json()["output"] == {
        "message": "hello from wasm"
    }
    assert a.delete(f"/functions/{fn}").status_code == 204
    deploy(a, fn, example("echo.wat"))  # version 1 again, different code
    eventually(lambda: b.post(f"/invoke/{fn}@1", json={"x": 1}).json().get("output") == {"x": 1},
               timeout=1.0, interval=0.02)


def test_an_execution_started_on_one_is_read_and_cancelled_on_the_other(pair):
    a, b = pair
    fn = unique("exec")
    deploy(a, fn, example("echo.wat"))
    r = a.post(f"/invoke/{fn}", json={"n": 1}, headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    done = eventually(
        lambda: (x := b.get(f"/executions/{r.json()['execution_id']}").json())["status"]
        == "completed" and x
    )
    assert done["output"] == {"n": 1}
    logs = b.get(f"/functions/{fn}/logs").json()["executions"]
    assert [e["execution_id"] for e in logs] == [r.json()["execution_id"]]

    execution = start_slow_execution(a, watcher=b, seconds=20)
    cancelled = b.delete(f"/executions/{execution}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert a.get(f"/executions/{execution}").json()["status"] == "cancelled"


def test_a_human_task_created_on_one_is_completed_on_the_other(pair):
    a, b = pair
    fn = unique("review")
    schema = {"type": "object", "properties": {"approved": {"type": "boolean"}},
              "required": ["approved"]}
    deploy(a, fn, example("trap.wat"), output_schema=schema, tiers={"human": {}})
    accepted = a.post(f"/invoke/{fn}", json={"amount": 3})
    assert accepted.status_code == 202, accepted.text
    execution = accepted.json()["execution_id"]
    task = next(t for t in b.get("/tasks").json()["tasks"] if t["execution_id"] == execution)
    assert b.post(f"/tasks/{task['id']}/claim").status_code == 200
    done = b.post(f"/tasks/{task['id']}/complete", json={"output": {"approved": True}})
    assert done.status_code == 200, done.text
    final = eventually(
        lambda: (x := a.get(f"/executions/{execution}").json())["status"] == "completed" and x
    )
    assert final["tier"] == "human" and final["output"] == {"approved": True}
    assert a.get(f"/tasks/{task['id']}").json()["status"] == "completed"


def test_a_key_revoked_on_one_is_refused_by_the_other(pair):
    a, b = pair
    created = a.post("/admin/keys", json={"tenant": "default", "roles": ["invoke"]}).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert b.get("/functions", headers=headers).status_code in (200, 403)
    assert b.post("/invoke/nothing-here", headers=headers).status_code == 404  # key cached on b
    assert a.delete(f"/admin/keys/{created['id']}").status_code == 204
    eventually(lambda: b.post("/invoke/nothing-here", headers=headers).status_code == 401,
               timeout=1.0, interval=0.02)


def test_rate_limits_are_shared_between_instances(pair):
    a, b = pair
    tenant = unique("rl").replace("-", "")
    assert a.put(f"/admin/tenants/{tenant}/rate-limit",
                 json={"rate": 0.5, "burst": 3}).status_code == 200
    key = a.post("/admin/keys", json={"tenant": tenant, "roles": ["invoke"]}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    codes = [c.post("/invoke/none", headers=headers).status_code for c in (a, b, a, b)]
    assert codes[:3] == [404, 404, 404]
    assert codes[3] == 429

    assert b.delete(f"/admin/tenants/{tenant}/rate-limit").status_code == 204  # now unlimited
    eventually(
        lambda: all(a.post("/invoke/none", headers=headers).status_code == 404 for _ in range(6)),
        timeout=1.0,
        interval=0.02,
    )


def test_a_secret_set_on_one_is_readable_on_the_other(pair):
    a, b = pair
    put = a.put("/admin/secrets/default/API_TOKEN", json={"value": "s3cr3t-v4lue-shared"})
    assert put.status_code in (200, 204), put.text
    fn = unique("secret")
    deploy(a, fn, fixture("python_probe.py"), runtime="python", secrets=["API_TOKEN"])
    r = b.post(f"/invoke/{fn}", json={"action": "secret"})
    assert r.status_code == 200, r.text
    assert r.json()["output"] == {"has_secret": True, "in_env": False}
    assert "s3cr3t-v4lue-shared" not in r.text and "[redacted]" in str(r.json()["logs"])


def test_deploys_from_both_instances_at_once_never_share_a_version(pair):
    import concurrent.futures

    a, b = pair
    fn = unique("race")
    code = example("echo.wat")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: deploy(c, fn, code)["version"], [a, b] * 4))
    assert sorted(results) == list(range(1, 9))
    assert [v["version"] for v in b.get(f"/functions/{fn}/versions").json()["versions"]] == \
        list(range(1, 9))


def test_shared_redis_without_a_shared_secret_key_is_refused(redis_server, s3_server, tmp_path):
    import subprocess

    from plugins.testing import _tiergate

    env = shared_env(redis_server, s3_server)
    del env["TIERGATE_SECRET_KEY"]
    done = subprocess.run([_tiergate(), "serve", "--port", "0", "--data-dir", str(tmp_path)],
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "TIERGATE_SECRET_KEY" in done.stderr and "Traceback" not in done.stderr


def test_large_code_goes_to_s3_in_parts_and_loads_on_the_other(pair, stores, s3_server):
    a, b = pair
    fn = unique("large")
    padding = "#" + "x" * 99 + "\n"
    source = example("py-echo.py") + padding * (9 * 1024 * 1024 // len(padding))  # 9 MiB
    r = a.post(
        "/deploy",
        files={
            "manifest": (None, json.dumps({"id": fn, "runtime": "python"}), "application/json"),
            "code": ("big.py", source.encode(), "text/x-python"),
        },
    )
    assert r.status_code == 201, r.text
    bucket, prefix = stores["TIERGATE_OBJECT_STORE"][5:].split("/", 1)
    head = s3_client(s3_server).head_object(
        Bucket=bucket, Key=f"{prefix}/code/default/{fn}/v1/source"
    )
    assert head["ContentLength"] == len(source.encode())
    assert re.fullmatch(r'"[0-9a-f]+-2"', head["ETag"]), head["ETag"]  # uploaded in two parts
    assert head["Metadata"]["sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert b.post(f"/invoke/{fn}", json={"big": True}).json()["output"] == {"big": True}


def test_a_lost_event_is_caught_by_the_version_check(pair, stores, tiergate_factory):
    import redis

    a, _ = pair
    c = tiergate_factory({**stores, "TIERGATE_VERIFY_S": "0.5"}).client()
    fn = unique("lost")
    deploy(a, fn, example("hello.wat"))
    deploy(a, fn, example("echo.wat"))
    eventually(lambda: c.post(f"/invoke/{fn}", json={"v": 2}).json().get("version") == 2)
    # A rollback that no process was told of: written straight into the shared KV.
    kv = redis.Redis.from_url(stores["TIERGATE_KV"])
    key = f"tiergate:fn/default/{fn}"
    record = json.loads(kv.get(key))
    kv.set(key, json.dumps({**record, "latest_version": 1}))
    back = eventually(lambda: (r := c.post(f"/invoke/{fn}", json={})).json()["version"] == 1 and r,
                      timeout=3)
    assert back.json()["output"] == {"message": "hello from wasm"}
    c.close()


def test_an_alias_moved_without_an_event_is_caught_by_the_version_check(
    pair, stores, tiergate_factory
):
    import redis

    a, _ = pair
    c = tiergate_factory({**stores, "TIERGATE_VERIFY_S": "0.5"}).client()
    fn = unique("lostalias")
    deploy(a, fn, example("hello.wat"))
    deploy(a, fn, example("echo.wat"))
    assert a.put(f"/functions/{fn}/aliases/prod", json={"version": 2}).status_code == 201
    assert c.post(f"/invoke/{fn}:prod", json={"v": 2}).json()["output"] == {"v": 2}
    # The alias moved in the shared KV with no event told of it.
    kv = redis.Redis.from_url(stores["TIERGATE_KV"])
    key = f"tiergate:fn/default/{fn}"
    record = json.loads(kv.get(key))
    record["aliases"]["prod"]["version"] = 1
    kv.set(key, json.dumps(record))
    back = eventually(
        lambda: (r := c.post(f"/invoke/{fn}:prod", json={})).json()["version"] == 1 and r,
        timeout=3,
    )
    assert back.json()["output"] == {"message": "hello from wasm"}
    c.close()


def test_async_work_whose_gateway_is_killed_is_run_by_another(stores, tiergate_factory):
    import signal
    import time

    env = {**stores, "TIERGATE_ORPHAN_AFTER_S": "1.5", "TIERGATE_WORK_LEASE_S": "2"}
    doomed = tiergate_factory(env)
    with doomed.client() as d:
        execution = start_slow_execution(d, seconds=12)  # taken by the only instance there is
    survivor = tiergate_factory(env)
    with doomed.client() as d, survivor.client() as s:
        time.sleep(3)  # twice the orphan threshold: a live owner's execution is left alone
        assert s.get(f"/executions/{execution}").json()["status"] == "running"

        doomed.stop(signal.SIGKILL)
        ended = eventually(
            lambda: (x := s.get(f"/executions/{execution}").json())["status"] == "completed"
            and x,
            timeout=40,
        )
        assert ended["retries"] == 1 and ended["output"] == {"slept": 12.0}
        assert "owner" not in ended


def test_instances_starting_together_on_an_empty_store_create_one_admin_key(
    redis_server, s3_server, tmp_path_factory
):
    import concurrent.futures

    from plugins.testing import TiergateServer

    env = {**shared_env(redis_server, s3_server), "TIERGATE_ADMIN_KEY": ""}
    servers = [TiergateServer(tmp_path_factory.mktemp(f"boot{i}"), env) for i in range(3)]
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(TiergateServer.start, servers))
        creators = [s for s in servers if "Created an admin key" in s.log()]
        assert len(creators) == 1, [s.log() for s in servers]
        key = (creators[0].data_dir / "admin.key").read_text().strip()
        for server in servers:
            with server.client(key) as api:
                assert len(api.get("/admin/keys").json()["keys"]) == 1
    finally:
        for server in servers:
            server.stop()
