"""The JavaScript runtime passes tiergate's conformance suite, plus its own checks. Needs the
plugin installed beside tiergate (pip install -e examples/plugins/tiergate-javascript)."""

from __future__ import annotations

import itertools
from pathlib import Path

from plugins.testing import RuntimeConformance

_ids = itertools.count()


class TestJavaScriptConformance(RuntimeConformance):
    runtime = "javascript"
    suffix = ".mjs"
    cases = Path(__file__).parent / "conformance"


def _deploy(api, code, **manifest):
    function_id = f"js-{next(_ids)}"
    r = api.post("/deploy", json={"id": function_id, "runtime": "javascript", "code": code,
                                  **manifest})
    return function_id, r


def test_async_handler_context_env_and_warm_state(tiergate_server):
    code = (
        "let calls = 0;\n"
        "export default async function handler(event, context) {\n"
        "  calls += 1;\n"
        "  await new Promise((done) => setTimeout(done, 10));\n"
        "  console.warn('careful');\n"
        "  return { calls, fn: context.functionId, left: context.remainingTimeMs() > 0,\n"
        "           greeting: process.env.GREETING, leaked: process.env.TIERGATE_ADMIN_KEY };\n"
        "}\n"
    )
    with tiergate_server.client() as api:
        fn, r = _deploy(api, code, env={"GREETING": "hi"})
        assert r.status_code == 201, r.text
        first = api.post(f"/invoke/{fn}", json={}).json()
        second = api.post(f"/invoke/{fn}", json={}).json()
    assert first["output"] == {"calls": 1, "fn": fn, "left": True, "greeting": "hi"}
    assert second["output"]["calls"] == 2
    assert first["logs"][0]["stream"] == "stderr" and first["logs"][0]["level"] == "WARNING"


def test_compile_errors_name_the_line(tiergate_server):
    with tiergate_server.client() as api:
        _, r = _deploy(api, "export default function handler(event) {\n  return (\n}\n")
        assert r.status_code == 422 and r.json()["code"] == "compile_error"
        assert "SyntaxError" in r.json()["detail"]
        _, r = _deploy(api, "export const x = 1;\n")
        assert r.status_code == 422 and "export default" in r.json()["detail"]
