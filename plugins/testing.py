"""pytest plugin (entry point ``pytest11``): a real ``tiergate serve`` for tests, ours and plugin
authors'. ``tiergate_server`` is one gateway per test session; ``tiergate_factory`` starts more,
each on its own data dir and free port, with extra environment, and stops them afterwards.
``RuntimeConformance`` is the shared suite every runtime should pass (see ``conformance``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .conformance import RuntimeConformance, parametrize_cases

__all__ = ["RuntimeConformance", "TiergateServer", "free_port"]

ADMIN_KEY = "tg_test_admin_key_0123456789abcdefghijklmnopqrstuvwxyz"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TiergateServer:
    """One ``tiergate serve`` subprocess bound to 127.0.0.1 on a free port."""

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        *,
        program: str | None = None,
        launcher: tuple[str, ...] = (),
    ) -> None:
        """``program``: the ``tiergate`` executable (default: this environment's);
        ``launcher``: a command that runs it (e.g. ``setpriv`` to serve as another user)."""
        self.data_dir = data_dir
        self.port = free_port()
        # One process unless a test asks for more (serve's default is one per core).
        self.env = {"TIERGATE_ADMIN_KEY": ADMIN_KEY, "TIERGATE_WORKERS": "1", **(env or {})}
        self.args = args
        self.program = program or _tiergate()
        self.launcher = launcher
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_key(self) -> str:
        return (
            self.env.get("TIERGATE_ADMIN_KEY") or (self.data_dir / "admin.key").read_text().strip()
        )

    def start(self) -> TiergateServer:
        # a developer's own TIERGATE_, OPENAI_ and OTEL_ settings do not leak into the tests
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TIERGATE_", "OPENAI_", "OTEL_"))
        }
        env.update(self.env)
        env["TIERGATE_DATA_DIR"] = str(self.data_dir)
        command = [
            *self.launcher,
            self.program,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"tiergate serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"tiergate serve did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> TiergateServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    def client(self, key: str | None = None, **kwargs: Any) -> Any:
        import httpx

        key = self.admin_key if key is None else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


def _tiergate() -> str:
    found = shutil.which("tiergate", path=str(Path(sys.executable).parent))
    return found or shutil.which("tiergate") or "tiergate"


@pytest.fixture
def tiergate_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[TiergateServer] = []

    def start(
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> TiergateServer:
        server = TiergateServer(data_dir or tmp_path_factory.mktemp("tiergate"), env, args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tiergate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiergateServer]:
    server = TiergateServer(tmp_path_factory.mktemp("tiergate-session")).start()
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_cases(metafunc)
