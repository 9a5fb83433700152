"""docs/sdk.md is run as written: its ```python examples, in order, in one namespace, against a
real gateway, from the repository root with TIERGATE_URL and TIERGATE_KEY set — the way a reader
would paste them. Examples fenced ```python no-run (they need what the test cannot promise) are
compiled, not run. The page names every method of the clients."""

from __future__ import annotations

import inspect
import re
import traceback

import pytest
from conftest import ROOT

from gateway.sdk import AsyncClient, Client

PAGE = (ROOT / "docs" / "sdk.md").read_text()
BLOCKS = re.findall(r"```python( no-run)?\n(.*?)```", PAGE, re.S)
RUN = [code for flag, code in BLOCKS if not flag]


def _methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_the_page_has_examples_and_few_that_do_not_run():
    assert len(RUN) >= 15
    skipped = [code for flag, code in BLOCKS if flag]
    assert len(skipped) <= 1, "only what needs the python runtime may be left out"
    for code in skipped:
        compile(code, "docs/sdk.md (no-run)", "exec")


@pytest.mark.parametrize("name", sorted(_methods(Client)))
def test_every_method_is_shown(name):
    assert re.search(rf"\.{name}\(|`{name}\(", PAGE), f"docs/sdk.md shows no call of {name}()"


def test_both_clients_have_the_same_methods():
    assert _methods(Client) == _methods(AsyncClient)


def test_the_examples_run_as_written(tiergate_factory, monkeypatch, capsys):
    server = tiergate_factory()
    monkeypatch.setenv("TIERGATE_URL", server.url)
    monkeypatch.setenv("TIERGATE_KEY", server.admin_key)
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": "__sdk_docs__"}
    for number, code in enumerate(RUN, 1):
        try:
            exec(compile(code, f"docs/sdk.md example {number}", "exec"), namespace)
        except Exception:
            first = code.strip().splitlines()[0]
            pytest.fail(
                f"docs/sdk.md example {number} (starting {first!r}) failed:\n"
                f"{traceback.format_exc()}\nserver log:\n{server.log()[-3000:]}"
            )
    printed = capsys.readouterr().out
    assert "Client(url='http://127.0.0.1:" in printed
    assert server.admin_key not in printed
