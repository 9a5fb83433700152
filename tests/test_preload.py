"""``tiergate serve --deploy DIR`` (what ``make run`` uses): every example is deployed once, and a
restart does not pile up versions."""

from __future__ import annotations

import os

import httpx
from conftest import EXAMPLES, eventually

EXPECTED = {
    "echo",
    "hello",
    "fail",
    "loop",
    "membomb",
    "trap",
    "wasi-echo",
    "wasi-fail",
    "c-echo",
    "greet",
    "py-echo",
    "slow",
}


def test_examples_are_deployed_and_work(tiergate_factory):
    server = tiergate_factory(args=("--deploy", str(EXAMPLES)))
    with server.client() as api:
        listed = {f["id"]: f for f in api.get("/functions").json()["functions"]}
        assert set(listed) >= EXPECTED
        assert all(listed[name]["latest_version"] == 1 for name in EXPECTED)
        assert api.post("/invoke/echo", json={"a": 1}).json()["output"] == {"a": 1}
        assert api.post("/invoke/c-echo", json=[1]).json()["output"] == [1]
        assert api.post("/invoke/hello", json=None).json()["output"] == {
            "message": "hello from wasm"
        }
    server.restart()
    with server.client() as api:
        listed = {f["id"]: f for f in api.get("/functions").json()["functions"]}
        assert all(listed[name]["latest_version"] == 1 for name in EXPECTED)
        first = api.post("/invoke/echo", json=2).json()
        assert first["output"] == 2 and first["metrics"]["cold_start"] is True
    assert server.log().count("deployed echo version 1") == 1
    assert "preload: echo is up to date" in server.log()


def test_a_restart_never_takes_a_function_over_from_its_user(tiergate_factory):
    server = tiergate_factory(args=("--deploy", str(EXAMPLES)))
    with server.client() as api:
        mine = {"id": "echo", "runtime": "wasm", "code": (EXAMPLES / "hello.wat").read_text()}
        assert api.post("/deploy", json=mine).json()["version"] == 2
    server.restart()
    with server.client() as api:
        assert api.get("/functions/echo").json()["latest_version"] == 2
        assert api.post("/invoke/echo", json=1).json()["output"] == {"message": "hello from wasm"}
    assert "preload: echo is left as it is: its latest version (2) was deployed by" in server.log()


def test_make_run_from_a_checkout_with_the_default_relative_data_dir(tmp_path):
    """What ``make run`` does: ``serve --deploy examples/functions`` with ``./.tiergate``."""
    import shutil
    import subprocess

    from plugins.testing import _tiergate, free_port

    shutil.copytree(EXAMPLES, tmp_path / "functions")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [_tiergate(), "serve", "--port", str(port), "--deploy", "functions"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": os.environ["PATH"]},
        )
    try:
        eventually(lambda: "serving on" in log.read_text(), timeout=90)
        key = (tmp_path / ".tiergate" / "admin.key").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {key}"}) as api:
            listed = {f["id"] for f in api.get("/functions").json()["functions"]}
            assert listed >= EXPECTED, log.read_text()
            assert api.post("/invoke/py-echo", json={"a": 1}).json()["output"] == {"a": 1}
        assert "ERROR" not in log.read_text()
    finally:
        process.terminate()
        process.wait(20)


def test_a_preload_is_audited_like_any_deploy(tiergate_factory, tmp_path):
    """``serve --deploy`` goes through the same deploy call as ``POST /deploy``: the audit trail
    shows it, and a restart that finds the file unchanged deploys (and audits) nothing."""
    import shutil

    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(EXAMPLES / "echo.wat", functions / "echo.wat")
    server = tiergate_factory(args=("--deploy", str(functions)))
    with server.client() as api:
        entries = api.get("/admin/audit").json()["entries"]
        deploys = [e for e in entries if e["action"] == "function.deploy"]
        assert [(e["target"], e["details"], e["key_id"]) for e in deploys] == [
            ("default/echo", {"version": 1}, "preload")
        ], entries
    server.restart()
    with server.client() as api:
        entries = api.get("/admin/audit").json()["entries"]
        assert len([e for e in entries if e["action"] == "function.deploy"]) == 1, entries


def test_a_preload_reaches_an_instance_sharing_the_stores_at_once(tiergate_factory, tmp_path):
    """An instance already serving a function hears of a new version that another instance's
    ``serve --deploy`` published, by the event log, not only by its slow version check."""
    import shutil

    shared = tmp_path / "shared"
    stores = {
        "TIERGATE_KV": f"sqlite://{shared}/tiergate.db",
        "TIERGATE_OBJECT_STORE": f"file://{shared}/objects",
        "TIERGATE_VERIFY_S": "600",
    }
    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(EXAMPLES / "hello.wat", functions / "greet.wat")
    first = tiergate_factory(stores, args=("--deploy", str(functions)))
    with first.client() as api:
        assert api.post("/invoke/greet", json=1).json()["version"] == 1
        shutil.copy(EXAMPLES / "echo.wat", functions / "greet.wat")
        tiergate_factory(stores, args=("--deploy", str(functions)))
        served = eventually(
            lambda: (r := api.post("/invoke/greet", json=2).json())["version"] == 2 and r,
            timeout=5,
        )
        assert served["output"] == 2


def test_a_package_directory_is_deployed_whole(tiergate_factory, tmp_path):
    """A directory holding handler.py is one function: its modules and requirements go with it,
    a NAME.json beside it adds manifest fields, nothing inside it is deployed on its own, and a
    restart finds the same zip (byte for byte) up to date."""
    import shutil

    from wheelhouse import build_wheelhouse

    functions = tmp_path / "functions"
    package = functions / "orders"
    (package / "nested").mkdir(parents=True)
    (package / "handler.py").write_text(
        "from helpers import total\n\n\ndef handler(event, context):\n    return total(event)\n")
    (package / "helpers.py").write_text(
        "from tgtest_shout import shout\n\n\ndef total(items):\n"
        "    return shout(f'total {sum(items)}')\n")
    (package / "requirements.txt").write_text("tgtest-shout==1.0\n")
    (package / "nested" / "handler.py").write_text("def handler(event, context):\n    return 0\n")
    (package / "nested" / "extra.json").write_text('{"description": "not a function"}')
    (functions / "orders.json").write_text('{"description": "sums an order"}')
    shutil.copy(EXAMPLES / "echo.wat", functions / "echo.wat")
    wheels = build_wheelhouse(tmp_path / "wheels")
    server = tiergate_factory({"TIERGATE_PYTHON_FIND_LINKS": str(wheels)},
                              args=("--deploy", str(functions)))
    with server.client() as api:
        listed = {f["id"]: f for f in api.get("/functions").json()["functions"]}
        assert set(listed) == {"orders", "echo"}, listed
        assert listed["orders"]["description"] == "sums an order"
        answer = api.post("/invoke/orders", json=[2, 3])
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == "TOTAL 5!"
    server.restart()
    with server.client() as api:
        assert api.get("/functions/orders").json()["latest_version"] == 1
    assert "preload: orders is up to date" in server.log()
