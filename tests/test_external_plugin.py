"""An outside runtime plugin, installed the way its authors would, is found through the
``tiergate`` entry-point group, listed by ``tiergate runtimes``, and deploys and invokes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_problem, eventually, one_line_error, run_cli

from gateway.sdk import Client

PLUGIN = ROOT / "examples" / "plugins" / "tiergate-javascript"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed():
    if not shutil.which("node"):
        pytest.skip("node is not installed on this machine")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(PLUGIN)]
    subprocess.run(pip, check=True, capture_output=True)
    yield
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "tiergate-javascript"],
        check=True,
        capture_output=True,
    )


def test_discovered_listed_deployed_invoked(installed, tiergate_factory):
    listing = subprocess.run([str(BIN / "tiergate"), "runtimes"], capture_output=True, text=True)
    row = next(
        line.split() for line in listing.stdout.splitlines() if line.startswith("javascript")
    )
    assert row[:4] == ["javascript", "active", "tiergate-javascript", "0.1.0"]
    server = tiergate_factory()
    with server.client() as api:
        r = api.post(
            "/deploy",
            json={
                "id": "js-hello",
                "runtime": "javascript",
                "code": "export default (e) => ({ hi: e.name });\n",
            },
        )
        assert r.status_code == 201, r.text
        assert api.post("/invoke/js-hello", json={"name": "node"}).json()["output"] == {
            "hi": "node"
        }


def test_its_suffix_tells_deploy_the_runtime(installed, tiergate_factory, tmp_path):
    """``.mjs`` is no built-in runtime's: the CLI and the SDK ask the gateway (``GET /runtimes``,
    once per client) which runtime takes it."""
    server = tiergate_factory(args=("--access-log",))
    env = {"TIERGATE_URL": server.url, "TIERGATE_KEY": server.admin_key}
    code = tmp_path / "greet.mjs"
    code.write_text("export default (e) => ({ hi: e.name });\n")
    deployed = run_cli("deploy", str(code), env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith("deployed greet version 1 (javascript, ")
    answer = run_cli("invoke", "greet", "-d", '{"name": "node"}', env=env)
    assert json.loads(answer.stdout) == {"hi": "node"}
    with Client(server.url, server.admin_key) as tg:
        assert tg.deploy(code, id="again").runtime == "javascript"
        assert tg.deploy(code, id="and-again").runtime == "javascript"
        assert tg.deploy(ROOT / "examples" / "functions" / "echo.wat").runtime == "wasm"
        listed = {info.name: info.suffixes for info in tg.runtimes()}
    assert listed["javascript"] == (".mjs", ".js")
    # One question from the CLI's deploy, one from the SDK client's three, one from runtimes()
    # (the access log is written just after each answer).
    eventually(lambda: server.log().count('"GET /runtimes ') == 3)
    unknown = tmp_path / "code.ts"
    unknown.write_text("x")
    refused = one_line_error(run_cli("deploy", str(unknown), env=env))
    assert ".js (javascript), .mjs (javascript), .py (python)" in refused


def test_the_plugins_own_suite_passes(installed):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
        capture_output=True,
        text=True,
        cwd=PLUGIN,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


def test_missing_node_makes_the_runtime_unavailable(installed, tiergate_factory, tmp_path):
    server = tiergate_factory({"TIERGATE_JAVASCRIPT_NODE": str(tmp_path / "no-node-here")})
    with server.client() as api:
        r = api.post(
            "/deploy",
            json={"id": "js-none", "runtime": "javascript", "code": "export default () => 1;\n"},
        )
        problem = assert_problem(r, 503, "runtime_unavailable")
        assert "node not found" in problem["detail"]
    listing = subprocess.run(
        [str(BIN / "tiergate"), "runtimes"],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERGATE_JAVASCRIPT_NODE": "/nowhere/node"},
    )
    assert "unavailable: node not found" in listing.stdout
