"""What a hostile WebAssembly function can fill is bounded: its logs and output in the shared wasm
workers, the scratch files of WASI stdout and stderr, its tables and memories, and the compile
of its module at deploy — and none of it reaches another function's calls or deploys."""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading

import pytest
from conftest import assert_problem, deploy_wat, eventually, example, fixture, unique

from plugins.logs import ENTRY_BYTES, ENTRY_OVERHEAD, EXECUTION_BYTES
from plugins.workers import FrameReader, encode

OUTPUT_KB = 64
COMPILE_TIMEOUT_S = 3
MAX_MODULE_MB = 4


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A gateway with one wasm worker to watch, a small module cap and a short compile timeout."""
    from plugins.testing import TiergateServer

    env = {
        "TIERGATE_WASM_WORKERS": "1",
        "TIERGATE_WASM_MAX_MODULE_MB": str(MAX_MODULE_MB),
        "TIERGATE_COMPILE_TIMEOUT_S": str(COMPILE_TIMEOUT_S),
    }
    server = TiergateServer(tmp_path_factory.mktemp("wasm-bounds"), env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(bounded):
    with bounded.client() as client:
        yield client


def children(server, marker: bytes) -> set[int]:
    """The gateway's child processes whose command line holds ``marker``."""
    found = set()
    pid = server.process.pid
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in map(int, f.read().split()):
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                        if marker in cmdline.read():
                            found.add(child)
                except FileNotFoundError:
                    pass
    return found


def wasm_workers(server) -> set[int]:
    return children(server, b"plugins.wasm.worker")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def deploy_fixture(api, name: str, **manifest) -> str:
    fn = unique(name.split(".")[0])
    r = api.post("/deploy", json={"id": fn, "runtime": "wasm", "code": fixture(name), **manifest})
    assert r.status_code == 201, r.text
    return fn


def test_a_core_log_flood_is_capped_as_it_is_captured(gate, bounded):
    fn = deploy_fixture(gate, "log-flood.wat")
    workers = wasm_workers(bounded)
    assert workers
    answer = gate.post(f"/invoke/{fn}", json=None)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == {"logged": 2000}
    record = gate.get(f"/executions/{answer.json()['execution_id']}").json()
    logs = record["logs"]
    assert logs == answer.json()["logs"]
    *kept, summary = logs
    assert all(len(e["message"].encode()) <= ENTRY_BYTES for e in logs)
    assert sum(len(e["message"].encode()) for e in logs) <= EXECUTION_BYTES
    assert all(e["message"].endswith("[entry cut at 8 KiB]") for e in kept)
    dropped = re.fullmatch(
        r"dropped (\d+) bytes of logs in (\d+) entries \(.*\)", summary["message"]
    )
    assert dropped, summary
    assert len(kept) + int(dropped.group(2)) == 2000
    assert int(dropped.group(1)) > 100 * 1024 * 1024  # counted, never copied
    assert wasm_workers(bounded) >= workers  # the worker that ran it is still the same process
    for pid in workers:
        assert peak_rss_mb(pid) < 256  # the flood was 125 MiB of text: it never all sat in memory


def test_many_tiny_log_entries_are_bounded_in_number(gate):
    fn = deploy_fixture(gate, "log-many.wat")
    answer = gate.post(f"/invoke/{fn}", json=None).json()
    assert answer["output"] == {"logged": 200000}
    *kept, summary = answer["logs"]
    assert len(kept) <= EXECUTION_BYTES // ENTRY_OVERHEAD
    dropped = re.search(r"in (\d+) entries", summary["message"])
    assert dropped and len(kept) + int(dropped.group(1)) == 200000


def test_wasi_output_is_cut_off_during_the_call(gate, bounded):
    fn = deploy_fixture(
        gate, "wasi-flood.wat", limits={"max_output_kb": OUTPUT_KB, "timeout_ms": 1000}
    )
    echo = unique("echo")
    deploy_wat(gate, echo)
    workers = wasm_workers(bounded)
    assert workers
    largest: dict[str, int] = {}
    running = threading.Event()
    running.set()

    def watch() -> None:  # the stream files of every worker, sampled while the flood runs
        while running.is_set():
            for pid in workers:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        name = os.readlink(f"/proc/{pid}/fd/{fd}")
                        size = os.stat(f"/proc/{pid}/fd/{fd}").st_size
                    except FileNotFoundError:
                        continue
                    if "tiergate-wasi" in name:
                        largest[name] = max(largest.get(name, 0), size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        problem = assert_problem(gate.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    finally:
        running.clear()
        watcher.join()
    [attempt] = problem["attempts"]
    assert attempt["status"] == "failed" and attempt["code"] == "output_too_large"
    assert f"limits.max_output_kb ({OUTPUT_KB} KiB)" in attempt["error"]
    assert {n.split()[0] for n in largest} == {
        "/memfd:tiergate-wasi-stdout",
        "/memfd:tiergate-wasi-stderr",
    }
    assert max(largest.values()) <= OUTPUT_KB * 1024 + 1, largest
    assert gate.post(f"/invoke/{echo}", json={"after": 1}).json()["output"] == {"after": 1}
    assert wasm_workers(bounded) >= workers


def test_a_write_past_the_cut_is_a_wasi_error_the_module_sees(gate):
    fn = deploy_fixture(gate, "wasi-stderr-until-error.wat", limits={"max_output_kb": OUTPUT_KB})
    problem = assert_problem(gate.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    assert problem["attempts"][0]["error"].startswith("exited with status 22")  # WASI errno fbig
    logs = gate.get(f"/executions/{problem['execution_id']}").json()["logs"]
    stderr = [e["message"] for e in logs if e["stream"] == "stderr"]
    assert 0 < sum(len(line) for line in stderr) <= OUTPUT_KB * 1024  # lines of the first 64 KiB


def test_core_output_over_the_cap_fails_before_it_is_copied(gate):
    fn = deploy_fixture(gate, "big-output.wat", limits={"max_output_kb": 1024})
    problem = assert_problem(gate.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
    [attempt] = problem["attempts"]
    assert attempt["code"] == "output_too_large"
    assert attempt["error"] == ("the output is 2097152 bytes, over limits.max_output_kb (1024 KiB)")


def test_a_call_blocked_in_a_host_call_ends_soon_after_its_deadline(gate):
    fn = deploy_fixture(gate, "wasi-sleep.wat", limits={"timeout_ms": 500})
    echo = unique("echo")
    deploy_wat(gate, echo)  # 30 s of timeout: its deadline must not become the sleeper's
    assert gate.post(f"/invoke/{echo}", json=1).json()["output"] == 1
    problem = assert_problem(gate.post(f"/invoke/{fn}", json=1), 504, "timeout")
    [attempt] = problem["attempts"]
    assert attempt["status"] == "timeout"  # not retried on another worker with a fresh budget
    assert "blocked where it could not be interrupted" in attempt["error"]
    assert attempt["duration_ms"] < 20_000  # its deadline and a grace, not echo's 30 s
    after = gate.post(f"/invoke/{echo}", json=2).json()
    assert after.get("output") == 2, after


def test_tables_and_memories_are_bounded(gate):
    grow = deploy_fixture(gate, "table-grow.wat")
    grown = gate.post(f"/invoke/{grow}", json=1).json()
    assert grown.get("output") == "refused", grown
    two = deploy_fixture(gate, "two-memories.wat")
    problem = assert_problem(gate.post(f"/invoke/{two}", json=1), 500, "cascade_exhausted")
    assert "memory count" in problem["attempts"][0]["error"]


def test_a_module_over_the_size_cap_is_refused(gate, bounded):
    fn = unique("huge")
    code = b"\0asm\1\0\0\0" + bytes(MAX_MODULE_MB * 1024 * 1024)
    r = gate.post(
        "/deploy",
        files={
            "manifest": (None, f'{{"id": "{fn}", "runtime": "wasm"}}'),
            "code": ("huge.wasm", code, "application/wasm"),
        },
    )
    problem = assert_problem(r, 413, "payload_too_large")
    assert f"limit of {MAX_MODULE_MB} MiB (TIERGATE_WASM_MAX_MODULE_MB)" in problem["detail"]
    assert not children(bounded, b"plugins.wasm.compiler")  # refused before any compile began
    assert_problem(gate.get(f"/functions/{fn}"), 404, "function_not_found")


def slow_module(nlocals: int, steps: int) -> str:
    """A core module that is small but slow to compile: one function keeping ``nlocals`` values
    alive through ``steps`` updates (register allocation grows faster than the code)."""
    locals_ = "".join(f"(local $l{i} i32)" for i in range(nlocals))
    body = [f"(local.set $l{i} (i32.add (local.get $p) (i32.const {i})))" for i in range(nlocals)]
    for s in range(steps):
        i, j, k = s % nlocals, (s * 7 + 3) % nlocals, (s * 13 + 5) % nlocals
        product = f"(i32.mul (local.get $l{k}) (local.get $p))"
        body.append(f"(local.set $l{i} (i32.add (local.get $l{j}) {product}))")
    total = "(local.get $l0)" + "".join(f"(i32.add (local.get $l{i}))" for i in range(1, nlocals))
    return (
        '(module (memory (export "memory") 1)'
        f"(func $slow (param $p i32) (result i32) {locals_} {''.join(body)} {total})"
        '(func (export "alloc") (param i32) (result i32) (i32.const 1024))'
        '(func (export "handle") (param i32 i32) (result i64) (i64.const 0)))'
    )


def test_a_compile_over_the_timeout_is_a_compile_error_and_stores_nothing(gate, bounded):
    fn = unique("slowc")
    deploy_wat(gate, fn)
    r = gate.post("/deploy", json={"id": fn, "runtime": "wasm", "code": slow_module(1500, 30000)})
    problem = assert_problem(r, 422, "compile_error")
    assert f"compiling took longer than {COMPILE_TIMEOUT_S} s" in problem["detail"]
    assert "TIERGATE_COMPILE_TIMEOUT_S" in problem["detail"]
    versions = gate.get(f"/functions/{fn}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1]
    assert gate.post(f"/invoke/{fn}", json={"still": "v1"}).json()["output"] == {"still": "v1"}
    assert not children(bounded, b"plugins.wasm.compiler")  # killed, not left running


def test_a_small_deploy_never_waits_behind_big_compiles(api, tiergate_server):
    big = slow_module(1000, 20000)
    assert len(big) > 1024 * 1024  # a big module by size, as well as slow to compile

    def deploy_big():
        return api.post("/deploy", json={"id": unique("big"), "runtime": "wasm", "code": big})

    other = api.post("/admin/keys", json={"tenant": unique("small"), "roles": ["deploy"]})
    with concurrent.futures.ThreadPoolExecutor(2) as pool, \
            tiergate_server.client(other.json()["key"]) as neighbour:
        bigs = [pool.submit(deploy_big) for _ in range(2)]
        eventually(lambda: children(tiergate_server, b"plugins.wasm.compiler"), timeout=30)
        small = neighbour.post(
            "/deploy", json={"id": unique("small"), "runtime": "wasm", "code": example("echo.wat")}
        )
        assert small.status_code == 201, small.text
        assert not any(b.done() for b in bigs)  # both still compiling, or waiting for a slot
        assert all(b.result().status_code == 201 for b in bigs)


def test_a_frame_over_the_bound_is_refused_before_it_is_buffered():
    reader = FrameReader(max_frame=1024)
    assert [f.meta for f in reader.feed(encode(1, ["ok"], b"x" * 1000))] == [["ok"]]
    with pytest.raises(ValueError, match="larger than 1024"):
        list(reader.feed(encode(2, ["ok"], b"x" * 2000)[:16]))
