"""The CLI as a user runs it: readable output, one-line errors, non-zero exits, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import EXAMPLES, one_line_error, unique
from conftest import run_cli as run


def test_deploy_invoke_functions_logs(tiergate_server):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    fn = unique("cli")
    deployed = run("deploy", str(EXAMPLES / "hello.wat"), "--id", fn, env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip().startswith(f"deployed {fn} version 1 (wasm, ")
    invoked = run("invoke", fn, "--data", '{"a": 1}', env=env)
    assert invoked.returncode == 0 and json.loads(invoked.stdout) == {"message": "hello from wasm"}
    full = run("invoke", f"{fn}@1", "--full", env=env)
    assert json.loads(full.stdout)["status"] == "completed"
    listing = run("functions", env=env)
    assert listing.returncode == 0 and listing.stdout.splitlines()[0].split()[:3] == [
        "ID",
        "LATEST",
        "RUNTIME",
    ]
    assert any(line.split()[:3] == [fn, "1", "wasm"] for line in listing.stdout.splitlines())
    logs = run("logs", fn, "--limit", "5", env=env)
    assert logs.returncode == 0 and "completed" in logs.stdout and "[log]" in logs.stdout


def test_deploy_with_manifest_and_url_flag(tiergate_server, tmp_path):
    fn = unique("climan")
    manifest = tmp_path / "m.json"
    manifest.write_text(
        json.dumps({"description": "from a manifest", "limits": {"timeout_ms": 900}})
    )
    wasm = EXAMPLES / "c" / "echo.wasm"
    r = run(
        "deploy",
        str(wasm),
        "--id",
        fn,
        "--manifest",
        str(manifest),
        "--url",
        tiergate_server.url,
        "--key",
        tiergate_server.admin_key,
    )
    assert r.returncode == 0, r.stderr
    r = run(
        "invoke",
        fn,
        "--data",
        "[1,2]",
        "--url",
        tiergate_server.url,
        "--key",
        tiergate_server.admin_key,
    )
    assert json.loads(r.stdout) == [1, 2]


def test_key_from_data_dir(tiergate_server, tmp_path):
    data_dir = tmp_path / ".tiergate"
    data_dir.mkdir()
    (data_dir / "admin.key").write_text(tiergate_server.admin_key + "\n")
    r = run("functions", env={"TIERGATE_URL": tiergate_server.url}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_errors_are_one_line(tiergate_server, tmp_path):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    assert "function_not_found" in one_line_error(run("invoke", unique("nope"), env=env))
    assert "not valid JSON" in one_line_error(run("invoke", "x", "--data", "{", env=env))
    bad = tmp_path / "bad.wat"
    bad.write_text("(module (func")
    assert "compile_error" in one_line_error(run("deploy", str(bad), env=env))
    assert "cannot read" in one_line_error(run("deploy", str(tmp_path / "missing.wat"), env=env))
    assert "--runtime" in one_line_error(run("deploy", str(manifest_like(tmp_path)), env=env))
    wrong_key = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": "tg_wrong"}
    assert "unauthenticated" in one_line_error(run("functions", env=wrong_key))
    nowhere = {"TIERGATE_URL": "http://127.0.0.1:9", "TIERGATE_KEY": "x"}
    assert "cannot reach" in one_line_error(run("functions", env=nowhere))


def manifest_like(tmp_path):
    path = tmp_path / "code.unknown"
    path.write_text("x")
    return path


def test_runtimes_lists_wasm():
    r = run("runtimes")
    assert r.returncode == 0
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0][:3] == ["NAME", "STATUS", "SOURCE"]
    assert any(row[:3] == ["wasm", "active", "tiergate"] for row in rows)


def test_python_dash_m_gateway():
    r = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "serve" in r.stdout


def test_serve_rejects_bad_settings(tmp_path):
    r = run("serve", "--data-dir", str(tmp_path), env={"TIERGATE_KV": "mysql://x"})
    assert "TIERGATE_KV" in one_line_error(r)
    r = run("serve", "--data-dir", str(tmp_path), env={"TIERGATE_CONCURRENCY": "many"})
    assert "TIERGATE_CONCURRENCY" in one_line_error(r)


@pytest.mark.parametrize(
    "variable, value, says",
    [
        ("TIERGATE_OBJECT_STORE", "s3://", "name the bucket"),
        ("TIERGATE_OBJECT_STORE", "gs://bucket", "unsupported scheme"),
        ("TIERGATE_WORKERS", "0", "at least 1"),
        ("TIERGATE_WORKERS", "two", "expected"),
        ("TIERGATE_ORPHAN_AFTER_S", "0", "more than 0"),
        ("TIERGATE_VERIFY_S", "-1", "negative"),
    ],
)
def test_serve_rejects_bad_scale_out_settings(tmp_path, variable, value, says):
    error = one_line_error(run("serve", "--data-dir", str(tmp_path), env={variable: value}))
    assert variable in error and says in error, error


def test_tasks_command(tiergate_server):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    with tiergate_server.client() as api:
        fn = unique("clitask")
        api.post("/deploy", json={"id": fn, "tiers": {"human": {}}})
        waiting = api.post(f"/invoke/{fn}", json=1).json()
    listing = run("tasks", env=env)
    assert listing.returncode == 0 and listing.stdout.splitlines()[0].split()[:3] == [
        "TASK", "FUNCTION", "STATUS"]
    assert any(fn in line and "pending" in line for line in listing.stdout.splitlines())
    assert waiting["status"] == "awaiting_human"
    fresh = unique("nobody")
    none = run("tasks", env={**env, "TIERGATE_KEY": _review_key(tiergate_server, fresh)})
    assert none.returncode == 0 and none.stdout.strip() == "no pending tasks"


def _review_key(server, tenant):
    with server.client() as api:
        return api.post("/admin/keys", json={"tenant": tenant, "roles": ["review"]}).json()["key"]


def test_exit_statuses_tell_what_went_wrong(tiergate_server, tmp_path):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    missing = run("invoke", unique("nowhere"), env=env)
    assert missing.returncode == 3 and "function_not_found" in one_line_error(missing)
    refused = run("functions", env={**env, "TIERGATE_KEY": "tg_wrong"})
    assert refused.returncode == 4 and "unauthenticated" in one_line_error(refused)
    trap = unique("trap")
    assert run("deploy", str(EXAMPLES / "trap.wat"), "--id", trap, env=env).returncode == 0
    failed = run("invoke", trap, "-d", "1", env=env)
    assert failed.returncode == 5 and "cascade_exhausted" in one_line_error(failed)
    loop, manifest = unique("loop"), tmp_path / "loop.json"
    manifest.write_text(json.dumps({"limits": {"timeout_ms": 200}}))
    deployed = run("deploy", str(EXAMPLES / "loop.wat"), "--id", loop, "--manifest",
                   str(manifest), env=env)
    assert deployed.returncode == 0, deployed.stderr
    slow = run("invoke", loop, "-d", "1", env=env)
    assert slow.returncode == 6 and "(timeout, HTTP 504)" in one_line_error(slow)
    bad = run("invoke", trap, "-d", "{nope", env=env)
    assert bad.returncode == 2 and "--data is not valid JSON" in one_line_error(bad)
    schemeless = run("functions", env={**env, "TIERGATE_URL": "127.0.0.1:9"})
    assert schemeless.returncode == 2
    assert "has no scheme: use 'http://127.0.0.1:9'" in one_line_error(schemeless)


def test_errors_name_the_fields_at_fault(tiergate_server, tmp_path):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    typed = unique("typed")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"input_schema": {
        "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}))
    deployed = run("deploy", str(EXAMPLES / "echo.wat"), "--id", typed, "--manifest",
                   str(manifest), env=env)
    assert deployed.returncode == 0, deployed.stderr
    line = one_line_error(run("invoke", typed, "-d", '{"m": 1}', env=env))
    assert "(invalid_input, HTTP 400): /: 'n' is a required property" in line
    line = one_line_error(run("invoke", typed, "-d", '{"n": "x"}', env=env))
    assert "/n: 'x' is not of type 'integer'" in line


def test_data_from_stdin_and_following_an_async_call(tiergate_server):
    env = {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}
    fn = unique("echo")
    assert run("deploy", str(EXAMPLES / "echo.wat"), "--id", fn, env=env).returncode == 0
    piped = run("invoke", fn, "-d", "@-", env=env, input='{"from": "stdin"}')
    assert piped.returncode == 0 and json.loads(piped.stdout) == {"from": "stdin"}
    queued = run("invoke", fn, "--async", "-d", "[1]", env=env)
    assert queued.returncode == 0 and json.loads(queued.stdout)["status"] == "pending"
    assert "add --wait to follow it" in queued.stderr
    followed = run("invoke", fn, "--async", "--wait", "-d", "[2]", env=env)
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout) == [2]
