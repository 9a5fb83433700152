"""The object store goes away and comes back (a moto S3 server stopped and started again on the
same port, its buckets kept); and code moves from the KV into S3 through the admin endpoints."""

from __future__ import annotations

import pytest
from conftest import (
    RedisProcess,
    assert_problem,
    eventually,
    example,
    metric,
    s3_client,
    shared_env,
    unique,
)

from plugins.testing import free_port


class RestartableS3:
    """moto S3 over HTTP on a fixed port; its data lives in this process, so restarts keep it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def s3():
    store = RestartableS3()
    store.start()
    yield store
    store.stop()


def deploy(client, fn, name="echo.wat"):
    r = client.post("/deploy", json={"id": fn, "runtime": "wasm", "code": example(name)})
    assert r.status_code == 201, r.text


def test_object_store_outage_and_recovery(s3, redis_server, tiergate_factory):
    env = shared_env(redis_server, s3.url, TIERGATE_BREAKER_FAIL_MAX="2",
                     TIERGATE_BREAKER_RESET_S="2")
    server = tiergate_factory(env)
    with server.client() as api:
        warm, cold = unique("warm"), unique("cold")
        deploy(api, warm)
        deploy(api, cold)
        assert api.post(f"/invoke/{warm}", json={"x": 1}).status_code == 200
        assert api.get("/readyz").json()["checks"] == {"object_store": "ok", "kv": "ok"}

        s3.stop()
        for n in range(5):  # loaded functions touch no store
            r = api.post(f"/invoke/{warm}", json={"x": n})
            assert r.status_code == 200 and r.json()["output"] == {"x": n}
        ready = assert_problem(api.get("/readyz"), 503, "storage_unavailable")
        assert ready["checks"]["kv"] == "ok" and ready["checks"]["object_store"] != "ok"

        first = assert_problem(api.post(f"/invoke/{cold}", json={}), 503, "storage_unavailable")
        assert "Traceback" not in first["detail"]
        r = api.post(f"/invoke/{cold}", json={})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        opened = assert_problem(api.post(f"/invoke/{cold}", json={}), 503, "circuit_open")
        assert opened["function_id"] == cold
        assert 1 <= int(api.post(f"/invoke/{cold}", json={}).headers["Retry-After"]) <= 2
        assert api.post(f"/invoke/{warm}", json={}).status_code == 200

        failed_deploy = api.post(
            "/deploy", json={"id": unique("during"), "runtime": "wasm", "code": example("echo.wat")}
        )
        assert failed_deploy.status_code == 503, failed_deploy.text

        s3.start()
        eventually(lambda: api.get("/readyz").status_code == 200, timeout=15)
        recovered = eventually(
            lambda: (r := api.post(f"/invoke/{cold}", json={"back": True})).status_code == 200
            and r,
            timeout=15,
            interval=0.25,
        )
        assert recovered.json()["output"] == {"back": True}
        names = [f["id"] for f in api.get("/functions").json()["functions"]]
        assert warm in names and cold in names  # nothing stored was lost
        deploy(api, unique("after"))


def test_code_moves_from_the_kv_into_s3(s3, redis_server, tiergate_factory):
    env = shared_env(redis_server, s3.url, TIERGATE_WRITE_TO_OBJECT="false")
    bucket = env["TIERGATE_OBJECT_STORE"].split("/")[2]
    objects = s3_client(s3.url)

    def stored(fn: str) -> list[str]:
        listed = objects.list_objects_v2(Bucket=bucket, Prefix=f"code/code/default/{fn}/")
        return [o["Key"] for o in listed.get("Contents", [])]

    server = tiergate_factory(env)
    fn, lazy = unique("move"), unique("lazy")
    with server.client() as api:
        deploy(api, fn)
        deploy(api, lazy)
        assert stored(fn) == [] and stored(lazy) == []
        assert api.post(f"/invoke/{fn}", json={"a": 1}).json()["output"] == {"a": 1}

        kept = api.post("/admin/storage/cleanup-kv", json={"id": fn}).json()
        assert kept["removed"] == [] and len(kept["kept"]) == 2  # no object copy yet: kept

        moved = api.post("/admin/storage/migrate", json={"id": fn})
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == "migrated"
        assert len(stored(fn)) == 2  # source and precompiled artifact
        again = api.post("/admin/storage/migrate", json={"id": fn}).json()
        assert again["status"] == "already_migrated"
        cleaned = api.post("/admin/storage/cleanup-kv", json={"id": fn}).json()
        assert len(cleaned["removed"]) == 2 and cleaned["kept"] == []
        assert_problem(
            api.post("/admin/storage/migrate", json={"id": unique("absent")}),
            404, "function_not_found",
        )

    server.stop()
    server.env["TIERGATE_WRITE_TO_OBJECT"] = "true"
    server.env["TIERGATE_AUTO_MIGRATE"] = "true"
    server.start()
    with server.client() as api:
        assert api.post(f"/invoke/{fn}", json={"b": 2}).json()["output"] == {"b": 2}  # from S3
        assert api.post(f"/invoke/{lazy}", json={"c": 3}).json()["output"] == {"c": 3}
        assert len(stored(lazy)) >= 1  # copied on the way by auto_migrate


def test_redis_outage_and_recovery_across_two_instances(s3, tmp_path_factory, tiergate_factory):
    redis = RedisProcess(tmp_path_factory.mktemp("redis-outage"), durable=True).start()
    try:
        env = shared_env(redis.url, s3.url)
        a, b = (tiergate_factory(env).client() for _ in range(2))
        fn = unique("kvdown")
        deploy(a, fn, "hello.wat")
        for client in (a, b):
            assert client.post(f"/invoke/{fn}", json={}).status_code == 200

        redis.stop()
        ready = assert_problem(b.get("/readyz"), 503, "storage_unavailable")
        assert ready["checks"]["kv"] != "ok" and ready["checks"]["object_store"] == "ok"
        during = []
        for client in (a, b, a, b):  # loaded functions and known keys keep serving
            r = client.post(f"/invoke/{fn}", json={})
            assert r.status_code == 200, r.text
            during.append(r.json()["execution_id"])
        assert_problem(a.post(f"/invoke/{unique('unknown')}", json={}), 503,
                       "storage_unavailable")
        assert_problem(a.get(f"/functions/{fn}"), 503, "storage_unavailable")
        waiting = metric(a.get("/metrics").text, "tiergate_records_unsaved")
        assert waiting is not None and waiting >= 2

        redis.start()
        eventually(lambda: a.get("/readyz").status_code == 200, timeout=15)
        # Kept in memory meanwhile, written once Redis is back: each instance reads the other's
        # records from Redis (an instance answers for its own unsaved ones from memory).
        for client, execution in zip((b, a, b, a), during, strict=True):
            eventually(lambda c=client, e=execution: c.get(f"/executions/{e}").status_code == 200,
                       timeout=15)
        for client in (a, b):
            eventually(lambda c=client: metric(c.get("/metrics").text,
                                               "tiergate_records_unsaved") == 0)
        deploy(a, fn, "echo.wat")  # the others hear of it again (subscription re-made)
        eventually(lambda: b.post(f"/invoke/{fn}", json={"v": 2}).json()["version"] == 2,
                   timeout=3)
        a.close()
        b.close()
    finally:
        redis.stop()


def test_a_missing_bucket_is_named_at_start_and_by_readyz(s3, redis_server, tiergate_factory):
    env = shared_env(redis_server, s3.url, TIERGATE_OBJECT_STORE="s3://no-such-bucket/code")
    server = tiergate_factory(env)
    with server.client() as api:
        ready = assert_problem(api.get("/readyz"), 503, "storage_unavailable")
        assert "bucket 'no-such-bucket' not found" in ready["checks"]["object_store"]
        assert ready["checks"]["kv"] == "ok"
        failed = api.post("/deploy", json={"id": "x", "runtime": "wasm",
                                           "code": example("echo.wat")})
        assert_problem(failed, 503, "storage_unavailable")
        assert api.get("/functions").json()["functions"] == []  # the failed deploy left nothing
    assert "no-such-bucket' not found" in server.log()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreachable_redis_at_start_is_one_clear_line(s3, tmp_path, workers):
    import subprocess

    from plugins.testing import _tiergate

    env = {
        "TIERGATE_KV": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "TIERGATE_SECRET_KEY": "shared",
        "TIERGATE_OBJECT_STORE": "s3://any/code",
        "TIERGATE_S3_ENDPOINT_URL": s3.url,
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [_tiergate(), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path),
         "--workers", workers],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot start: redis:")
    assert "Traceback" not in done.stderr
