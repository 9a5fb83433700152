"""The runtime conformance suite: the same cases, over HTTP, for every runtime.

A case is a folder holding ``input.json``, ``expect.json``, optionally ``manifest.json`` (extra
manifest fields, e.g. limits), and one code file per runtime that takes part (``code.py``,
``code.wat``, ``code.mjs``…). ``expect.json`` is either ``{"output": …}`` (and optionally
``"logs_contain": "…"``) or ``{"status": 500|504, "attempt": "failed"|"timeout",
"error_contains": "…"}``. A runtime without a code file for a case skips it.

Use it from a plugin's tests (the ``tiergate`` pytest plugin provides ``tiergate_server``)::

    class TestMyRuntime(tiergate.testing.RuntimeConformance):
        runtime = "javascript"
        suffix = ".mjs"
        cases = Path(__file__).parent / "conformance"
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

_ids = itertools.count()


def case_dirs(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / f"code{suffix}").exists())


class RuntimeConformance:
    runtime: ClassVar[str]
    suffix: ClassVar[str]
    cases: ClassVar[Path]

    @pytest.fixture
    def conformance_api(self, tiergate_server: Any) -> Any:
        with tiergate_server.client() as client:
            yield client

    def test_case(self, conformance_api: Any, case: Path) -> None:
        api = conformance_api
        manifest = _json(case / "manifest.json", {})
        function_id = f"conf-{self.runtime}-{case.name}-{next(_ids)}".replace("_", "-")[:63]
        deployed = api.post("/deploy", json={
            "id": function_id, "runtime": self.runtime,
            "code": (case / f"code{self.suffix}").read_text(), **manifest})
        assert deployed.status_code == 201, deployed.text
        answer = api.post(f"/invoke/{function_id}", content=(case / "input.json").read_bytes())
        expect = _json(case / "expect.json", {})
        if "output" in expect:
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["output"] == expect["output"]
            if "logs_contain" in expect:
                assert any(expect["logs_contain"] in e["message"] for e in body["logs"]), body
            return
        assert answer.status_code == expect["status"], answer.text
        attempt = answer.json()["attempts"][0]
        assert attempt["status"] == expect["attempt"], attempt
        assert expect.get("error_contains", "") in attempt["error"], attempt


def _json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def parametrize_cases(metafunc: pytest.Metafunc) -> None:
    """Called by the pytest plugin: one test per case folder that has this runtime's code."""
    cls = metafunc.cls
    if cls is None or not issubclass(cls, RuntimeConformance):
        return
    if "case" not in metafunc.fixturenames:
        return
    found = case_dirs(Path(cls.cases), cls.suffix)
    metafunc.parametrize("case", found, ids=[p.name for p in found])
