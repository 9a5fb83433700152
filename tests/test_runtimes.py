"""``GET /runtimes``: every installed runtime with the suffixes it takes and whether it can run code
here (what ``tiergate runtimes`` and ``/readyz`` say too); and ``deploy`` (SDK and CLI) telling a
file's runtime from it, with one clear line for a suffix no runtime takes. A runtime plugin's
suffix deploying without ``--runtime`` is in test_external_plugin.py."""

from __future__ import annotations

import httpx
import pytest
from conftest import assert_problem, example, one_line_error, unique
from conftest import run_cli as run

from gateway.sdk import Client

NO_BWRAP = "bubblewrap (bwrap) is not installed"


@pytest.fixture(scope="module")
def env(tiergate_server):
    return {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}


def by_name(listing: dict) -> dict[str, dict]:
    return {runtime["name"]: runtime for runtime in listing["runtimes"]}


def test_any_key_lists_the_runtimes_their_suffixes_and_readiness(tiergate_server, api):
    invoker = api.post("/admin/keys", json={"tenant": "default", "roles": ["invoke"]})
    with tiergate_server.client(invoker.json()["key"]) as as_invoker:
        answer = as_invoker.get("/runtimes")
    assert answer.status_code == 200, answer.text
    runtimes = by_name(answer.json())
    assert runtimes["wasm"] == {
        "name": "wasm",
        "description": "WebAssembly on wasmtime: WASI commands and core JSON modules",
        "suffixes": [".wasm", ".wat"],
        "status": "active",
        "ready": True,
    }
    assert runtimes["python"]["suffixes"] == [".py"]
    # The same facts /readyz gives, runtime by runtime.
    ready = api.get("/readyz").json()["runtimes"]
    assert ready == {
        name: "ok" if r["ready"] else f"{r['status']}: {r['reason']}"
        for name, r in runtimes.items()
    }
    with Client(tiergate_server.url, tiergate_server.admin_key) as tg:
        listed = {info.name: info for info in tg.runtimes()}
    assert listed["wasm"].suffixes == (".wasm", ".wat") and listed["wasm"].reason is None
    assert_problem(httpx.get(tiergate_server.url + "/runtimes"), 401, "unauthenticated")


def test_a_runtime_that_cannot_run_code_says_why(tiergate_factory, tmp_path):
    missing = str(tmp_path / "no-bwrap-here")
    server = tiergate_factory({"TIERGATE_BWRAP": missing})
    with server.client() as api:
        python = by_name(api.get("/runtimes").json())["python"]
        ready = api.get("/readyz").json()["runtimes"]
    assert python["status"] == "unavailable" and python["ready"] is False
    assert python["suffixes"] == [".py"] and NO_BWRAP in python["reason"]
    assert ready["python"] == f"unavailable: {python['reason']}" and ready["wasm"] == "ok"
    listing = run("runtimes", env={"TIERGATE_BWRAP": missing}).stdout
    assert f"unavailable: {python['reason']}" in listing


def test_deploy_names_the_suffixes_the_gateway_knows(env, tmp_path):
    odd = tmp_path / "code.txt"
    odd.write_text(example("hello.wat"))
    refused = run("deploy", str(odd), env=env)
    assert refused.returncode == 2
    assert one_line_error(refused) == (
        "error: cannot tell the runtime of code.txt: the gateway's runtimes take .py (python), "
        ".wasm (wasm), .wat (wasm), not .txt; pass --runtime"
    )
    bare = tmp_path / "Makefile"
    bare.write_text("x")
    assert "not a name without a suffix" in one_line_error(run("deploy", str(bare), env=env))
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "util.py").write_text("X = 1\n")
    empty = run("deploy", str(folder), env=env)
    assert empty.returncode == 2
    assert "lib: a directory with no handler.py" in one_line_error(empty)
    # A runtime given is used as it is: nothing to tell.
    fn = unique("given")
    deployed = run("deploy", str(odd), "--id", fn, "--runtime", "wasm", env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith(f"deployed {fn} version 1 (wasm, ")


def test_the_sdk_says_so_with_its_own_keyword(tiergate_server, tmp_path):
    odd = tmp_path / "code.rb"
    odd.write_text("puts 1")
    with (
        Client(tiergate_server.url, tiergate_server.admin_key) as tg,
        pytest.raises(ValueError) as refused,
    ):
        tg.deploy(odd)
    assert str(refused.value).endswith("not .rb; pass runtime=")
    assert ".wat (wasm)" in str(refused.value)
