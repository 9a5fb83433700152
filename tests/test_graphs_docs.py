"""The worked example of ``docs/graphs.md``, run as written: every line of its ``sh`` blocks, in
order, in one bash (so the run ids it keeps in variables carry on), with the CLI against a real
gateway; then each block's output is held against the ``text`` block the page shows after it, and
what the page says follows is checked through the API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PAGE = (ROOT / "docs" / "graphs.md").read_text()
BIN = str(Path(sys.executable).parent)
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
NODE_LINE = re.compile(r"^  (\w+)\s+(completed|failed|skipped|reused|awaiting_human)\s+(.*)$", re.M)
SUMMARY = re.compile(r"^completed in [\d.]+ s \(ran (\d+), reused (\d+)\): (.*)$", re.M)
IDS = re.compile(r"\b[0-9a-f]{26}\b")
TASK_IDS = re.compile(r"\bt_[0-9a-f]{20}\b")


def _blocks() -> list[tuple[list[str], str | None]]:
    """Each ``sh`` block's commands with the ``text`` block that follows it (if one does)."""
    fences = FENCE.findall(PAGE)
    found = []
    for i, (language, body) in enumerate(fences):
        if language != "sh":
            continue
        commands = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
        after = fences[i + 1] if i + 1 < len(fences) else None
        found.append((commands, after[1] if after and after[0] == "text" else None))
    return found


def _script(blocks: list[tuple[list[str], str | None]], out: Path) -> str:
    """One bash script: each command's stdout, stderr and exit status into files of its own."""
    lines = []
    for b, (commands, _) in enumerate(blocks):
        for c, command in enumerate(commands):
            name = out / f"{b}.{c}"
            lines.append(f'{{ {command}\n}} >"{name}.out" 2>"{name}.err"; echo $? >"{name}.rc"')
    lines.append(f'printf "%s\\n" "$FIRST" "$BIG" >"{out}/vars"')
    return "\n".join(lines) + "\n"


def _normal(text: str) -> str:
    return TASK_IDS.sub("TASK", IDS.sub("ID", text)).strip()


def _nodes(text: str) -> dict[str, tuple[str, str]]:
    """Each node's last line, as (status, why) with ids blanked: two nodes ending in one poll may
    print either way round, and a watch that starts the moment a person answered may still see
    the node waiting once before it sees it completed."""
    found = {}
    for name, status, rest in NODE_LINE.findall(text):
        why = rest[rest.index("(") :] if status != "awaiting_human" else rest
        found[name] = (status, _normal(why))
    return found


@pytest.fixture(scope="module")
def worked(tiergate_factory_module, tmp_path_factory):
    server = tiergate_factory_module()
    out = tmp_path_factory.mktemp("graphs-doc")
    blocks = _blocks()
    script = out / "page.sh"
    script.write_text(_script(blocks, out))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
    env.update(
        TIERGATE_URL=server.url,
        TIERGATE_KEY=server.admin_key,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    subprocess.run(["bash", str(script)], cwd=ROOT, env=env, check=True, timeout=300)
    results = []
    for b, (commands, expected) in enumerate(blocks):
        ran = []
        for c, command in enumerate(commands):
            name = out / f"{b}.{c}"
            ran.append(
                (
                    command,
                    int(Path(f"{name}.rc").read_text()),
                    Path(f"{name}.out").read_text(),
                    Path(f"{name}.err").read_text(),
                )
            )
        results.append((ran, expected))
    first, big = (out / "vars").read_text().splitlines()
    return server, results, first, big


@pytest.fixture(scope="module")
def tiergate_factory_module(tmp_path_factory):
    from plugins.testing import TiergateServer

    started = []

    def start():
        server = TiergateServer(tmp_path_factory.mktemp("tiergate")).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_the_page_has_the_steps_it_describes():
    blocks = _blocks()
    commands = [c for block, _ in blocks for c in block]
    assert len(blocks) >= 7 and len(commands) >= 15
    assert any("--base \"$FIRST\"" in c for c in commands)
    assert any("--no-wait-human" in c for c in commands)
    assert any(c.startswith("curl ") and "/complete" in c for c in commands)
    for needle in ("TIERGATE_GRAPH_PARALLEL", "TIERGATE_MAX_GRAPH_NODES",
                   "TIERGATE_MAX_GRAPHS_PER_TENANT", "TIERGATE_ASYNC_MAX_INPUT_BYTES",
                   "/ui/run?graph="):
        assert needle in PAGE, needle


def test_every_command_works_as_written(worked):
    _, results, _, _ = worked
    for ran, _ in results:
        for command, rc, out, err in ran:
            if command.startswith("tiergate "):
                assert "Traceback" not in out + err, command
            if command.startswith("tiergate graph run order -d '{\"id\": \"A-3\""):
                assert rc == 1, (command, out, err)
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: run "), err
                assert "node 'validate' failed" in lines[0] and "has no items" in lines[0]
            else:
                assert rc == 0, (command, out, err)


def test_each_block_prints_what_the_page_shows(worked):
    _, results, _, _ = worked
    compared = 0
    for ran, expected in results:
        if expected is None:
            continue
        printed = "".join(out + err for _, _, out, err in ran)
        assert _nodes(printed) == _nodes(expected), (ran[0][0], printed)
        got = [(r, u, json.loads(o)) for r, u, o in SUMMARY.findall(printed)]
        shown = [(r, u, json.loads(o)) for r, u, o in SUMMARY.findall(expected)]
        assert got == shown, (ran[0][0], printed)
        for line in expected.splitlines():
            if line.startswith(("deployed graph ", "error: run ", "run ", "NODE ")):
                assert _normal(line) in _normal(printed), (line, printed)
        compared += 1
    assert compared >= 7


def test_the_graph_is_shown_in_the_order_it_runs(worked):
    _, results, _, _ = worked
    shown = next(out for ran, _ in results for cmd, _, out, _ in ran if cmd.endswith("show order"))
    rows = [line.split()[:2] for line in shown.splitlines()[3:8]]
    assert rows == [
        ["validate", "order-validate"],
        ["price", "order-price"],
        ["stock", "order-stock"],
        ["approve", "order-approve"],
        ["invoice", "order-invoice"],
    ]


def test_reused_nodes_executed_nothing(worked):
    server, results, first, _ = worked
    with server.client() as api:
        base = api.get(f"/graphs/order/runs/{first}").json()
        assert base["status"] == "completed"
        runs = [out for ran, _ in results for cmd, _, out, _ in ran if "--base" in cmd]
        assert len(runs) == 3
        for out in runs:
            run_id = out.split()[1]
            again = api.get(f"/graphs/order/runs/{run_id}").json()
            assert again["base_run"] == first
            for name, node in again["nodes"].items():
                if node["status"] == "reused":
                    assert node["execution_id"] == base["nodes"][name]["execution_id"]
                else:
                    assert node["execution_id"] != base["nodes"][name]["execution_id"]
        # executions by function: the first run, the two with another warehouse, the large order
        # and the empty one; nothing for what was reused or skipped
        expected = {
            "order-validate": 3,  # first, large, empty
            "order-price": 2,  # first, large
            "order-stock": 4,  # first, lisbon, hamburg, large
            "order-approve": 2,  # first, large
            "order-invoice": 3,  # first, lisbon, large
        }
        for fn, count in expected.items():
            logs = api.get(f"/functions/{fn}/logs", params={"limit": 50}).json()["executions"]
            assert len(logs) == count, (fn, logs)


def test_the_large_order_was_approved_by_a_person(worked):
    server, results, _, big = worked
    answer = next(out for ran, _ in results for cmd, _, out, _ in ran if cmd.startswith("curl "))
    assert answer.strip() == "200"
    with server.client() as api:
        run = api.get(f"/graphs/order/runs/{big}").json()
        assert run["status"] == "completed"
        assert run["output"]["approved_by"] == "ana" and run["output"]["total"] == 1400
        assert run["nodes"]["approve"]["output"] == {"approved": True, "by": "ana"}
        execution = api.get(f"/executions/{run['nodes']['approve']['execution_id']}").json()
        assert execution["status"] == "completed" and execution["tier"] == "human"
        assert api.get("/tasks", params={"status": "pending"}).json()["tasks"] == []
