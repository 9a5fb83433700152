"""Shared helpers for the HTTP tests; servers come from ``plugins.testing`` (a pytest11 plugin)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "functions"
FIXTURES = ROOT / "tests" / "fixtures"
_counter = itertools.count()


def run(coroutine: Awaitable[Any]) -> Any:
    """Drive a coroutine from a sync test (the suite does not use an asyncio plugin)."""

    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def example_bytes(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unique(prefix: str) -> str:
    """A function id no other test uses (tests share one server)."""
    return f"{prefix}-{next(_counter)}"


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, whatever the label order; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def api(tiergate_server: Any) -> Any:
    with tiergate_server.client() as client:
        yield client


def deploy_wat(api: Any, fn_id: str, name: str = "echo.wat", **manifest: Any) -> dict[str, Any]:
    response = api.post(
        "/deploy", json={"id": fn_id, "runtime": "wasm", "code": example(name), **manifest}
    )
    assert response.status_code == 201, response.text
    return response.json()


# Storage backends for the contract suites in tests/stores/ (one fixture per backend).


@pytest.fixture
def local_objects(tmp_path):
    from storage.objects.local import LocalObjectStore

    return lambda: LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def sqlite_kv(tmp_path):
    from storage.kv.sqlite import SQLiteKV

    return lambda: SQLiteKV(tmp_path / "tiergate.db")


@pytest.fixture
def sqlite_executions(tmp_path):
    from storage.executions.sqlite import SQLiteExecutionStore

    return lambda: SQLiteExecutionStore(tmp_path / "tiergate.db")
