"""What a hostile WebAssembly function can fill is bounded: its logs and output in the shared wasm
workers, the scratch files of WASI stdout and stderr, its tables and memories — and none of it
reaches another function's calls."""

from __future__ import annotations

import os
import re
import threading

import pytest
from conftest import assert_problem, deploy_wat, fixture, unique

from plugins.logs import ENTRY_BYTES, ENTRY_MIN_BYTES, EXECUTION_BYTES
from plugins.workers import FrameReader, encode

OUTPUT_KB = 64


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A gateway with one wasm worker to watch."""
    from plugins.testing import TiergateServer

    env = {"TIERGATE_WASM_WORKERS": "1"}
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
    assert len(kept) <= EXECUTION_BYTES // ENTRY_MIN_BYTES
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


def test_tables_and_memories_are_bounded(gate):
    grow = deploy_fixture(gate, "table-grow.wat")
    assert gate.post(f"/invoke/{grow}", json=1).json()["output"] == "refused"
    two = deploy_fixture(gate, "two-memories.wat")
    problem = assert_problem(gate.post(f"/invoke/{two}", json=1), 500, "cascade_exhausted")
    assert "memory count" in problem["attempts"][0]["error"]


def test_a_frame_over_the_bound_is_refused_before_it_is_buffered():
    reader = FrameReader(max_frame=1024)
    assert [f.meta for f in reader.feed(encode(1, ["ok"], b"x" * 1000))] == [["ok"]]
    with pytest.raises(ValueError, match="larger than 1024"):
        list(reader.feed(encode(2, ["ok"], b"x" * 2000)[:16]))
