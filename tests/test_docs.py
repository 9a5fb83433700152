"""The docs are checked: plugins.md covers every hook, Runtime method and public name, and its
quick-start plugin works when installed as written; every setting is documented."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
from conftest import ROOT

import plugins.hookspecs as hookspecs
import tiergate
from gateway.settings import ENV_VARIABLES
from plugins.runtime import Runtime

PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text()
DOCS = PLUGINS_MD + "".join(
    (ROOT / name).read_text() for name in ("docs/api.md", "docs/scaling.md", "README.md")
)


def _signature(fn) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", [n for n in dir(hookspecs) if n.startswith("tiergate_")])
def test_every_hook_is_documented_with_its_signature(name):
    assert f"#### `{_signature(getattr(hookspecs, name))}`" in PLUGINS_MD


@pytest.mark.parametrize(
    "name", ["start", "close", "check", "artifact_key", "compile", "load", "invoke", "unload"]
)
def test_every_runtime_method_is_documented(name):
    assert hasattr(Runtime, name)
    assert re.search(rf"`(async )?{name}\(", PLUGINS_MD), name


@pytest.mark.parametrize("name", tiergate.__all__)
def test_every_public_name_is_documented(name):
    assert f"`{name}" in PLUGINS_MD or f"tiergate.{name}" in PLUGINS_MD, name


@pytest.mark.parametrize("variable", ENV_VARIABLES)
def test_every_setting_is_documented(variable):
    assert f"`{variable}`" in DOCS or variable in DOCS, variable


def _block(language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", PLUGINS_MD, re.S).group(1)


def test_the_quick_start_plugin_works_as_written(tmp_path, tiergate_factory):
    package = tmp_path / "tiergate-reverse"
    package.mkdir()
    (package / "reverse_runtime.py").write_text(_block("python"))
    build = (
        '\n[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
        '\n[tool.setuptools]\npy-modules = ["reverse_runtime"]\n'
    )
    toml = _block("toml") + build
    (package / "pyproject.toml").write_text(toml)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(package)]
    subprocess.run(pip, check=True, capture_output=True)
    try:
        server = tiergate_factory()
        with server.client() as api:
            r = api.post("/deploy", json={"id": "rev", "runtime": "reverse", "code": "-"})
            assert r.status_code == 201, r.text
            assert api.post("/invoke/rev", json="stressed").json()["output"] == "desserts"
            failed = api.post("/invoke/rev", json=5).json()
            assert failed["attempts"][0]["error"] == "reverse needs a string or a list"
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "--quiet", "tiergate-reverse"],
            check=True,
            capture_output=True,
        )
