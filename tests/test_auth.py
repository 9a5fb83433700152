"""Keys, roles, tenants, secrets, rate limits and the audit trail — over HTTP."""

from __future__ import annotations

import time

import pytest
from conftest import assert_problem, deploy_wat, example, fixture, unique

SECRET_VALUE = "s3cr3t-value-that-must-never-leak-7f1c"


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    from plugins.testing import TiergateServer

    server = TiergateServer(
        tmp_path_factory.mktemp("auth"), {"TIERGATE_SECRET_KEY": "a passphrase for the tests"}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(gate):
    with gate.client() as client:
        yield client


def new_key(admin, tenant, *roles, name="test"):
    r = admin.post("/admin/keys", json={"tenant": tenant, "roles": list(roles), "name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["key"].startswith("tg_") and body["tenant"] == tenant
    return body


def test_roles_allow_and_refuse(gate, admin):
    tenant = unique("roles")
    keys = {role: new_key(admin, tenant, role)["key"] for role in ("deploy", "invoke", "review")}
    fn = unique("rolefn")
    with gate.client(keys["deploy"]) as deployer:
        deploy_wat(deployer, fn)
        assert deployer.get("/functions").status_code == 200
        assert deployer.get(f"/functions/{fn}/logs").status_code == 200
        assert_problem(deployer.post(f"/invoke/{fn}", json=1), 403, "forbidden")
        assert_problem(deployer.get("/admin/keys"), 403, "forbidden")
        assert_problem(deployer.get("/metrics"), 403, "forbidden")
    with gate.client(keys["invoke"]) as invoker:
        done = invoker.post(f"/invoke/{fn}", json={"ok": 1})
        assert done.status_code == 200
        assert invoker.get(f"/executions/{done.json()['execution_id']}").status_code == 200
        assert_problem(invoker.post("/deploy", json={"id": fn}), 403, "forbidden")
        assert_problem(invoker.get("/functions"), 403, "forbidden")
        assert_problem(invoker.delete(f"/functions/{fn}"), 403, "forbidden")
        assert_problem(invoker.post("/admin/keys", json={}), 403, "forbidden")
    with gate.client(keys["review"]) as reviewer:
        assert_problem(reviewer.post(f"/invoke/{fn}", json=1), 403, "forbidden")
        assert_problem(reviewer.post("/deploy", json={"id": fn}), 403, "forbidden")
    both = new_key(admin, tenant, "deploy", "invoke")["key"]
    with gate.client(both) as client:
        assert client.post(f"/invoke/{fn}", json=2).json()["output"] == 2
        assert client.get(f"/functions/{fn}").status_code == 200


def test_tenants_see_only_their_own(gate, admin):
    a, b = unique("ta"), unique("tb")
    key_a = new_key(admin, a, "deploy", "invoke")["key"]
    key_b = new_key(admin, b, "deploy", "invoke")["key"]
    fn = unique("private")
    with gate.client(key_a) as ca, gate.client(key_b) as cb:
        deploy_wat(ca, fn)
        done = ca.post(f"/invoke/{fn}", json="mine").json()
        for response, code in [
            (cb.post(f"/invoke/{fn}", json=1), "function_not_found"),
            (cb.post(f"/invoke/{fn}@1", json=1), "function_not_found"),
            (cb.get(f"/functions/{fn}"), "function_not_found"),
            (cb.get(f"/functions/{fn}/versions"), "function_not_found"),
            (cb.get(f"/functions/{fn}/logs"), "function_not_found"),
            (cb.post(f"/functions/{fn}/rollback", json={"version": 1}), "function_not_found"),
            (cb.delete(f"/functions/{fn}"), "function_not_found"),
            (cb.get(f"/executions/{done['execution_id']}"), "execution_not_found"),
            (cb.delete(f"/executions/{done['execution_id']}"), "execution_not_found"),
        ]:
            assert_problem(response, 404, code)
        assert fn not in [f["id"] for f in cb.get("/functions").json()["functions"]]
        assert_problem(cb.get(f"/functions?tenant={a}"), 403, "forbidden")
        # the same id in another tenant is another function
        deploy_wat(cb, fn, "hello.wat")
        assert cb.post(f"/invoke/{fn}", json=1).json()["output"] == {"message": "hello from wasm"}
        assert ca.post(f"/invoke/{fn}", json=1).json()["output"] == 1
    everything = admin.get("/functions").json()["functions"]
    assert {(f["tenant"], f["id"]) for f in everything} >= {(a, fn), (b, fn)}
    assert admin.get(f"/functions/{fn}?tenant={a}").json()["tenant"] == a
    assert admin.get(f"/executions/{done['execution_id']}").status_code == 200


def test_revoked_key_stops_working(gate, admin):
    created = new_key(admin, unique("rev"), "deploy")
    with gate.client(created["key"]) as client:
        assert client.get("/functions").status_code == 200
        listed = admin.get("/admin/keys").json()["keys"]
        mine = [k for k in listed if k["id"] == created["id"]]
        assert mine and "key" not in mine[0] and "sha256" not in mine[0]
        assert admin.delete(f"/admin/keys/{created['id']}").status_code == 204
        assert_problem(client.get("/functions"), 401, "unauthenticated")
    assert_problem(admin.delete(f"/admin/keys/{created['id']}"), 404, "key_not_found")
    assert created["id"] not in [k["id"] for k in admin.get("/admin/keys").json()["keys"]]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"tenant": "t", "roles": ["root"], "name": "x"}, 400, "invalid_request"),
        ({"tenant": "t", "roles": [], "name": "x"}, 400, "invalid_request"),
        ({"tenant": "Bad Tenant", "roles": ["invoke"]}, 400, "invalid_request"),
        ({"roles": ["invoke"]}, 400, "invalid_request"),
        ({"tenant": "t", "roles": ["invoke"], "name": 5}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
    ],
)
def test_bad_key_requests(admin, body, status, code):
    assert_problem(admin.post("/admin/keys", json=body), status, code)


def test_bad_admin_bodies(admin):
    assert_problem(admin.post("/admin/keys", content=b"{oops"), 400, "invalid_request")
    assert_problem(admin.put("/admin/secrets/t/NAME", json={"value": 5}), 400, "invalid_request")
    assert_problem(admin.put("/admin/secrets/t/NAME", content=b""), 400, "invalid_request")
    assert_problem(
        admin.put("/admin/secrets/t/bad-name", json={"value": "v"}), 400, "invalid_request"
    )
    assert_problem(admin.put("/admin/secrets/T!/NAME", json={"value": "v"}), 400, "invalid_request")
    assert_problem(admin.delete("/admin/secrets/t/NEVER_SET"), 404, "secret_not_found")
    assert_problem(
        admin.put("/admin/tenants/t/rate-limit", json={"rate": -1}), 400, "invalid_request"
    )
    assert_problem(
        admin.put("/admin/tenants/t/rate-limit", json={"rate": 1, "burst": 0}),
        400,
        "invalid_request",
    )
    assert_problem(admin.get("/admin/audit?limit=x"), 400, "invalid_request")


def test_secrets_reach_only_granted_code_and_never_leak(gate, admin):
    tenant = unique("sec")
    key = new_key(admin, tenant, "deploy", "invoke")["key"]
    r = admin.put(f"/admin/secrets/{tenant}/API_TOKEN", json={"value": SECRET_VALUE})
    assert r.status_code == 200 and SECRET_VALUE not in r.text
    listed = admin.get(f"/admin/secrets/{tenant}").json()
    assert [s["name"] for s in listed["secrets"]] == ["API_TOKEN"] and SECRET_VALUE not in str(
        listed
    )
    granted, other = unique("granted"), unique("other")
    with gate.client(key) as client:
        for fn, grants in ((granted, ["API_TOKEN"]), (other, [])):
            r = client.post(
                "/deploy",
                json={
                    "id": fn,
                    "runtime": "wasm",
                    "code": fixture("wasi-env.wat"),
                    "env": {"WANT": "API_TOKEN"},
                    "secrets": grants,
                },
            )
            assert r.status_code == 201, r.text
        seen = client.post(f"/invoke/{granted}", json=None).json()
        assert seen["output"] == {"API_TOKEN": True}
        assert all(SECRET_VALUE not in entry["message"] for entry in seen["logs"])
        assert any("[redacted]" in entry["message"] for entry in seen["logs"])
        assert client.post(f"/invoke/{other}", json=None).json()["output"] == {"API_TOKEN": False}
        detail = client.get(f"/functions/{granted}").json()
        assert detail["secrets"] == ["API_TOKEN"] and SECRET_VALUE not in str(detail)
        logs = client.get(f"/functions/{granted}/logs").text
        assert SECRET_VALUE not in logs and "[redacted]" in logs
        missing = client.post(
            "/deploy",
            json={
                "id": unique("nosecret"),
                "runtime": "wasm",
                "code": example("echo.wat"),
                "secrets": ["NOPE"],
            },
        )
        assert_problem(missing, 400, "invalid_manifest")
    gate.stop()
    gate.start()
    for path in gate.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET_VALUE.encode() not in data, path
            assert key.encode() not in data, path
    with gate.client(key) as client:
        assert client.post(f"/invoke/{granted}", json=None).json()["output"] == {"API_TOKEN": True}
    assert SECRET_VALUE not in gate.log() and key not in gate.log()
    assert admin.delete(f"/admin/secrets/{tenant}/API_TOKEN").status_code == 204


def test_rate_limit_per_key_with_retry_after(gate, admin):
    tenant = unique("rl")
    assert (
        admin.put(f"/admin/tenants/{tenant}/rate-limit", json={"rate": 2, "burst": 3}).status_code
        == 200
    )
    assert admin.get(f"/admin/tenants/{tenant}/rate-limit").json() == {
        "tenant": tenant,
        "rate": 2.0,
        "burst": 3,
        "override": True,
    }
    first, second = new_key(admin, tenant, "deploy")["key"], new_key(admin, tenant, "deploy")["key"]
    with gate.client(first) as client, gate.client(second) as other:
        answers = [client.get("/functions") for _ in range(4)]
        assert [r.status_code for r in answers[:3]] == [200, 200, 200]
        problem = assert_problem(answers[3], 429, "rate_limited")
        assert answers[3].headers["retry-after"] == "1" and problem["burst"] == 3
        assert other.get("/functions").status_code == 200  # buckets are per key
        time.sleep(0.6)
        assert client.get("/functions").status_code == 200
    assert admin.delete(f"/admin/tenants/{tenant}/rate-limit").status_code == 204


def test_rate_limit_stops_work_before_it_queues(gate, admin):
    tenant = unique("rlq")
    admin.put(f"/admin/tenants/{tenant}/rate-limit", json={"rate": 0.5, "burst": 1})
    key = new_key(admin, tenant, "deploy", "invoke")["key"]
    with gate.client(key) as client:
        fn = unique("limited")
        deploy_wat(client, fn)
        r = client.post(f"/invoke/{fn}", json=1)
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) == 2
    admin.delete(f"/admin/tenants/{tenant}/rate-limit")
    logs = admin.get(f"/functions/{fn}/logs?tenant={tenant}").json()["executions"]
    assert logs == []


def test_audit_trail(gate, admin):
    tenant = unique("aud")
    created = new_key(admin, tenant, "deploy", name="auditor")
    fn = unique("audited")
    with gate.client(created["key"]) as client:
        deploy_wat(client, fn)
    admin.delete(f"/admin/keys/{created['id']}")
    entries = admin.get("/admin/audit?limit=50").json()["entries"]
    actions = [(e["action"], e["target"]) for e in entries]
    assert ("key.revoke", created["id"]) in actions
    assert ("function.deploy", f"{tenant}/{fn}") in actions
    assert ("key.create", created["id"]) in actions
    deploy = next(e for e in entries if e["action"] == "function.deploy" and fn in e["target"])
    assert deploy["key_id"] == created["id"] and deploy["details"]["version"] == 1
    assert actions.index(("key.revoke", created["id"])) < actions.index(
        ("key.create", created["id"])
    )
    older = admin.get(f"/admin/audit?limit=50&before={entries[0]['id']}").json()["entries"]
    assert older[0]["id"] == entries[1]["id"]
    with gate.client(created["key"]) as revoked:
        assert_problem(revoked.get("/admin/audit"), 401, "unauthenticated")
