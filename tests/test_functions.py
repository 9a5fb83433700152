"""Deploy, versions, latest, rollback, describe, list and delete — over HTTP."""

from __future__ import annotations

import hashlib
import json

from conftest import assert_problem, b64, deploy_wat, example, example_bytes, unique


def test_deploy_core_wat_and_invoke(api):
    fn = unique("echo")
    result = deploy_wat(api, fn, description="echoes its input")
    assert result["id"] == fn and result["version"] == 1 and result["runtime"] == "wasm"
    assert result["precompiled"] is True
    assert result["code_sha256"] == hashlib.sha256(example("echo.wat").encode()).hexdigest()
    assert result["code_size"] == len(example("echo.wat").encode())
    first = api.post(f"/invoke/{fn}", json={"hello": "wörld", "n": [1, 2, 3]}).json()
    assert first["status"] == "completed" and first["tier"] == "code"
    assert first["output"] == {"hello": "wörld", "n": [1, 2, 3]}
    assert first["attempts"][0]["tier"] == "code" and first["attempts"][0]["status"] == "succeeded"
    assert first["metrics"]["cold_start"] is True and first["metrics"]["cache_hit"] is False
    second = api.post(f"/invoke/{fn}", json=[1]).json()
    assert second["metrics"]["cache_hit"] is True and second["metrics"]["cold_start"] is False
    assert second["execution_id"] > first["execution_id"]


def test_deploy_binary_base64_and_multipart(api):
    wasm = example_bytes("c/echo.wasm")
    fn = unique("cecho")
    r = api.post(
        "/deploy", json={"id": fn, "runtime": "wasm", "code": b64(wasm), "code_encoding": "base64"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["code_sha256"] == hashlib.sha256(wasm).hexdigest()
    out = api.post(f"/invoke/{fn}", json={"c": True}).json()
    assert out["output"] == {"c": True}
    assert any(entry["stream"] == "stderr" for entry in out["logs"])
    fn2 = unique("multi")
    r = api.post(
        "/deploy",
        files={
            "manifest": (None, json.dumps({"id": fn2, "runtime": "wasm"})),
            "code": ("echo.wasm", wasm, "application/octet-stream"),
        },
    )
    assert r.status_code == 201, r.text
    assert api.post(f"/invoke/{fn2}", json=[1, "two"]).json()["output"] == [1, "two"]


def test_wasi_text_module_logs_stderr(api):
    fn = unique("wasi")
    deploy_wat(api, fn, "wasi-echo.wat")
    out = api.post(f"/invoke/{fn}", json={"x": 1}).json()
    assert out["output"] == {"x": 1}
    assert [e["stream"] for e in out["logs"]] == ["stderr"]


def test_core_logs_are_captured(api):
    fn = unique("hello")
    deploy_wat(api, fn, "hello.wat")
    out = api.post(f"/invoke/{fn}", json=None).json()
    assert out["output"] == {"message": "hello from wasm"}
    assert out["logs"] and out["logs"][0]["stream"] == "log"
    assert out["logs"][0]["ts"].endswith("Z")


def test_versions_latest_and_rollback(api):
    fn = unique("ver")
    assert deploy_wat(api, fn, "echo.wat")["version"] == 1
    assert deploy_wat(api, fn, "hello.wat")["version"] == 2
    assert api.post(f"/invoke/{fn}", json=7).json()["output"] == {"message": "hello from wasm"}
    assert api.post(f"/invoke/{fn}@1", json=7).json()["output"] == 7
    v1 = api.post(f"/invoke/{fn}@1", json=7).json()
    assert v1["version"] == 1
    versions = api.get(f"/functions/{fn}/versions").json()
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["latest_version"] == 2
    r = api.post(f"/functions/{fn}/rollback", json={"version": 1})
    assert r.status_code == 200 and r.json()["latest_version"] == 1
    assert api.post(f"/invoke/{fn}", json=8).json()["output"] == 8
    assert deploy_wat(api, fn, "hello.wat")["version"] == 3
    assert api.post(f"/invoke/{fn}", json=8).json()["version"] == 3


def test_rollback_errors(api):
    fn = unique("rb")
    deploy_wat(api, fn)
    assert_problem(
        api.post(f"/functions/{fn}/rollback", json={"version": 9}), 404, "version_not_found"
    )
    assert_problem(
        api.post(f"/functions/{fn}/rollback", json={"version": "1"}), 400, "invalid_request"
    )
    assert_problem(api.post(f"/functions/{fn}/rollback", content=b"{"), 400, "invalid_request")
    assert_problem(
        api.post(f"/functions/{unique('nope')}/rollback", json={"version": 1}),
        404,
        "function_not_found",
    )


def test_describe_and_list(api):
    fn = unique("desc")
    deploy_wat(
        api,
        fn,
        description="described",
        env={"GREETING": "hi"},
        limits={"timeout_ms": 5000, "memory_mb": 32},
        input_schema={"type": "object"},
    )
    detail = api.get(f"/functions/{fn}").json()
    assert detail["id"] == fn and detail["description"] == "described"
    assert detail["env"] == {"GREETING": "hi"} and detail["limits"]["timeout_ms"] == 5000
    assert "code" not in detail and detail["latest_version"] == 1
    assert [v["version"] for v in detail["versions"]] == [1]
    listing = api.get("/functions").json()["functions"]
    mine = [f for f in listing if f["id"] == fn]
    assert mine and mine[0]["latest_version"] == 1 and mine[0]["runtime"] == "wasm"
    assert mine[0]["description"] == "described"


def test_delete_removes_code_metadata_and_cache(api, tiergate_server):
    fn = unique("gone")
    deploy_wat(api, fn)
    deploy_wat(api, fn)
    assert api.post(f"/invoke/{fn}", json=1).status_code == 200
    code_dir = tiergate_server.data_dir / "objects" / "code" / "default" / fn
    assert code_dir.exists()
    r = api.delete(f"/functions/{fn}")
    assert r.status_code == 204 and r.content == b""
    assert not code_dir.exists()
    assert_problem(api.post(f"/invoke/{fn}", json=1), 404, "function_not_found")
    assert_problem(api.get(f"/functions/{fn}"), 404, "function_not_found")
    assert_problem(api.get(f"/functions/{fn}/logs"), 404, "function_not_found")
    assert_problem(api.delete(f"/functions/{fn}"), 404, "function_not_found")
    assert fn not in [f["id"] for f in api.get("/functions").json()["functions"]]
    assert deploy_wat(api, fn)["version"] == 1


def test_records_with_fields_this_gateway_does_not_know(tiergate_server, api):
    """A newer gateway sharing the KV may store fields this one does not know: the records still
    read, deploys and rollbacks still rewrite them, and the unknown fields stay."""
    import sqlite3

    fn = unique("future")
    deploy_wat(api, fn)
    keys = (f"fn/default/{fn}", f"fnv/default/{fn}/{1:010d}")
    database = tiergate_server.data_dir / "tiergate.db"

    def stored(db, key):
        return json.loads(db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()[0])

    with sqlite3.connect(database, timeout=10) as db:
        for key in keys:
            record = {**stored(db, key), "from_a_newer_gateway": [1]}
            db.execute("UPDATE kv SET value = ? WHERE key = ?", (json.dumps(record).encode(), key))
    assert api.get(f"/functions/{fn}").json()["latest_version"] == 1
    assert [v["version"] for v in api.get(f"/functions/{fn}/versions").json()["versions"]] == [1]
    deploy_wat(api, fn, "hello.wat")
    rolled = api.post(f"/functions/{fn}/rollback", json={"version": 1})
    assert rolled.json()["latest_version"] == 1
    assert api.post(f"/invoke/{fn}", json=[1]).json()["output"] == [1]
    with sqlite3.connect(database, timeout=10) as db:
        assert all(stored(db, key)["from_a_newer_gateway"] == [1] for key in keys)
