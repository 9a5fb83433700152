"""The worked example of ``docs/composition.md``, run as written: its commands, in order, with the
CLI against a real gateway, then what the page says follows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, eventually

PAGE = (ROOT / "docs" / "composition.md").read_text()
TIERGATE = str(Path(sys.executable).parent / "tiergate")


def _commands() -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", PAGE, re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.startswith("tiergate ")]


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [TIERGATE, *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{shlex.join(args)}: {done.stderr}"
    return done.stdout


def _executions(api, fn: str) -> list[dict]:
    found = api.get(f"/functions/{fn}/logs").json()["executions"]
    return [api.get(f"/executions/{e['execution_id']}").json() for e in found]


def test_the_order_pipeline_works_as_written(tiergate_factory):
    server = tiergate_factory()
    env = {**os.environ, "TIERGATE_URL": server.url, "TIERGATE_KEY": server.admin_key}
    printed = {}
    commands = _commands()
    assert len(commands) >= 8
    for args in commands:
        printed[shlex.join(args)] = _run(args, env)
    sends = [out for cmd, out in printed.items() if cmd.startswith("tiergate events send")]
    assert all(out.startswith("event ") for out in sends)

    with server.client() as api:
        charged = eventually(
            lambda: len(done := [e for e in _executions(api, "charge-card")
                                 if e["status"] == "completed"]) == 2 and done,
            timeout=30,
        )
        assert sorted(e["output"]["order"] for e in charged) == ["A-1", "A-3"]
        assert {e["output"]["charged"] for e in charged} == {42, 7}
        assert all(e["cause"]["kind"] == "chain" for e in charged)
        parent = api.get(f"/executions/{charged[0]['cause']['execution_id']}").json()
        assert parent["function_id"] == "validate-order"
        assert parent["cause"]["kind"] == "event"
        assert charged[0]["execution_id"] in parent["children"]

        notified = eventually(lambda: [e for e in _executions(api, "notify-support")
                                       if e["status"] == "completed"], timeout=30)
        assert len(notified) == 1
        assert "support: order A-2:" in notified[0]["logs"][0]["message"]
        assert "has no total (high)" in notified[0]["logs"][0]["message"]

        letters = eventually(lambda: api.get("/dead-letters").json()["dead_letters"])
        assert [x["function_id"] for x in letters] == ["validate-order"]
        assert letters[0]["input"] == {"id": "A-2"}
        assert letters[0]["execution_id"] in printed["tiergate dead-letters"]

        schedules = api.get("/functions/nightly-report").json()["schedules"]
        assert schedules[0]["timezone"] == "Europe/Berlin"

        first = letters[0]["execution_id"]
        redriven = _run(["tiergate", "redrive", first], env)
        assert redriven.startswith("redriven as ")
        again = redriven.split()[-1]  # A-2 still has no total: it fails again, a new letter
        letters = eventually(lambda: [x for x in api.get("/dead-letters").json()["dead_letters"]
                                      if x["execution_id"] == again])
        assert letters[0]["cause"] == {"kind": "redrive", "execution_id": first}
        assert first not in [x["execution_id"] for x in api.get("/dead-letters").json()
                             ["dead_letters"]]
