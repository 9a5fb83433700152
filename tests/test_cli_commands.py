"""The CLI's everyday commands as a user runs them, against a real gateway: ``new`` (then deploy
and invoke what it wrote), ``versions``, ``rollback``, ``delete`` (and when it asks), ``alias``,
``logs --follow``, ``tasks list|show|claim|release|answer|reject``, ``--json`` and shell
completion; with their bad paths and exit statuses."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, TIERGATE, one_line_error, unique
from conftest import run_cli as run

from gateway.cli.wasi_templates import clang_missing

NEEDS_A_PERSON = "def handler(event, context):\n    raise ValueError('a person decides')\n"
APPROVAL = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout


def table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def env(tiergate_server):
    return {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}


def deploy_example(env, name: str, fn: str) -> None:
    ok(run("deploy", str(EXAMPLES / name), "--id", fn, env=env))


# ---- new -----------------------------------------------------------------------------------


def test_new_python_deploys_and_answers_as_its_readme_says(env, tmp_path):
    fn = unique("new-py")
    made = ok(run("new", fn, "--lang", "python", env=env, cwd=tmp_path))
    assert made.splitlines()[0] == f"created {fn}/ (python): handler.py, manifest.json, README.md"
    assert f"tiergate deploy {fn}" in made
    readme = (tmp_path / fn / "README.md").read_text()
    assert f"tiergate deploy {fn}\n" in readme and '{"message": "hello, you!"}' in readme
    deployed = ok(run("deploy", fn, env=env, cwd=tmp_path))
    assert deployed.startswith(f"deployed {fn} version 1 (python, ")
    assert deployed.strip().endswith(f"with {fn}/manifest.json")
    answer = ok(run("invoke", fn, "-d", '{"name": "you"}', env=env))
    assert json.loads(answer) == {"message": "hello, you!"}
    assert json.loads(ok(run("invoke", fn, env=env))) == {"message": "hello, world!"}
    # The manifest.json was deployed with it: its description, its input schema.
    listed = json.loads(ok(run("functions", "--json", env=env)))
    assert "says hello" in next(f for f in listed if f["id"] == fn)["description"]
    refused = run("invoke", fn, "-d", '{"name": 3}', env=env)
    assert refused.returncode == 1
    assert "/name: 3 is not of type 'string'" in one_line_error(refused)


def test_new_wat_deploys_the_file_and_echoes(env, tmp_path):
    fn = unique("new-wat")
    made = ok(run("new", fn, "--lang", "wat", env=env, cwd=tmp_path))
    assert f"tiergate deploy {fn}/{fn}.wat" in made
    assert {p.name for p in (tmp_path / fn).iterdir()} == {"README.md", f"{fn}.wat",
                                                            "manifest.json"}
    deployed = ok(run("deploy", f"{fn}/{fn}.wat", env=env, cwd=tmp_path))
    assert deployed.startswith(f"deployed {fn} version 1 (wasm, ")
    assert "with " in deployed and "manifest.json" in deployed
    answer = ok(run("invoke", fn, "-d", '{"hello": "world"}', env=env))
    assert json.loads(answer) == {"hello": "world"}
    logs = ok(run("logs", fn, "--limit", "1", env=env))
    assert "[log] echoing the input" in logs


def test_new_refuses_what_it_cannot_write(env, tmp_path):
    fn = unique("new-twice")
    ok(run("new", fn, env=env, cwd=tmp_path))
    again = run("new", fn, "--lang", "wat", env=env, cwd=tmp_path)
    assert again.returncode == 1 and "exists already" in one_line_error(again)
    bad = run("new", "Not_An_Id", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "cannot be a function id" in one_line_error(bad)
    assert not (tmp_path / "Not_An_Id").exists()
    helped = ok(run("new", "--help", env=env))
    assert "js: handler.js on the QuickJS-ng engine" in " ".join(helped.split())


def test_new_c_builds_with_make_deploys_and_answers(env, tmp_path):
    if missing := clang_missing():
        pytest.skip(f"{missing}: `make test` installs the C toolchain (system-packages)")
    fn = unique("new-c")
    made = run("new", fn, "--lang", "c", env=env, cwd=tmp_path)
    assert ok(made).splitlines() == [
        f"created {fn}/ (c): {fn}.c, Makefile, manifest.json, README.md",
        f"next: make -C {fn}",
        f"      tiergate deploy {fn}/{fn}.wasm",
        f"      tiergate invoke {fn} -d '{{\"name\": \"you\"}}'",
    ]
    assert made.stderr == ""  # the toolchain is here: nothing to install
    readme = (tmp_path / fn / "README.md").read_text()
    assert f"make -C {fn}\n" in readme and f"tiergate deploy {fn}/{fn}.wasm\n" in readme
    built = subprocess.run(["make", "-C", fn], cwd=tmp_path, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "clang --target=wasm32-wasi -O2 -Wall -Wextra" in built.stdout
    assert built.stderr == ""  # no compiler warning either
    deployed = ok(run("deploy", f"{fn}/{fn}.wasm", env=env, cwd=tmp_path))
    assert deployed.startswith(f"deployed {fn} version 1 (wasm, ")
    assert "manifest.json" in deployed
    assert json.loads(ok(run("invoke", fn, "-d", '{"name": "you"}', env=env))) == {
        "message": "hello, you!"}
    assert json.loads(ok(run("invoke", fn, env=env))) == {"message": "hello, world!"}
    # Its scanner passes over other fields, nested ones named "name" too, and keeps escapes.
    tricky = '{"tags": {"name": "no"}, "n": [1, "]}"], "name": "a \\"b\\" \\u00e9"}'
    assert json.loads(ok(run("invoke", fn, "-d", tricky, env=env))) == {
        "message": 'hello, a "b" \u00e9!'}
    assert "greeting you" in ok(run("logs", fn, "--limit", "5", env=env))
    refused = run("invoke", fn, "-d", '{"name": 3}', env=env)
    assert "/name: 3 is not of type 'string'" in one_line_error(refused)


def test_new_js_builds_its_engine_and_script_into_one_module_that_answers(env, tmp_path):
    if missing := clang_missing():
        pytest.skip(f"{missing}: `make test` installs the C toolchain (system-packages)")
    fn = unique("new-js")
    made = run("new", fn, "--lang", "js", env=env, cwd=tmp_path)
    assert ok(made).splitlines()[:3] == [
        f"created {fn}/ (js): handler.js, runner.c, Makefile, manifest.json, README.md",
        f"next: make -C {fn}",
        f"      tiergate deploy {fn}/{fn}.wasm",
    ]
    assert "clang" not in made.stderr
    # The engine's source is fetched with pip and compiled into CACHE (here: this test's own).
    make = ["make", "-C", fn, f"PYTHON={sys.executable}", f"CACHE={tmp_path / 'engine'}"]
    built = subprocess.run(make, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "compiling the JavaScript engine's quickjs.c" in built.stdout
    assert ok(run("deploy", f"{fn}/{fn}.wasm", env=env, cwd=tmp_path)).startswith(
        f"deployed {fn} version 1 (wasm, ")
    assert json.loads(ok(run("invoke", fn, "-d", '{"name": "you"}', env=env))) == {
        "message": "hello, you!"}
    assert json.loads(ok(run("invoke", fn, env=env))) == {"message": "hello, world!"}
    assert "greeting you" in ok(run("logs", fn, "--limit", "5", env=env))
    # Another script: only it is built again; async handlers, context and errors work.
    (tmp_path / fn / "handler.js").write_text(
        "async function handler(event, context) {\n"
        "  if (event.fail) throw new Error('asked to fail');\n"
        "  const sum = await Promise.resolve(event.values.reduce((a, b) => a + b, 0));\n"
        "  return { message: `${context.function_id}: ${sum}` };\n"
        "}\n")
    rebuilt = subprocess.run(make, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "compiling the JavaScript engine" not in rebuilt.stdout
    ok(run("deploy", f"{fn}/{fn}.wasm", env=env, cwd=tmp_path))
    assert json.loads(ok(run("invoke", fn, "-d", '{"values": [1, 2, 3]}', env=env))) == {
        "message": f"{fn}: 6"}
    failed = run("invoke", fn, "-d", '{"fail": true}', env=env)
    assert failed.returncode == 5 and "Error: asked to fail" in one_line_error(failed)


def test_new_c_without_the_toolchain_still_writes_and_says_what_to_install(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    made = run("new", "bare", "--lang", "c", env={"PATH": str(bin_dir)}, cwd=tmp_path)
    assert made.returncode == 0 and (tmp_path / "bare" / "bare.c").is_file()
    assert made.stderr.startswith("warning: clang is not installed, so `make -C bare` cannot")
    assert "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" in made.stderr
    # A clang without wasi-libc: `new` says so, and the build's last line says what to do.
    fake = bin_dir / "clang"
    fake.write_text("#!/bin/sh\necho \"x.c:1:10: fatal error: 'stdio.h' file not found\" >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    made = run("new", "halfway", "--lang", "c", env={"PATH": path}, cwd=tmp_path)
    assert made.returncode == 0
    assert made.stderr.startswith(
        "warning: clang cannot build for wasm32-wasi here (x.c:1:10: fatal error: 'stdio.h'")
    built = subprocess.run(["make", "-C", "halfway"], cwd=tmp_path, capture_output=True,
                           text=True, env={**os.environ, "PATH": path})
    assert built.returncode != 0
    last = built.stderr.strip().splitlines()[-2]  # make's own "*** ... Error 1" comes last
    assert last.startswith("error: building halfway.wasm failed;")
    assert last.endswith("apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32, "
                         "or make CC=<wasi-sdk>/bin/clang")


def test_new_js_says_when_python3_has_no_pip_to_fetch_the_engine(tmp_path):
    if missing := clang_missing():
        pytest.skip(f"{missing}: `make test` installs the C toolchain (system-packages)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    (bin_dir / "python3").chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    made = run("new", "nopip", "--lang", "js", env={"PATH": path}, cwd=tmp_path)
    assert made.returncode == 0 and (tmp_path / "nopip" / "handler.js").is_file()
    assert made.stderr.startswith(
        "warning: python3 has no pip, which the first `make -C nopip` needs to fetch")
    named = made.stderr.strip().rsplit("or make -C nopip PYTHON=", 1)[1]  # the CLI's own python
    assert Path(named).parent == Path(sys.executable).parent, made.stderr


def test_deploy_takes_another_manifest_over_manifest_json(env, tmp_path):
    fn = unique("new-override")
    ok(run("new", fn, env=env, cwd=tmp_path))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"description": "from --manifest"}))
    deployed = ok(run("deploy", fn, "--manifest", str(other), env=env, cwd=tmp_path))
    assert "with " not in deployed
    shown = json.loads(ok(run("deploy", fn, "--manifest", str(other), "--json", env=env,
                              cwd=tmp_path)))
    assert shown["id"] == fn and shown["version"] == 2
    versions = json.loads(ok(run("versions", fn, "--json", env=env)))
    assert [v["description"] for v in versions] == ["from --manifest"] * 2


# ---- versions, rollback, delete ------------------------------------------------------------


def test_versions_and_rollback(env):
    fn = unique("ver")
    deploy_example(env, "hello.wat", fn)
    deploy_example(env, "echo.wat", fn)
    rows = table(ok(run("versions", fn, env=env)))
    assert rows[0] == ["VERSION", "RUNTIME", "DEPLOYED", "SIZE", "SHA256", "DESCRIPTION"]
    assert rows[1][:2] == ["1", "wasm"] and rows[2][:3] == ["*", "2", "wasm"]
    as_json = json.loads(ok(run("versions", fn, "--json", env=env)))
    assert [v["version"] for v in as_json] == [1, 2]
    assert rows[1][4:6] == [f"{as_json[0]['code_size']}B", as_json[0]["code_sha256"][:12]]
    assert ok(run("rollback", fn, "1", env=env)).strip() == (
        f"rolled back {fn}: calls now run version 1")
    assert json.loads(ok(run("invoke", fn, env=env))) == {"message": "hello from wasm"}
    rows = table(ok(run("versions", fn, env=env)))
    assert rows[1][:2] == ["*", "1"] and rows[2][0] == "2"
    assert json.loads(ok(run("rollback", fn, "2", "--json", env=env))) == {
        "id": fn, "latest_version": 2}
    missing = run("rollback", fn, "9", env=env)
    assert missing.returncode == 3 and "version_not_found" in one_line_error(missing)


@pytest.mark.parametrize("command", [
    ("versions",), ("rollback", "1"), ("delete", "--yes"), ("logs",), ("logs", "--follow"),
    ("alias", "list"), ("alias", "set", "prod", "1"),
])
def test_an_unknown_function_exits_3(env, command):
    name, *rest = command
    if name == "alias":
        args = ["alias", rest[0], unique("nowhere"), *rest[1:]]
    else:
        args = [name, unique("nowhere"), *rest]
    missing = run(*args, env=env)
    assert missing.returncode == 3, missing.stderr
    assert "function_not_found" in one_line_error(missing)


def test_delete_asks_unless_yes_and_refuses_when_it_cannot_ask(env):
    fn = unique("del")
    deploy_example(env, "echo.wat", fn)
    unasked = run("delete", fn, env=env)  # stdin a pipe: no one to ask
    assert unasked.returncode == 2 and "pass --yes" in one_line_error(unasked)
    ok(run("versions", fn, env=env))  # still there
    assert ok(run("delete", fn, "--yes", env=env)).strip() == f"deleted {fn}"
    gone = run("versions", fn, env=env)
    assert gone.returncode == 3 and "function_not_found" in one_line_error(gone)


def _on_a_terminal(args, answer: bytes, env):
    """``tiergate ARGS`` with a terminal for stdin, typing ``answer`` once it asks."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
    full_env.update(env)
    main, other = pty.openpty()
    try:
        process = subprocess.Popen([TIERGATE, *args], stdin=other, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=full_env)
        os.close(other)
        os.write(main, answer)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(main)
    return process.returncode, out.decode(), err.decode()


def test_delete_on_a_terminal_asks_first(env):
    fn = unique("del-ask")
    deploy_example(env, "echo.wat", fn)
    deploy_example(env, "echo.wat", fn)
    ok(run("alias", "set", fn, "prod", "1", env=env))
    code, out, err = _on_a_terminal(["delete", fn], b"n\n", env)
    assert code == 1 and out == ""
    assert f"Delete {fn}: 2 versions and 1 alias? [y/N]" in err
    assert f"error: {fn} not deleted: you did not confirm" in err
    ok(run("versions", fn, env=env))
    code, out, err = _on_a_terminal(["delete", fn], b"y\n", env)
    assert code == 0 and out.strip() == f"deleted {fn}", err
    assert run("versions", fn, env=env).returncode == 3
    code, out, err = _on_a_terminal(["delete", unique("nowhere")], b"y\n", env)
    assert code == 3 and "function_not_found" in err and "[y/N]" not in err  # not asked


# ---- aliases -------------------------------------------------------------------------------


def test_alias_set_list_delete(env):
    fn = unique("ali")
    deploy_example(env, "hello.wat", fn)
    deploy_example(env, "echo.wat", fn)
    assert ok(run("alias", "list", fn, env=env)).startswith(f"no aliases of {fn}")
    assert json.loads(ok(run("alias", "list", fn, "--json", env=env))) == []
    said = ok(run("alias", "set", fn, "prod", "2", "--weight", "1=0.25",
                  "--description", "canary", env=env))
    assert said.strip() == f"alias {fn}:prod points at version 2 (0.25 to version 1)"
    made = json.loads(ok(run("alias", "set", fn, "stable", "1", "--json", env=env)))
    assert made["name"] == "stable" and made["version"] == 1 and made["weights"] == {}
    rows = table(ok(run("alias", "list", fn, env=env)))
    assert rows[0] == ["NAME", "VERSION", "WEIGHTS", "UPDATED", "DESCRIPTION"]
    assert rows[1][:3] == ["prod", "2", "1=0.25"] and rows[1][-1] == "canary"
    assert rows[2][:3] == ["stable", "1", "-"]
    assert json.loads(ok(run("invoke", f"{fn}:stable", env=env))) == {"message": "hello from wasm"}
    listed = json.loads(ok(run("alias", "list", fn, "--json", env=env)))
    assert [a["name"] for a in listed] == ["prod", "stable"]
    assert ok(run("alias", "delete", fn, "stable", env=env)).strip() == (
        f"deleted alias {fn}:stable")
    again = run("alias", "delete", fn, "stable", env=env)
    assert again.returncode == 3 and "alias_not_found" in one_line_error(again)
    bad = run("alias", "set", fn, "prod", "2", "--weight", "half", env=env)
    assert bad.returncode == 2 and "VERSION=SHARE" in one_line_error(bad)
    nowhere = run("alias", "set", fn, "prod", "7", env=env)
    assert nowhere.returncode == 3 and "version_not_found" in one_line_error(nowhere)
    refused = run("alias", "set", fn, "prod", "2", "--weight", "1=1.5", env=env)
    assert refused.returncode == 1 and "HTTP 400" in one_line_error(refused)


# ---- logs --follow -------------------------------------------------------------------------


class Follower:
    """``tiergate logs ... --follow`` running, its stdout read line by line as it comes."""

    def __init__(self, args, env):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
        full_env.update(env)
        self.process = subprocess.Popen(
            [TIERGATE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, env=full_env,
        )
        self.buffer = b""

    def lines_until(self, predicate, timeout=30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.buffer.decode().splitlines()
            if predicate(lines):
                return lines
            left = deadline - time.monotonic()
            assert left > 0, f"not printed in {timeout} s: {lines}"
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"ended early: {self.process.wait()} {self.process.stderr.read()}"
                self.buffer += chunk

    def interrupt(self):
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err.decode()


def test_logs_follow_prints_new_executions_until_ctrl_c(env):
    fn = unique("follow")
    deploy_example(env, "hello.wat", fn)
    ok(run("invoke", fn, "-d", '"before"', env=env))
    follower = Follower(["logs", fn, "--follow", "--interval", "0.2"], env)
    try:
        first = follower.lines_until(lambda lines: any("[log] saying hello" in x for x in lines))
        assert sum(" completed " in line for line in first) == 1  # the one before
        ok(run("invoke", fn, "-d", '"one"', env=env))
        ok(run("invoke", fn, "-d", '"two"', "--async", env=env))
        lines = follower.lines_until(
            lambda lines: sum(" completed " in line for line in lines) == 3)
    finally:
        code, err = follower.interrupt()
    assert code == 0, err
    assert "log lines as they are written" in err and "(Ctrl-C stops)" in err
    assert "Traceback" not in err
    heads = [line for line in lines if " completed " in line]
    assert len(heads) == 3 and sorted(heads) == heads  # oldest first, each once
    assert lines.count("    [log] saying hello") == 1  # the one before, printed whole
    live = [x for x in lines if x.endswith("  [log] saying hello") and not x.startswith(" ")]
    assert len(live) == 2 and all(line.split()[0] in " ".join(heads) for line in live)


def test_logs_follow_json_prints_a_document_a_line(env):
    fn = unique("follow-json")
    deploy_example(env, "echo.wat", fn)
    ok(run("invoke", fn, "-d", "1", env=env))
    ok(run("invoke", fn, "-d", "2", env=env))
    follower = Follower(["logs", fn, "-f", "--json", "--limit", "1", "--interval", "0.2"], env)
    try:
        follower.lines_until(lambda lines: len(lines) == 1)
        ok(run("invoke", fn, "-d", "3", env=env))
        lines = follower.lines_until(lambda lines: len(lines) == 2)
    finally:
        code, _ = follower.interrupt()
    assert code == 0
    documents = [json.loads(line) for line in lines]
    assert [d["status"] for d in documents] == ["completed", "completed"]
    assert documents[0]["execution_id"] < documents[1]["execution_id"]
    as_json = json.loads(ok(run("logs", fn, "--json", env=env)))
    assert len(as_json) == 3 and as_json[0]["execution_id"] == documents[1]["execution_id"]


# ---- review tasks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def waiting(tiergate_server):
    """A function that always needs a person, and a way to start one of its executions."""
    fn = unique("cli-review")
    with tiergate_server.client() as api:
        deployed = api.post("/deploy", json={
            "id": fn, "runtime": "python", "code": NEEDS_A_PERSON, "retry": {"attempts": 0},
            "output_schema": APPROVAL, "tiers": {"human": {"instructions": "Approve the order?"}},
        })
        assert deployed.status_code == 201, deployed.text

    def start(order: int) -> tuple[str, str]:
        with tiergate_server.client() as api:
            execution = api.post(f"/invoke/{fn}", json={"order": order}).json()
            assert execution["status"] == "awaiting_human", execution
            tasks = api.get("/tasks").json()["tasks"]
        task = next(t for t in tasks if t["execution_id"] == execution["execution_id"])
        return task["id"], execution["execution_id"]

    return fn, start


def test_tasks_list_show_claim_release(env, waiting):
    fn, start = waiting
    task, execution = start(1)
    for args in (("tasks",), ("tasks", "list"), ("tasks", "--status", "pending")):
        rows = table(ok(run(*args, env=env)))
        assert rows[0][:3] == ["TASK", "FUNCTION", "STATUS"]
        assert [task, fn, "pending"] in [row[:3] for row in rows]
    listed = json.loads(ok(run("tasks", "list", "--status", "all", "--json", env=env)))
    assert any(t["id"] == task and t["status"] == "pending" for t in listed)
    shown = ok(run("tasks", "show", task, env=env))
    assert shown.splitlines()[0] == f"task {task} of {fn} (execution {execution}): pending"
    assert "instructions: Approve the order?" in shown
    assert '"order": 1' in shown and "output schema (an answer must fit it):" in shown
    assert "ValueError: a person decides" in shown
    assert f"tiergate tasks answer {task} -d JSON" in shown
    document = json.loads(ok(run("tasks", "show", task, "--json", env=env)))
    assert document["output_schema"] == APPROVAL and document["input"] == {"order": 1}
    claimed = ok(run("tasks", "claim", task, env=env))
    assert claimed.startswith(f"claimed task {task} until ")
    assert json.loads(ok(run("tasks", "show", task, "--json", env=env)))["claimed_by"]
    assert ok(run("tasks", "release", task, "--json", env=env)) and not json.loads(
        ok(run("tasks", "show", task, "--json", env=env)))["claimed_by"]
    assert ok(run("tasks", "claim", task, "--json", env=env))
    assert ok(run("tasks", "release", task, env=env)).strip() == f"released task {task}"


def test_tasks_answer_checks_the_schema_then_completes(tiergate_server, env, waiting):
    _, start = waiting
    task, execution = start(2)
    broken = run("tasks", "answer", task, "-d", '{"approved": "yes", "note": 5}', env=env)
    line = one_line_error(broken)
    assert broken.returncode == 1 and "(invalid_output, HTTP 400)" in line
    assert "/approved: 'yes' is not of type 'boolean'" in line and "/note: 5" in line
    missing = run("tasks", "answer", task, "-d", "{}", env=env)
    assert missing.returncode == 1
    assert "/: 'approved' is a required property" in one_line_error(missing)
    not_json = run("tasks", "answer", task, "-d", "{nope", env=env)
    assert not_json.returncode == 2 and "--data is not valid JSON" in one_line_error(not_json)
    answered = run("tasks", "answer", task, "-d", "@-", env=env, input='{"approved": true}')
    assert ok(answered).strip() == (
        f"answered task {task}: execution {execution} completed (tier human)")
    with tiergate_server.client() as api:
        record = api.get(f"/executions/{execution}").json()
    assert record["output"] == {"approved": True} and record["tier"] == "human"
    again = run("tasks", "answer", task, "-d", '{"approved": false}', env=env)
    assert again.returncode == 1 and "already completed" in one_line_error(again)


def test_tasks_answer_json_and_reject(env, waiting, tmp_path):
    _, start = waiting
    task, execution = start(3)
    answer = tmp_path / "answer.json"
    answer.write_text('{"approved": false, "note": "too big"}')
    done = json.loads(ok(run("tasks", "answer", task, "-d", f"@{answer}", "--json", env=env)))
    assert done["execution_id"] == execution and done["status"] == "completed"
    assert done["output"] == {"approved": False, "note": "too big"} and done["tier"] == "human"
    task, execution = start(4)
    rejected = ok(run("tasks", "reject", task, "--reason", "not ours", env=env))
    assert rejected.strip() == f"rejected task {task}: execution {execution} failed"
    shown = ok(run("tasks", "show", task, env=env))
    assert shown.splitlines()[0].endswith(": rejected") and "reason: not ours" in shown
    no_reason = run("tasks", "reject", task, env=env)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr


@pytest.mark.parametrize("command", [
    ("show",), ("claim",), ("release",), ("answer", "-d", "{}"), ("reject", "--reason", "x"),
])
def test_an_unknown_task_exits_3(env, command):
    name, *rest = command
    missing = run("tasks", name, "t_" + "0" * 20, *rest, env=env)
    assert missing.returncode == 3, missing.stderr
    assert "task_not_found" in one_line_error(missing)


def test_tasks_with_a_review_key(tiergate_server, env, waiting):
    tenant = unique("reviewers")
    with tiergate_server.client() as api:
        key = api.post("/admin/keys", json={"tenant": tenant, "roles": ["review"]}).json()["key"]
    reviewer = {**env, "TIERGATE_KEY": key}
    assert ok(run("tasks", env=reviewer)).strip() == "no pending tasks"
    assert json.loads(ok(run("tasks", "list", "--status", "all", "--json", env=reviewer))) == []
    refused = run("versions", waiting[0], env=reviewer)
    assert refused.returncode == 4, refused.stderr


# ---- --json elsewhere ----------------------------------------------------------------------


def test_json_on_the_other_commands(env, tmp_path):
    fn = unique("json")
    deployed = json.loads(ok(run("deploy", str(EXAMPLES / "hello.wat"), "--id", fn, "--json",
                                 env=env)))
    assert deployed["id"] == fn and deployed["version"] == 1 and deployed["runtime"] == "wasm"
    listed = json.loads(ok(run("functions", "--json", env=env)))
    assert any(f["id"] == fn and f["latest_version"] == 1 for f in listed)
    execution = json.loads(ok(run("invoke", fn, "--json", env=env)))
    assert execution["status"] == "completed" and execution["output"] == {
        "message": "hello from wasm"}
    entries = json.loads(ok(run("logs", fn, "--json", env=env)))
    assert [e["execution_id"] for e in entries] == [execution["execution_id"]]
    assert entries[0]["logs"][0]["message"] == "saying hello"
    graph = tmp_path / "g.json"
    graph_id = unique("jsongraph")
    graph.write_text(json.dumps({"id": graph_id, "nodes": {"a": {"function": fn}}}))
    made = json.loads(ok(run("graph", "deploy", str(graph), "--json", env=env)))
    assert made["id"] == graph_id and made["version"] == 1
    graphs = json.loads(ok(run("graph", "list", "--json", env=env)))
    assert any(g["id"] == graph_id for g in graphs)
    sent = json.loads(ok(run("events", "send", unique("nothing.listens"), "--json", env=env)))
    assert sent["started"] == [] and sent["event_id"]


# ---- completion ----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(shell):
    script = ok(run("completion", shell, env={}))
    assert "_TIERGATE_COMPLETE" in script and f"{shell}_complete" in script


def test_clicks_own_completion_works_as_documented():
    sourced = ok(run(env={"_TIERGATE_COMPLETE": "bash_source"}))
    assert sourced == ok(run("completion", "bash", env={}))
    offered = ok(run(env={"_TIERGATE_COMPLETE": "bash_complete", "COMP_WORDS": "tiergate ta",
                          "COMP_CWORD": "1"}))
    assert offered.split() == ["plain,tasks"]
    offered = ok(run(env={"_TIERGATE_COMPLETE": "bash_complete", "COMP_WORDS": "tiergate tasks ",
                          "COMP_CWORD": "2"}))
    assert {"plain,answer", "plain,list", "plain,reject", "plain,show"} <= set(offered.split())
    unknown = run("completion", "tcsh", env={})
    assert unknown.returncode == 2
