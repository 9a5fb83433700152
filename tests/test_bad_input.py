"""Bad input gets its API.md error code, and nothing already stored changes."""

from __future__ import annotations

import pytest
from conftest import assert_problem, deploy_wat, example, unique


@pytest.fixture
def stored(api):
    """A function with one good version, to prove that bad deploys leave it alone."""
    fn = unique("keep")
    first = deploy_wat(api, fn)
    yield fn, first
    after = api.get(f"/functions/{fn}").json()
    assert after["latest_version"] == 1 and after["code_sha256"] == first["code_sha256"]
    assert [v["version"] for v in after["versions"]] == [1]
    assert api.post(f"/invoke/{fn}", json={"still": "here"}).json()["output"] == {"still": "here"}


@pytest.mark.parametrize(
    ("manifest", "status", "code", "field"),
    [
        ({"runtime": "wasm", "code": "(module)"}, 400, "invalid_function_id", "id"),
        ({"limits": {"timeout_ms": "fast"}}, 400, "invalid_manifest", "limits.timeout_ms"),
        ({"limits": {"timeout_ms": 0}}, 400, "invalid_manifest", "limits.timeout_ms"),
        ({"limits": {"memory_mb": 1.5}}, 400, "invalid_manifest", "limits.memory_mb"),
        ({"limits": {"cpu": 2}}, 400, "invalid_manifest", "limits"),
        ({"env": {"A": 1}}, 400, "invalid_manifest", "env.A"),
        ({"code_encoding": "base64", "code": "not base64!"}, 400, "invalid_manifest", "code"),
        ({"code_encoding": "rot13"}, 400, "invalid_manifest", "code_encoding"),
        ({"input_schema": {"type": "nonsense"}}, 400, "invalid_manifest", "input_schema"),
        ({"output_schema": 5}, 400, "invalid_manifest", "output_schema"),
        ({"colour": "blue"}, 400, "invalid_manifest", "colour"),
        ({"runtime": "cobol"}, 400, "unknown_runtime", None),
        ({"runtime": None, "code": "(module)"}, 400, "invalid_manifest", "runtime"),
        ({"code": "(module (func"}, 422, "compile_error", None),
        ({"code": "(module)"}, 422, "compile_error", None),
        (
            {"code": '(module (import "env" "f" (func)) (func (export "_start")))'},
            422,
            "compile_error",
            None,
        ),
    ],
)
def test_bad_manifests(api, stored, manifest, status, code, field):
    fn, _ = stored
    body = {"id": fn, "runtime": "wasm", "code": example("echo.wat"), **manifest}
    body = {k: v for k, v in body.items() if v is not None}
    if code == "invalid_function_id":
        body["id"] = "../x"
    problem = assert_problem(api.post("/deploy", json=body), status, code)
    if field:
        assert problem["field"] == field and field.split(".")[0] in problem["detail"]


def test_compile_error_names_the_problem(api, stored):
    fn, _ = stored
    problem = assert_problem(
        api.post("/deploy", json={"id": fn, "runtime": "wasm", "code": "(module)"}),
        422,
        "compile_error",
    )
    assert "ABI" in problem["detail"] or "_start" in problem["detail"]


def test_unknown_runtime_lists_the_available_ones(api, stored):
    fn, _ = stored
    problem = assert_problem(
        api.post("/deploy", json={"id": fn, "runtime": "cobol", "code": "x"}),
        400,
        "unknown_runtime",
    )
    assert "wasm" in problem["available"]


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\xff\xfe", b"", b"null"])
def test_manifest_not_an_object(api, stored, raw):
    r = api.post("/deploy", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] in ("invalid_request", "invalid_manifest")


def test_no_code_and_no_tiers(api):
    assert_problem(api.post("/deploy", json={"id": unique("empty")}), 400, "invalid_manifest")


def test_unsupported_content_type(api, stored):
    r = api.post("/deploy", content=b"id=x", headers={"content-type": "text/plain"})
    assert_problem(r, 400, "invalid_request")


def test_multipart_without_manifest(api, stored):
    r = api.post("/deploy", files={"code": ("echo.wat", example("echo.wat").encode())})
    assert_problem(r, 400, "invalid_manifest")


def test_oversize_bodies(api, stored, tiergate_server):
    fn, _ = stored
    big = b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"'
    assert_problem(api.post(f"/invoke/{fn}", content=big), 413, "payload_too_large")
    manifest = {"id": fn, "runtime": "wasm", "code": "x" * (6 * 1024 * 1024 + 10)}
    assert_problem(api.post("/deploy", json=manifest), 413, "payload_too_large")


@pytest.mark.parametrize("ref", ["..%2Fx", "UPPER", "-lead", "a" * 64, "x@y", "x@0", "x@-1"])
def test_bad_function_refs(api, ref):
    r = api.post(f"/invoke/{ref}", json=1)
    assert r.status_code in (400, 404), r.text
    assert r.json()["code"] in ("invalid_function_id", "version_not_found", "not_found")


def test_unknown_function_and_version(api, stored):
    fn, _ = stored
    assert_problem(api.post(f"/invoke/{unique('missing')}", json=1), 404, "function_not_found")
    assert_problem(api.post(f"/invoke/{fn}@99", json=1), 404, "version_not_found")
    assert_problem(api.get(f"/functions/{unique('missing')}/versions"), 404, "function_not_found")


def test_invalid_input(api):
    fn = unique("typed")
    deploy_wat(
        api,
        fn,
        input_schema={
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer"}},
        },
    )
    problem = assert_problem(api.post(f"/invoke/{fn}", json={"n": "one"}), 400, "invalid_input")
    assert problem["errors"] == [{"path": "/n", "message": "'one' is not of type 'integer'"}]
    assert_problem(api.post(f"/invoke/{fn}", content=b"{not json"), 400, "invalid_input")
    assert api.post(f"/invoke/{fn}", json={"n": 1}).json()["output"] == {"n": 1}


def test_bad_query_options(api, stored):
    fn, _ = stored
    assert_problem(api.post(f"/invoke/{fn}?timeout_ms=soon", json=1), 400, "invalid_request")
    assert_problem(api.post(f"/invoke/{fn}?start_tier=magic", json=1), 400, "invalid_request")
    assert_problem(api.post(f"/invoke/{fn}?parallel=maybe", json=1), 400, "invalid_request")


def test_auth_required(tiergate_server):
    with tiergate_server.client(key="") as anonymous:
        assert_problem(anonymous.get("/functions"), 401, "unauthenticated")
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
    with tiergate_server.client(key="tg_wrong") as wrong:
        assert_problem(wrong.post("/invoke/x", json=1), 401, "unauthenticated")


def test_unknown_route_and_method(api):
    assert_problem(api.get("/nowhere"), 404, "not_found")
    r = api.put("/deploy", json={})
    assert_problem(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


def test_bad_tier_configuration_is_refused(api):
    r = api.post("/deploy", json={"id": unique("tiered"), "tiers": {"robot": {}}})
    assert_problem(r, 400, "invalid_manifest")
    r = api.post("/deploy", json={"id": unique("tiered"), "tiers": {"agentic": {"max_steps": 0}}})
    problem = assert_problem(r, 400, "invalid_manifest")
    assert problem["field"] == "tiers.agentic.max_steps"
    r = api.post("/deploy", json={"id": unique("tiered"), "tiers": {"generative": {"temp": 1}}})
    assert_problem(r, 400, "invalid_manifest")
