"""Hybrid storage through the admin endpoints: code written to the KV, migrated into the object
store, KV copies cleaned up only once the object copy is verified."""

from __future__ import annotations

from conftest import assert_problem, deploy_wat, unique


def _objects(server, fn):
    return sorted(
        p.name for p in (server.data_dir / "objects").rglob("*") if fn in str(p) and p.is_file()
    )


def test_migrate_and_cleanup(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WRITE_TO_OBJECT": "false"})
    fn = unique("hybrid")
    with server.client() as api:
        deploy_wat(api, fn)
        assert _objects(server, fn) == []
        assert api.post(f"/invoke/{fn}", json="kv").json()["output"] == "kv"
        r = api.post("/admin/storage/migrate", json={"id": fn, "version": 1})
        assert r.status_code == 200 and r.json()["status"] == "migrated"
        assert _objects(server, fn) != []
        again = api.post("/admin/storage/migrate", json={"id": fn})
        assert again.json()["status"] == "already_migrated"
        cleaned = api.post("/admin/storage/cleanup-kv", json={"id": fn}).json()
        assert cleaned["removed"] and cleaned["kept"] == []
    server.stop()
    server.start()
    with server.client() as api:
        assert api.post(f"/invoke/{fn}", json="object").json()["output"] == "object"


def test_storage_admin_errors(api):
    assert_problem(
        api.post("/admin/storage/migrate", json={"id": unique("none")}), 404, "function_not_found"
    )
    assert_problem(
        api.post("/admin/storage/migrate", json={"id": "../x"}), 400, "invalid_function_id"
    )
    assert_problem(api.post("/admin/storage/migrate", json=[1]), 400, "invalid_request")
    fn = unique("stv")
    deploy_wat(api, fn)
    assert_problem(
        api.post("/admin/storage/cleanup-kv", json={"id": fn, "version": 4}),
        404,
        "version_not_found",
    )
    assert_problem(
        api.post("/admin/storage/cleanup-kv", json={"id": fn, "version": "1"}),
        400,
        "invalid_request",
    )


def test_auto_migrate_on_read(tiergate_factory):
    server = tiergate_factory({"TIERGATE_WRITE_TO_OBJECT": "false"})
    fn = unique("auto")
    with server.client() as api:
        deploy_wat(api, fn)
    server.stop()
    server.env.update({"TIERGATE_WRITE_TO_OBJECT": "true", "TIERGATE_AUTO_MIGRATE": "true"})
    server.start()
    with server.client() as api:
        assert api.post(f"/invoke/{fn}", json=1).json()["output"] == 1
        assert _objects(server, fn) != []
