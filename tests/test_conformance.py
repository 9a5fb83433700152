"""The built-in runtimes pass the shared conformance cases (tests/conformance/)."""

from __future__ import annotations

from pathlib import Path

from plugins.testing import RuntimeConformance

CASES = Path(__file__).parent / "conformance"


class TestWasmConformance(RuntimeConformance):
    runtime = "wasm"
    suffix = ".wat"
    cases = CASES


class TestPythonConformance(RuntimeConformance):
    runtime = "python"
    suffix = ".py"
    cases = CASES
