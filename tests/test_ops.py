"""Operations endpoints, metrics, the OpenAPI document and the error-code contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import assert_problem, deploy_wat, metric, unique

import gateway.errors as errors
from gateway.http.apidoc import ERROR_CODES, openapi_document
from gateway.http.app import ROUTE_TABLES
from gateway.http.problems import STATUSES

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
SHARED_API = ROOT.parent / "shared" / "API.md"


def test_health_and_ready(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"]) == {"object_store", "kv"}


def test_metrics_report_invocations_cache_and_cold_starts(api):
    fn = unique("metered")
    deploy_wat(api, fn)
    for _ in range(3):
        api.post(f"/invoke/{fn}", json=1)
    api.post(f"/invoke/{fn}", content=b"{bad")
    text = api.get("/metrics").text
    mine = {"tenant": "default", "function": fn}
    assert metric(text, "tiergate_invocations_total", **mine, status="completed", tier="code") == 3
    assert metric(text, "tiergate_cold_starts_total", **mine) == 1
    assert metric(text, "tiergate_cache_hits_total", **mine) == 3
    assert metric(text, "tiergate_invocation_duration_seconds_count", **mine) == 3
    assert metric(text, "tiergate_circuit_state", **mine) == 0
    assert metric(text, "tiergate_queue_depth") == 0
    assert metric(text, "tiergate_in_flight") is not None
    assert metric(text, "tiergate_tier_attempts_total", tier="code", status="succeeded") >= 3
    assert metric(text, "tiergate_cold_start_seconds_count", runtime="wasm") >= 1


def test_metrics_need_admin(tiergate_server):
    with tiergate_server.client(key="") as anonymous:
        assert_problem(anonymous.get("/metrics"), 401, "unauthenticated")


def _routes() -> set[tuple[str, str]]:
    found = set()
    for table in ROUTE_TABLES:
        for route in table:
            path = re.sub(r"\{([a-z_]+)(:[^}]*)?\}", r"{\1}", route.path)
            found.add((route.method.lower(), path))
    return found


def _documented(doc) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in doc["paths"].items() for method in ops}


def test_openapi_matches_routes(api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert _routes() == _documented(doc)
    assert doc == openapi_document()


def _codes_in(path: Path) -> dict[str, int]:
    """The codes an error table lists."""
    table = path.read_text().split("## Error codes", 1)[1]
    return {code: int(status) for code, status in re.findall(r"`([a-z_]+)` (\d{3})", table)}


def _error_classes() -> dict[str, int]:
    """Every code the API reports, with its status: the gateway's own errors carry both, the
    errors raised below it (storage, plugins, the cascade) get their status in ``STATUSES``."""
    found = {}
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.TiergateError):
            found.setdefault(value.code, value.status)
    for cls, (status, _) in STATUSES.items():
        found.setdefault(cls.code, status)
    return found


def _declaring_classes() -> dict[str, list[type]]:
    """The classes that declare each code themselves (not inherited from a base)."""
    classes = [v for v in vars(errors).values() if isinstance(v, type)]
    classes = [c for c in classes if issubclass(c, errors.TiergateError)] + list(STATUSES)
    found: dict[str, list[type]] = {}
    for cls in classes:
        if "code" in vars(cls):
            found.setdefault(cls.code, []).append(cls)
    return found


def test_every_error_code_has_one_class_and_is_documented():
    codes = _codes_in(API_DOC)
    assert len(codes) >= 22
    classes = _error_classes()
    assert classes == codes
    declared = _declaring_classes()  # internal_error is also every family's base's code
    assert {c: cs for c, cs in declared.items() if len(cs) > 1 and c != "internal_error"} == {}
    assert set(codes) <= set(declared)
    assert {c for cs in ERROR_CODES.values() for c in cs} == set(codes)
    for status, names in ERROR_CODES.items():
        for name in names:
            assert codes[name] == status, name


def test_docs_keep_every_code_of_the_contract():
    if not SHARED_API.exists():
        pytest.skip("the shared contract is not beside this checkout")
    contract = _codes_in(SHARED_API)
    assert contract.items() <= _codes_in(API_DOC).items()


def test_unexpected_errors_are_internal_error_without_traceback(tiergate_factory):
    import sqlite3

    server = tiergate_factory()
    fn = unique("corrupt")
    with server.client() as api:
        deploy_wat(api, fn)
    server.stop()
    with sqlite3.connect(server.data_dir / "tiergate.db") as db:
        db.execute("UPDATE kv SET value = ? WHERE key = ?", (b"{not json", f"fn/default/{fn}"))
    server.start()
    with server.client() as api:
        r = api.get(f"/functions/{fn}")
        assert_problem(r, 500, "internal_error")
        assert "Traceback" not in r.text and "JSONDecodeError" not in r.text
        assert api.get("/healthz").status_code == 200
    assert "unhandled error: GET /functions/" in server.log()
    assert "Traceback" in server.log()


def test_lru_eviction_means_a_new_cold_start(tiergate_factory):
    server = tiergate_factory({"TIERGATE_CACHE_SIZE": "1"})
    with server.client() as api:
        a, b = unique("lru-a"), unique("lru-b")
        deploy_wat(api, a)
        deploy_wat(api, b)
        metrics = [api.post(f"/invoke/{name}", json=1).json()["metrics"] for name in (a, a, b, a)]
        assert [m["cold_start"] for m in metrics] == [True, False, True, True]
        assert [m["cache_hit"] for m in metrics] == [False, True, False, False]


def test_logs_as_json_lines(tiergate_factory):
    server = tiergate_factory(args=("--log-format", "json"))
    with server.client() as api:
        deploy_wat(api, unique("logged"))
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    assert lines, server.log()
    parsed = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in parsed)
    assert any(entry["logger"].startswith("tiergate") for entry in parsed)
