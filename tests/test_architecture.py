"""docs/architecture.md stays true: every ``file:function`` it names exists, and a warm invoke
takes no more calls into tiergate's code than it says."""

from __future__ import annotations

import ast
import asyncio
import re
import sys

import pytest
from conftest import ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text()
NAMED = sorted(set(re.findall(r"`([\w/]+\.py):([\w.]+)`", DOC)))


def _defined(path: str) -> set[str]:
    """``name`` and ``Class.name`` for every function and class the module defines."""
    tree = ast.parse((ROOT / path).read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        if isinstance(node, ast.ClassDef):
            found |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return found


def test_the_walk_names_real_code():
    assert len(NAMED) >= 25  # the page does name files and functions
    missing = [f"{path}:{name}" for path, name in NAMED
               if not (ROOT / path).exists() or name not in _defined(path)]
    assert not missing, missing


@pytest.mark.parametrize(("inline", "pattern"), [
    (False, r"in a worker, \*\*(\d+) calls into tiergate's code in (\d+) modules\*\*"),
    (True, r"run inline, \*\*(\d+) calls in (\d+) modules\*\*"),
])
def test_a_warm_invoke_takes_no_more_calls_than_the_page_says(inline, pattern):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import hops
    finally:
        sys.path.remove(str(ROOT / "bench"))
    documented = re.search(pattern, DOC)
    assert documented, "the page states the calls of a warm invoke"
    calls = asyncio.run(hops.trace_one_invoke(inline))
    modules = {module for module, _ in calls}
    assert sum(calls.values()) <= int(documented.group(1)), sorted(calls.items())
    assert len(modules) <= int(documented.group(2)), sorted(modules)


@pytest.mark.parametrize("package", ["http", "invoke", "functions", "review", "security",
                                     "cluster", "cli"])
def test_every_gateway_package_says_what_it_owns(package):
    init = ROOT / "gateway" / package / "__init__.py"
    assert ast.get_docstring(ast.parse(init.read_text())), package
