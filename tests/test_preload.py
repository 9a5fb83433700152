"""``tiergate serve --deploy DIR`` (what ``make run`` uses): every example is deployed once, and a
restart does not pile up versions."""

from __future__ import annotations

from conftest import EXAMPLES

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
