"""The README's walk-through, run as written: every line of its ``sh`` blocks after the Quick
start, in order, in one bash from the checkout, against a gateway serving the examples as
``make run`` does (``serve --deploy examples/functions``). The only difference from a user's
terminal is where the gateway listens and where its key is, given by ``TIERGATE_URL`` and
``TIERGATE_KEY``, which the commands read (the CLI's own way)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, ROOT

README = (ROOT / "README.md").read_text()
BIN = str(Path(sys.executable).parent)


def _commands() -> list[str]:
    """The walk-through's commands (a line ending in ``\\`` goes on), comments left out."""
    walk = README.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", walk, re.S):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.startswith("#")):
                continue
            pending += line + "\n"
            if not line.endswith("\\") and pending.count('"') % 2 == 0:
                commands.append(pending)
                pending = ""
    return commands


def test_the_walk_through_runs_as_written(tiergate_factory, tmp_path):
    server = tiergate_factory(args=("--deploy", str(EXAMPLES)))
    commands = _commands()
    assert len(commands) > 20
    script = []
    for i, command in enumerate(commands):
        out = tmp_path / str(i)
        script.append(f'{{ {command}}} >"{out}.out" 2>"{out}.err"; echo $? >"{out}.rc"')
    env = {**os.environ, "TIERGATE_URL": server.url, "TIERGATE_KEY": server.admin_key,
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=env, timeout=300, check=True)
    results = {}
    for i, command in enumerate(commands):
        rc = int((tmp_path / f"{i}.rc").read_text())
        err = (tmp_path / f"{i}.err").read_text()
        assert rc == 0 and "Traceback" not in err, (command, rc, err)
        results[command.split("\n")[0]] = (tmp_path / f"{i}.out").read_text()

    def out(fragment: str) -> str:
        return next(text for command, text in results.items() if fragment in command)

    assert json.loads(out("-d '{\"hello\": \"world\"}'"))["output"] == {"hello": "world"}
    assert json.loads(out("'\"version 2 echoes\"'"))["output"] == "version 2 echoes"
    assert json.loads(out("my-greeting@1"))["output"] == {"message": "hello from wasm"}
    assert json.loads(out("-d '{\"m\": 1}'"))["code"] == "invalid_input"
    assert json.loads(out("invoke/trap"))["code"] == "cascade_exhausted"
    assert json.loads(out("invoke/loop"))["code"] == "timeout"
    execution = json.loads(out("$URL/executions/$EXECUTION"))
    assert execution["input"] == {"later": True}
    assert "tiergate_invocations_total" in out("grep tiergate_invocations")
    assert "my-hello" in out("tiergate deploy")
    assert "hello from wasm" in out("tiergate invoke my-hello --data")
