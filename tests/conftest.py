"""Shared helpers for the HTTP tests; servers come from ``plugins.testing`` (a pytest11 plugin)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "functions"
TIERGATE = str(Path(sys.executable).parent / "tiergate")
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


def eventually(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy and return that value; fail after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def start_slow_execution(api: Any, watcher: Any = None, seconds: int = 60) -> str:
    """Deploy ``slow.py``, start it asynchronously through ``api`` and return its execution id
    once ``watcher`` (another instance, or the same) sees it running."""
    fn = unique("slow")
    body = {"id": fn, "runtime": "python", "code": example("slow.py"),
            "limits": {"timeout_ms": (seconds + 60) * 1000}}
    assert api.post("/deploy", json=body).status_code == 201
    started = api.post(f"/invoke/{fn}", json={"seconds": seconds},
                       headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    execution = started.json()["execution_id"]
    watcher = watcher or api
    eventually(lambda: watcher.get(f"/executions/{execution}").json()["status"] == "running")
    return execution


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


class RedisProcess:
    """A real redis-server on a fixed free port of 127.0.0.1. With ``durable`` it keeps an
    append-only file, so a stop and start (an outage) loses nothing."""

    def __init__(self, workdir: Path, durable: bool = False) -> None:
        import shutil

        from plugins.testing import free_port

        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("redis-server is not installed (make test installs it)")
        self.port = free_port()
        self.workdir = workdir
        self.durable = durable
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        import subprocess

        import redis

        persistence = ["--appendonly", "yes" if self.durable else "no", "--save", ""]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.workdir), *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        eventually(lambda: _answers(client), timeout=10)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _answers(client: Any) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session, stopped at its end."""
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode over HTTP on 127.0.0.1 (boto3 itself is not mocked)."""
    import os

    from moto.server import ThreadedMotoServer

    from plugins.testing import free_port

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def new_bucket(endpoint: str) -> str:
    name = f"tiergate-{next(_counter)}-{os.urandom(3).hex()}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_objects(s3_server):
    from storage.objects.s3 import S3ObjectStore

    bucket = new_bucket(s3_server)
    return lambda: S3ObjectStore(bucket, "prefix/x", s3_server)


@pytest.fixture
def redis_kv(redis_server):
    import redis

    from storage.kv.redis import RedisKV

    redis.Redis.from_url(redis_server).flushdb()
    return lambda: RedisKV(redis_server)


@pytest.fixture
def redis_executions(redis_server):
    import redis

    from storage.executions.redis import RedisExecutionStore

    redis.Redis.from_url(redis_server).flushdb()
    return lambda: RedisExecutionStore(redis_server)


_redis_dbs = itertools.count(1)  # db 0 belongs to the contract suites, which flush it


def shared_env(redis_url: str, s3_endpoint: str, **extra: str) -> dict[str, str]:
    """Settings for gateways that share a fresh Redis database and a fresh S3 bucket."""
    import redis

    db = next(_redis_dbs)
    kv = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    redis.Redis.from_url(kv).flushdb()
    return {
        "TIERGATE_OBJECT_STORE": f"s3://{new_bucket(s3_endpoint)}/code",
        "TIERGATE_S3_ENDPOINT_URL": s3_endpoint,
        "TIERGATE_KV": kv,
        "TIERGATE_SECRET_KEY": "a passphrase every instance shares",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Any = None,
    input: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """The real ``tiergate`` command, with only the ``TIERGATE_*`` variables given in ``env``,
    its stdin a pipe (not a terminal)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
    full_env.update(env or {})
    return subprocess.run(
        [TIERGATE, *args], capture_output=True, text=True, env=full_env, cwd=cwd, input=input,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: …`` line a failed command printed (no traceback, exit status not 0)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error"), result.stderr
    return lines[0]
