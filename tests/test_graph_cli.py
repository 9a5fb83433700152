"""``tiergate graph`` as a user runs it, against a real gateway: deploy (and its one-line refusals),
list, show, delete, runs that print a line per node and exit 0 or 1, incremental runs with
``--base``, a node that waits for a person, ``--async``, ``watch``, ``status`` and ``cancel``."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import TIERGATE, example, one_line_error, unique
from conftest import run_cli as tiergate

ECHO = "def handler(event, context):\n    return event\n"
FAILS = "def handler(event, context):\n    raise RuntimeError('out of stock')\n"
NEEDS_A_PERSON = "def handler(event, context):\n    raise ValueError('a person decides')\n"
RUN_ID = re.compile(r"^[0-9a-f]{26}$")
NODE_LINE = re.compile(r"^  (\w+)\s+(completed|failed|skipped|reused|awaiting_human)\s+(.*)$")


def node_lines(stdout: str) -> list[tuple[str, str, str]]:
    return [m.groups() for line in stdout.splitlines() if (m := NODE_LINE.match(line))]


def statuses(stdout: str) -> dict[str, str]:
    """Each node's last printed status."""
    return {name: status for name, status, _ in node_lines(stdout)}


@pytest.fixture(scope="module")
def env(tiergate_server):
    return {"TIERGATE_URL": tiergate_server.url, "TIERGATE_KEY": tiergate_server.admin_key}


@pytest.fixture(scope="module")
def functions(tiergate_server):
    """Python functions for the graphs below, by role: echo, fails, slow, human."""
    made = {}
    with tiergate_server.client() as api:
        for role, code, more in (
            ("echo", ECHO, {}),
            ("fails", FAILS, {}),
            ("slow", example("slow.py"), {"limits": {"timeout_ms": 60_000}}),
            ("human", NEEDS_A_PERSON, {
                "output_schema": {"type": "object", "required": ["approved"],
                                  "properties": {"approved": {"type": "boolean"}}},
                "tiers": {"human": {"instructions": "Approve?"}},
            }),
        ):
            fn = unique(f"gcli-{role}")
            body = {"id": fn, "runtime": "python", "code": code, "retry": {"attempts": 0}, **more}
            answer = api.post("/deploy", json=body)
            assert answer.status_code == 201, answer.text
            made[role] = fn
    return made


def write(tmp_path: Path, document) -> str:
    path = tmp_path / f"{unique('graph')}.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def deployed(env, tmp_path, document) -> str:
    done = tiergate("graph", "deploy", write(tmp_path, document), env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fan_in(gid: str, fns: dict[str, str], first: str = "echo") -> dict:
    """price and stock from the input, at once; invoice from both."""
    return {"id": gid, "description": "fan in", "nodes": {
        "price": {"function": fns["echo"], "input": {"sku": "input.sku", "qty": "input.qty"}},
        "stock": {"function": fns[first], "input": {"sku": "input.sku"}},
        "invoice": {"function": fns["echo"], "needs": ["price", "stock"],
                    "input": {"price": "price", "stock": "stock"}},
    }}


# --- definitions --------------------------------------------------------------------------------


def test_deploy_list_show_and_delete(env, functions, tmp_path):
    gid = unique("gcli")
    document = fan_in(gid, functions)
    out = deployed(env, tmp_path, document)
    assert out.strip() == f"deployed graph {gid} version 1 (3 nodes: price, stock, invoice)"
    document["nodes"]["label"] = {"function": functions["echo"], "needs": ["invoice"]}
    assert deployed(env, tmp_path, document).startswith(f"deployed graph {gid} version 2 (4 nodes")

    listing = tiergate("graph", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()]
    assert rows[0][:3] == ["ID", "LATEST", "VERSIONS"]
    assert [gid, "2", "2"] in [row[:3] for row in rows]

    shown = tiergate("graph", "show", gid, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"graph {gid} version 2 (latest 2; versions 1, 2)")
    table = lines[lines.index(next(x for x in lines if x.startswith("NODE"))) :]
    assert table[0].split() == ["NODE", "FUNCTION", "NEEDS", "INPUT"]
    assert [row.split()[0] for row in table[1:5]] == ["price", "stock", "invoice", "label"]
    assert "price, stock" in table[3] and "invoice" in table[4].split()[2]
    assert "(the run input)" in table[4]
    assert lines[-1] == "output: the outputs of label, by name"

    old = tiergate("graph", "show", gid, "--version", "1", env=env)
    assert old.stdout.startswith(f"graph {gid} version 1 (latest 2")
    assert "label" not in old.stdout
    as_json = json.loads(tiergate("graph", "show", gid, "--json", env=env).stdout)
    assert as_json["order"] == ["price", "stock", "invoice", "label"]

    removed = tiergate("graph", "delete", gid, env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == f"deleted graph {gid}"
    assert gid not in tiergate("graph", "list", env=env).stdout
    error = one_line_error(tiergate("graph", "show", gid, env=env))
    assert error == f"error: graph '{gid}' not found (graph_not_found, HTTP 404)"
    assert "graph_not_found" in one_line_error(tiergate("graph", "delete", gid, env=env))


def test_a_bad_graph_is_refused_in_one_line(env, functions, tmp_path):
    echo = functions["echo"]
    cycle = {"id": unique("gcli"), "nodes": {
        "a": {"function": echo, "needs": ["b"]}, "b": {"function": echo, "needs": ["a"]},
    }}
    error = one_line_error(tiergate("graph", "deploy", write(tmp_path, cycle), env=env))
    assert "a cycle: a → b → a" in error and "(invalid_graph, HTTP 400)" in error
    unknown = {"id": unique("gcli"), "nodes": {"a": {"function": unique("nowhere")}}}
    error = one_line_error(tiergate("graph", "deploy", write(tmp_path, unknown), env=env))
    assert "nodes.a.function" in error and "invalid_graph" in error
    needs = {"id": unique("gcli"), "nodes": {"a": {"function": echo, "needs": ["zz"]}}}
    error = one_line_error(tiergate("graph", "deploy", write(tmp_path, needs), env=env))
    assert "nodes.a.needs: unknown node 'zz'" in error
    broken = write(tmp_path, '{"id": "x", "nodes": ')
    assert "is not valid JSON" in one_line_error(tiergate("graph", "deploy", broken, env=env))
    missing = str(tmp_path / "missing.json")
    assert "cannot read" in one_line_error(tiergate("graph", "deploy", missing, env=env))


def test_a_missing_graph_or_run_is_named(env, functions, tmp_path):
    nowhere = unique("nowhere")
    error = one_line_error(tiergate("graph", "run", nowhere, "-d", "{}", env=env))
    assert error == f"error: graph '{nowhere}' not found (graph_not_found, HTTP 404)"
    gid = unique("gcli")
    deployed(env, tmp_path, {"id": gid, "nodes": {"a": {"function": functions["echo"]}}})
    error = one_line_error(tiergate("graph", "status", gid, "nope", env=env))
    assert "'nope' not found" in error and "run_not_found" in error
    error = one_line_error(tiergate("graph", "run", gid, "--base", "nope", env=env))
    assert "run_not_found" in error
    assert "--data is not valid JSON" in one_line_error(
        tiergate("graph", "run", gid, "-d", "{", env=env)
    )
    assert "cannot read" in one_line_error(
        tiergate("graph", "run", gid, "-d", f"@{tmp_path / 'missing.json'}", env=env)
    )
    nowhere_env = {"TIERGATE_URL": "http://127.0.0.1:9", "TIERGATE_KEY": "x"}
    assert "cannot reach" in one_line_error(tiergate("graph", "list", env=nowhere_env))


# --- runs ---------------------------------------------------------------------------------------


def test_a_run_prints_a_line_per_node_and_its_output(env, functions, tmp_path, tiergate_server):
    gid = unique("gcli")
    deployed(env, tmp_path, fan_in(gid, functions))
    done = tiergate("graph", "run", gid, "-d", '{"sku": "A", "qty": 2}', env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    first = re.match(rf"^run ([0-9a-f]{{26}}) of graph {gid} version 1$", lines[0])
    assert first, lines[0]
    nodes = node_lines(done.stdout)
    assert [(name, status) for name, status, _ in nodes][-1] == ("invoice", "completed")
    assert sorted(name for name, _, _ in nodes) == ["invoice", "price", "stock"]
    assert all(status == "completed" for _, status, _ in nodes)
    assert all(re.match(r"^\d+\.\d\d s\s+\(ran: no base run\)$", rest) for _, _, rest in nodes)
    final = re.match(r"^completed in [\d.]+ s \(ran 3, reused 0\): (.*)$", lines[-1])
    assert final, lines[-1]
    expected = {"price": {"sku": "A", "qty": 2}, "stock": {"sku": "A"}}
    assert json.loads(final.group(1)) == {"invoice": expected}
    with tiergate_server.client() as api:
        run = api.get(f"/graphs/{gid}/runs/{first.group(1)}").json()
        assert run["status"] == "completed" and run["output"] == {"invoice": expected}

    from_file = tmp_path / "input.json"
    from_file.write_text('{"sku": "B", "qty": 1}')
    again = tiergate("graph", "run", gid, "-d", f"@{from_file}", env=env)
    assert again.returncode == 0, again.stderr
    assert '"price":{"sku":"B","qty":1}' in again.stdout.splitlines()[-1]


def test_a_failed_run_skips_dependents_and_exits_1(env, functions, tmp_path):
    gid = unique("gcli")
    document = fan_in(gid, functions, first="fails")
    document["nodes"]["receipt"] = {"function": functions["echo"], "needs": ["price"]}
    deployed(env, tmp_path, document)
    done = tiergate("graph", "run", gid, "-d", '{"sku": "A", "qty": 1}', env=env)
    assert done.returncode == 1
    assert done.stdout.startswith("run ")
    assert statuses(done.stdout) == {
        "price": "completed", "stock": "failed", "invoice": "skipped", "receipt": "completed",
    }
    why = {name: rest for name, _, rest in node_lines(done.stdout)}
    assert "out of stock" in why["stock"]
    assert why["invoice"].endswith("(needs 'stock', which failed)")
    error = one_line_error(done)
    run_id = done.stdout.split()[1]
    assert error.startswith(f"error: run {run_id} failed: node 'stock' failed: ")
    assert "out of stock" in error


def test_a_run_with_a_base_reuses_what_did_not_change(env, functions, tmp_path, tiergate_server):
    gid = unique("gcli")
    deployed(env, tmp_path, fan_in(gid, functions))
    first = tiergate("graph", "run", gid, "--async", "-d", '{"sku": "A", "qty": 1}', env=env)
    assert first.returncode == 0, first.stderr
    base = first.stdout.strip()
    assert RUN_ID.match(base), first.stdout  # --async prints the id alone
    watched = tiergate("graph", "watch", gid, base, env=env)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines()[0] == f"run {base} of graph {gid} version 1"
    assert set(statuses(watched.stdout).values()) == {"completed"}

    same = tiergate("graph", "run", gid, "--base", base, "-d", '{"sku": "A", "qty": 1}', env=env)
    assert same.returncode == 0, same.stderr
    assert same.stdout.splitlines()[0].endswith(f", base run {base}")
    assert statuses(same.stdout) == {"price": "reused", "stock": "reused", "invoice": "reused"}
    assert all(rest.startswith("-") and f"as in run {base}" in rest
               for _, _, rest in node_lines(same.stdout))
    assert "(ran 0, reused 3)" in same.stdout.splitlines()[-1]

    more = tiergate("graph", "run", gid, "--base", base, "-d", '{"sku": "A", "qty": 5}', env=env)
    assert more.returncode == 0, more.stderr
    assert statuses(more.stdout) == {"price": "completed", "stock": "reused",
                                     "invoice": "completed"}
    why = {name: rest for name, _, rest in node_lines(more.stdout)}
    assert why["price"].endswith("(ran: its input changed)")
    assert "(ran 2, reused 1)" in more.stdout.splitlines()[-1]
    with tiergate_server.client() as api:
        was = api.get(f"/graphs/{gid}/runs/{base}").json()["nodes"]["stock"]["execution_id"]
        run_id = more.stdout.split()[1]
        now = api.get(f"/graphs/{gid}/runs/{run_id}").json()["nodes"]["stock"]["execution_id"]
        assert now == was  # reused: nothing ran


def test_status_shows_a_table_of_nodes(env, functions, tmp_path):
    gid = unique("gcli")
    deployed(env, tmp_path, fan_in(gid, functions))
    run_id = tiergate("graph", "run", gid, "--async", "-d", '{"sku": "A"}', env=env).stdout.strip()
    assert tiergate("graph", "watch", gid, run_id, env=env).returncode == 0
    shown = tiergate("graph", "status", gid, run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id} of graph {gid} version 1: completed (started ")
    assert lines[1].split() == ["NODE", "STATUS", "FUNCTION", "TOOK", "EXECUTION", "WHY"]
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert set(rows) == {"price", "stock", "invoice"}
    echo = f"{functions['echo']}@1"
    assert all(row[1] == "completed" and row[2] == echo for row in rows.values())
    assert lines[-1].startswith("output: {")
    whole = json.loads(tiergate("graph", "status", gid, run_id, "--json", env=env).stdout)
    assert whole["run_id"] == run_id and whole["status"] == "completed"


def test_a_run_that_waits_for_a_person(env, functions, tmp_path, tiergate_server):
    gid = unique("gcli")
    deployed(env, tmp_path, {"id": gid, "nodes": {
        "approve": {"function": functions["human"]},
        "invoice": {"function": functions["echo"], "needs": ["approve"],
                    "input": {"approved": "approve.approved", "total": "input.total"}},
    }})
    left = tiergate("graph", "run", gid, "--no-wait-human", "-d", '{"total": 5000}', env=env)
    assert left.returncode == 0, left.stderr
    lines = left.stdout.splitlines()
    run_id = lines[0].split()[1]
    assert RUN_ID.match(run_id)
    waiting = [rest for name, status, rest in node_lines(left.stdout)
               if (name, status) == ("approve", "awaiting_human")]
    assert len(waiting) == 1
    with tiergate_server.client() as api:
        execution = api.get(f"/graphs/{gid}/runs/{run_id}").json()["nodes"]["approve"][
            "execution_id"]
        task = api.get(f"/executions/{execution}").json()["task_id"]
        assert waiting[0] == f"task {task} (execution {execution}) waits for a person"
        assert lines[-1] == (f"run {run_id} waits for a person; follow it with: "
                             f"tiergate graph watch {gid} {run_id}")

        # without --no-wait-human the command follows the run until the person has answered
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
        follower = subprocess.Popen(
            [TIERGATE, "graph", "watch", gid, run_id], env={**full_env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            seen = []
            while not seen or not seen[-1].startswith("waiting for a person"):
                line = follower.stdout.readline()  # click flushes each line
                assert line, "".join(seen) + follower.stderr.read()
                seen.append(line)
            done = api.post(f"/tasks/{task}/complete", json={"output": {"approved": True}})
            assert done.status_code == 200, done.text
            rest, err = follower.communicate(timeout=60)
        finally:
            if follower.poll() is None:
                follower.kill()
    assert follower.returncode == 0, err
    out = "".join(seen) + rest
    assert [(n, s) for n, s, _ in node_lines(out)] == [
        ("approve", "awaiting_human"), ("approve", "completed"), ("invoice", "completed"),
    ]
    assert json.loads(out.splitlines()[-1].split(": ", 1)[1]) == {
        "invoice": {"approved": True, "total": 5000}
    }


def test_cancel_ends_a_run_and_watch_exits_1(env, functions, tmp_path):
    gid = unique("gcli")
    deployed(env, tmp_path, {"id": gid, "nodes": {
        "wait": {"function": functions["slow"], "input": "{seconds: `30`}"},
        "after": {"function": functions["echo"], "needs": ["wait"]},
    }})
    run_id = tiergate("graph", "run", gid, "--async", env=env).stdout.strip()
    assert RUN_ID.match(run_id)
    cancelled = tiergate("graph", "cancel", gid, run_id, env=env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"run {run_id} cancelled"
    watched = tiergate("graph", "watch", gid, run_id, env=env)
    assert statuses(watched.stdout) == {"wait": "failed", "after": "skipped"}
    error = one_line_error(watched)
    assert error == f"error: run {run_id} cancelled: cancelled by request"
    again = tiergate("graph", "cancel", gid, run_id, env=env)
    assert again.stdout.strip() == f"run {run_id} had already ended: cancelled"
