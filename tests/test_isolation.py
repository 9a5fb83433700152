"""A hostile tenant, with only its own deploy and invoke key, against a real ``tiergate serve`` in
every layout this machine can run: ``make run`` (editable install, data dir inside the checkout,
as root), a pip install of the wheel with the data dir elsewhere (as root), and the gateway running
as an unprivileged uid, like the container image. Each escape and each flood must be contained.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, assert_problem, fixture, unique
from wheelhouse import build_wheelhouse, deploy_archive, zip_of

from plugins.testing import TiergateServer

UNPRIVILEGED_UID = 10001
PRIVATE_NAMES = ("admin.key", "secret.key", "tiergate.db")
WASM_FLOODS = {  # function id: module (tests/fixtures), in the shared wasm workers
    "wasm-logs": "log-flood.wat",  # 2,000 tiergate.log calls of 64 KiB
    "wasm-stdout": "wasi-flood.wat",  # a WASI module writing stdout in a loop
    "wasm-output": "big-output.wat",  # a core module answering more than the output cap
}
PACKAGE_HANDLER = """
import os
import tgtest_shout
from hostile import handler as attack


def handler(event, context):
    if event["action"] == "where":
        return {"code": os.path.dirname(os.path.abspath(__file__)),
                "env": os.path.dirname(os.path.dirname(tgtest_shout.__file__))}
    return attack(event, context)
"""
CANARIES = {
    "OPENAI_API_KEY": "sk-canary-openai-7f3a",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-91c2",
    "TIERGATE_CANARY_FOR_TESTS": "canary-gateway-env-5d1e",
}


@dataclass
class Layout:
    name: str
    server: TiergateServer
    secrets: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir


def _wheel_venv(target: Path) -> str:
    """tiergate installed from its wheel into a fresh venv (dependencies from this one)."""
    source = target / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", ".tiergate*", "build", "dist", "*.egg-info",
                                      "__pycache__", "node_modules"),
    )
    wheels = target / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(source)], check=True)
    env_dir = target / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(next(wheels.glob("tiergate-*.whl")))], check=True)
    shutil.rmtree(source)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "dependencies.pth").write_text(deps + "\n")
    return str(env_dir / "bin" / "tiergate")


def _unprivileged_launcher(uid: int) -> tuple[str, ...]:
    """Serve as ``uid`` in a private mount namespace in which the interpreter's directories can
    be reached by that uid (pyenv lives under /root, 0700, on this machine); nothing else
    changes for the gateway."""
    script = ["set -e"]
    for path in (Path(sys.base_prefix), Path(sys.prefix)):
        for parent in reversed(path.parents):
            if parent != Path("/") and not parent.stat().st_mode & stat.S_IXOTH:
                child = path.relative_to(parent).parts[0]
                script += [
                    'hold=$(mktemp -d)',
                    f'mount --bind "{parent / child}" "$hold"',
                    f'mount -t tmpfs -o mode=755 tmpfs "{parent}"',
                    f'mkdir -p "{parent / child}"',
                    f'mount --bind "$hold" "{parent / child}"',
                ]
                break
    script.append(f'exec setpriv --reuid={uid} --regid={uid} --clear-groups "$@"')
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh")


@pytest.fixture(scope="module")
def wheelhouse():
    """The wheels a package's requirements resolve from, readable by every layout's uid."""
    place = Path(tempfile.mkdtemp(prefix="tiergate-wheelhouse-"))
    yield build_wheelhouse(place)
    shutil.rmtree(place, ignore_errors=True)


@pytest.fixture(scope="module", params=["make-run", "pip-install", "unprivileged"])
def layout(request, tmp_path_factory, wheelhouse):
    env = {**CANARIES, "TIERGATE_PYTHON_FIND_LINKS": str(wheelhouse)}
    cleanup: list[Path] = []
    if request.param == "make-run":
        data_dir = ROOT / f".tiergate-isolation-{secrets.token_hex(4)}"
        cleanup.append(data_dir)
        server = TiergateServer(data_dir, {**env, "TIERGATE_ADMIN_KEY": ""})
    elif request.param == "pip-install":
        program = _wheel_venv(tmp_path_factory.mktemp("wheel"))
        env["TIERGATE_SECRET_KEY"] = "canary-secret-key-passphrase"
        server = TiergateServer(tmp_path_factory.mktemp("pip") / "data", env, program=program)
    else:
        if os.geteuid() != 0:
            pytest.skip("the tests already run unprivileged: the other layouts cover it")
        home = Path(tempfile.mkdtemp(prefix="tiergate-unprivileged-"))
        os.chown(home, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        cleanup.append(home)
        server = TiergateServer(
            home / "data", env, launcher=_unprivileged_launcher(UNPRIVILEGED_UID)
        )
    server.start()
    found = Layout(request.param, server, list(CANARIES.values()))
    found.secrets.append(server.admin_key)
    for name in ("secret.key",):
        path = server.data_dir / name
        if path.exists() and os.geteuid() == 0:
            found.secrets.append(path.read_text().strip())
    yield found
    server.stop()
    for path in cleanup:
        shutil.rmtree(path, ignore_errors=True)
    if request.param == "make-run":
        server.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tenant(layout):
    """A deploy+invoke key of a tenant of its own, with the hostile function deployed."""
    with layout.server.client() as admin:
        created = admin.post(
            "/admin/keys", json={"tenant": unique("mallory"), "roles": ["deploy", "invoke"]}
        )
        assert created.status_code == 201, created.text
    with layout.server.client(created.json()["key"]) as client:
        deployed = client.post("/deploy", json={
            "id": "hostile", "runtime": "python", "code": fixture("hostile.py"),
            "limits": {"timeout_ms": 20000, "memory_mb": 96, "tmp_mb": 16},
        })
        assert deployed.status_code == 201, deployed.text
        package = zip_of({"handler.py": PACKAGE_HANDLER, "hostile.py": fixture("hostile.py"),
                          "requirements.txt": "tgtest-shout==1.0\n"})
        deployed = deploy_archive(client, "hostile-pkg", package,
                                  limits={"timeout_ms": 20000, "memory_mb": 96, "tmp_mb": 16})
        assert deployed.status_code == 201, deployed.text
        for name, code in WASM_FLOODS.items():
            deployed = client.post("/deploy", json={
                "id": name, "runtime": "wasm", "code": fixture(code),
                "limits": {"timeout_ms": 3000, "max_output_kb": 1024}})
            assert deployed.status_code == 201, deployed.text
        yield client


def attack(client, action, function="hostile", **event):
    answer = client.post(f"/invoke/{function}", json={"action": action, **event})
    assert answer.status_code == 200, answer.text
    return answer.json()["output"]


def exhausting(client, action, **event):
    """An attack that leaves its worker without memory to spare: on a function of its own."""
    fn = unique("exhaust")
    deployed = client.post("/deploy", json={
        "id": fn, "runtime": "python", "code": fixture("hostile.py"),
        "limits": {"memory_mb": 96, "tmp_mb": 16}})
    assert deployed.status_code == 201, deployed.text
    return attack(client, action, function=fn, **event)


def assert_no_secret(layout, text):
    for value in layout.secrets:
        assert value not in text, f"{layout.name}: a function saw a secret of the gateway"


def _descendants(pid: int) -> list[dict[str, str]]:
    """Every process below ``pid``, as the host sees it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            parent = int(status.split("PPid:")[1].split()[0])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                status = Path(f"/proc/{child}/status").read_text()
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            found.append({**fields, "cmdline": cmdline.decode(errors="replace")})
    return found


def test_runs_unprivileged_without_capabilities(layout, tenant):
    me = attack(tenant, "identity")
    assert int(me["cap_eff"], 16) == 0 and int(me["cap_bnd"], 16) == 0
    assert me["no_new_privs"] == "1" and me["seccomp"] == "2"
    assert_no_secret(layout, str(me["env"]))
    assert set(me["env"]) <= {"PATH", "HOME", "TMPDIR", "LANG", "PWD"}
    assert attack(tenant, "listdir", paths=["."]) == {".": []}  # even installed under /tmp
    workers = [p for p in _descendants(layout.server.process.pid)  # not bwrap, not the launcher
               if p["cmdline"].split()[2:4] == ["-m", "plugins.python.worker"]]
    assert workers, "no python worker found below the gateway"
    for worker in workers:  # as the host sees them: never root, no capability
        assert "0" not in worker["Uid"].split(), worker["Uid"]
        assert int(worker["CapEff"], 16) == 0 and int(worker["CapPrm"], 16) == 0


def test_data_dir_keys_and_database_are_invisible(layout, tenant):
    private = [str(layout.data_dir / name) for name in PRIVATE_NAMES]
    seen = attack(tenant, "read", paths=[*private, "/etc/shadow", "/root/.bash_history"])
    assert all(value in ("ENOENT", "EACCES") for value in seen.values()), seen
    listed = attack(tenant, "listdir", paths=[str(layout.data_dir), str(layout.data_dir.parent)])
    assert listed[str(layout.data_dir)] == "ENOENT", listed
    found = attack(tenant, "walk", names=list(PRIVATE_NAMES))
    assert found["hits"] == [] and found["files"] > 100  # it did look: Python's files are there
    assert_no_secret(layout, str(found))


def test_the_checkout_shows_only_the_packages(layout, tenant):
    if layout.name != "make-run":
        pytest.skip("only make run serves from the checkout")
    listed = attack(tenant, "listdir", paths=[str(ROOT)])[str(ROOT)]
    assert not any(name.startswith(".tiergate") for name in listed), listed
    assert set(listed) <= {"plugins", "gateway", "storage", "tiers", "tiergate.py", ".venv"}


def test_gateway_processes_and_environment_are_invisible(layout, tenant):
    seen = attack(tenant, "processes")
    assert str(layout.server.process.pid) not in seen
    assert_no_secret(layout, str(seen))
    assert len(seen) < 10, seen  # its own sandbox's processes only


def test_no_way_out_through_the_kernel(layout, tenant):
    tried = attack(tenant, "syscalls", pid=layout.server.process.pid)
    assert not [name for name, result in tried.items() if result == "ok"], tried
    assert tried["unshare_user"] == tried["mount"] == "EPERM", tried


def test_no_network(layout, tenant, redis_server):
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    reached = attack(tenant, "connect", targets=[
        ["127.0.0.1", layout.server.port], ["127.0.0.1", redis_port], ["1.1.1.1", 53],
    ])
    assert "connected" not in reached.values(), reached


def test_egress_never_reaches_the_gateway_or_its_stores(layout, tenant, redis_server):
    """A function with network (the private-address setting off, its default) that lists the
    gateway's own port and Redis: the proxy refuses them all the same, refuses what it does not
    list by name, and nothing goes around it."""
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    gateway = layout.server.port
    fn = unique("egress")
    deployed = tenant.post("/deploy", json={
        "id": fn, "runtime": "python", "code": fixture("hostile.py"),
        "network": {"allow": [f"127.0.0.1:{gateway}", f"localhost:{redis_port}",
                              "169.254.169.254:80", f"[::1]:{gateway}"]},
        "limits": {"timeout_ms": 20000, "memory_mb": 96, "tmp_mb": 16}})
    assert deployed.status_code == 201, deployed.text
    targets = [["127.0.0.1", gateway], ["localhost", redis_port], ["169.254.169.254", 80],
               ["[::1]", gateway], ["127.0.0.1", redis_port], ["localhost", gateway]]
    answer = tenant.post(f"/invoke/{fn}", json={"action": "proxy", "targets": targets}).json()
    through = answer["output"]
    assert len(through) == len(targets), through
    assert all(line == "HTTP/1.1 403 Forbidden" for line in through.values()), through
    assert answer["metrics"]["egress"]["refused"] == len(targets), answer["metrics"]
    assert answer["metrics"]["egress"]["allowed"] == 0
    direct = attack(tenant, "connect", function=fn, targets=[
        ["127.0.0.1", gateway], ["127.0.0.1", redis_port], ["169.254.169.254", 80]])
    assert "connected" not in direct.values(), direct


def test_processes_and_threads_are_capped(layout, tenant):
    forked = attack(tenant, "fork", count=500)
    assert forked["forked"] < 64 and forked["error"] == "EAGAIN", forked
    threads = exhausting(tenant, "threads", count=500)
    assert threads["started"] < 64, threads
    assert layout.server.client().get("/healthz").status_code == 200


def test_scratch_space_is_capped_and_counted(layout, tenant):
    filled = attack(tenant, "fill", dir="/tmp", mb=1000)
    assert filled["error"] == "ENOSPC" and filled["written_mb"] <= 16, filled
    for place in ("/", "/dev/shm", "/usr"):
        assert attack(tenant, "fill", dir=place, mb=1)["error"] in ("EROFS", "EACCES")
    grabbed = exhausting(tenant, "memory")
    assert grabbed["allocated_mb"] <= 96 - 16, grabbed


def test_output_over_the_cap_is_an_attempt_failure(layout, tenant):
    problem = assert_problem(
        tenant.post("/invoke/hostile", json={"action": "output", "bytes": 7 << 20}),
        500, "cascade_exhausted",
    )
    assert problem["attempts"][0].get("code") == "output_too_large", problem["attempts"]


def test_log_floods_are_capped(layout, tenant):
    answer = tenant.post("/invoke/hostile", json={"action": "lines", "count": 100_000})
    body = answer.json()
    *kept, last = [entry["message"] for entry in body["logs"]]
    assert sum(len(m) for m in kept) <= 1 << 20
    assert last.startswith("dropped ") and "bytes of logs" in last
    wide = tenant.post("/invoke/hostile", json={"action": "lines", "count": 1, "width": 100_000})
    assert max(len(e["message"].encode()) for e in wide.json()["logs"]) <= 8 * 1024
    read = tenant.get("/functions/hostile/logs", params={"limit": 50})
    assert read.status_code == 200 and len(read.content) < 4 << 20


def test_function_stderr_never_reaches_the_gateway_log(layout, tenant):
    """6.8 MB written straight to fd 2: the gateway reads at most 256 KiB a second of it (the
    worker blocks, here until its deadline), keeps 4 KiB and logs that escaped."""
    before = layout.server.log_path.stat().st_size
    flood = tenant.post("/invoke/hostile", params={"timeout_ms": 2000},
                        json={"action": "stderr", "count": 100_000})
    assert flood.status_code == 504, flood.text
    assert attack(tenant, "echo", value="alive") == "alive"
    tenant.post("/invoke/hostile", json={"action": "frame"})  # ends the worker: stderr is told
    grown = layout.server.log_path.read_bytes()[before:]
    assert len(grown) < 64 * 1024
    assert b"\nERROR tiergate.gateway: forged" not in grown
    assert not grown.startswith(b"2030-01-01")


def test_a_forged_frame_ends_only_that_worker(layout, tenant):
    problem = assert_problem(
        tenant.post("/invoke/hostile", json={"action": "frame"}), 500, "cascade_exhausted"
    )
    assert "frame" in problem["attempts"][0]["error"]
    assert attack(tenant, "echo", value=[1, 2]) == [1, 2]


def test_wasm_floods_are_capped_in_the_shared_workers(layout, tenant):
    logged = tenant.post("/invoke/wasm-logs", json=None).json()
    *kept, last = logged["logs"]
    assert sum(len(entry["message"]) for entry in kept) <= 1 << 20
    assert last["message"].startswith("dropped ")
    for fn in ("wasm-stdout", "wasm-output"):
        problem = assert_problem(tenant.post(f"/invoke/{fn}", json=1), 500, "cascade_exhausted")
        assert problem["attempts"][-1].get("code") == "output_too_large", problem["attempts"]


def test_deploy_check_runs_sandboxed(layout, tenant):
    key_path = layout.data_dir / "admin.key"
    code = (
        f"data = open({str(key_path)!r}).read()\n"
        "raise RuntimeError('stolen: ' + data)\n"
        "def handler(event, context):\n    return 1\n"
    )
    problem = assert_problem(
        tenant.post("/deploy", json={"id": unique("thief"), "runtime": "python", "code": code}),
        422, "compile_error",
    )
    assert "FileNotFoundError" in problem["detail"]
    assert_no_secret(layout, problem["detail"])


def test_a_package_reaches_only_its_own_code_and_environment(layout, tenant):
    """A function deployed as a package with requirements: its code and its (shared)
    environment are shown read-only, and nothing more of the data dir than before."""
    me = attack(tenant, "identity", function="hostile-pkg")
    assert int(me["cap_eff"], 16) == 0 and me["seccomp"] == "2"
    where = attack(tenant, "where", function="hostile-pkg")
    for place in (where["code"], where["env"], f"{where['env']}/tgtest_shout"):
        filled = attack(tenant, "fill", function="hostile-pkg", dir=place, mb=1)
        assert filled["error"] in ("EROFS", "EACCES"), (place, filled)
    runtime_dir = layout.data_dir / "runtimes" / "python"
    hidden = [str(layout.data_dir), str(runtime_dir / "envs"), str(runtime_dir / "code")]
    listed = attack(tenant, "listdir", function="hostile-pkg", paths=[*hidden, "/function"])
    assert all(listed[path] == "ENOENT" for path in hidden), listed
    assert listed["/function"] == ["code", "env"], listed
    private = [str(layout.data_dir / name) for name in PRIVATE_NAMES]
    seen = attack(tenant, "read", function="hostile-pkg", paths=private)
    assert all(value in ("ENOENT", "EACCES") for value in seen.values()), seen
    found = attack(tenant, "walk", function="hostile-pkg", names=list(PRIVATE_NAMES))
    assert found["hits"] == [], found
    assert_no_secret(layout, str([me, where, listed, seen, found]))


def test_another_tenants_code_is_invisible(layout, tenant):
    with layout.server.client() as admin:
        other = admin.post("/admin/keys", json={"tenant": unique("alice"), "roles": ["deploy"]})
    secret_code = "SECRET = 'alice-private-algorithm'\ndef handler(event, context):\n    return 1\n"
    with layout.server.client(other.json()["key"]) as alice:
        assert alice.post("/deploy", json={
            "id": "private", "runtime": "python", "code": secret_code}).status_code == 201
    code_dir = layout.data_dir / "runtimes" / "python" / "code"
    files = [str(p) for p in code_dir.glob("*.py")] if os.geteuid() == 0 else []
    seen = attack(tenant, "read", paths=files or [str(code_dir / "x.py")])
    assert "alice-private-algorithm" not in str(seen)
    assert attack(tenant, "listdir", paths=[str(code_dir)])[str(code_dir)] == "ENOENT"



def test_tenant_code_runs_below_the_gateway(layout, tenant):
    """Python sandboxes and the shared wasm workers alike run at nice 10: a tenant's spinning
    code never outranks the gateway or another tenant's function (the floods test below)."""
    assert attack(tenant, "identity")["nice"] == 10
    assert tenant.post("/invoke/wasm-logs", json={}).status_code in (200, 500)
    niceness = {}
    for process in _descendants(layout.server.process.pid):
        if "-m plugins.wasm.worker" in process["cmdline"]:
            stat = Path(f"/proc/{process['Pid']}/stat").read_text()
            niceness[process["Pid"]] = int(stat.rsplit(")", 1)[1].split()[16])
    assert niceness and set(niceness.values()) == {10}, niceness


def _p50(client, fn: str, calls: int = 40) -> float:
    import statistics
    import time

    took = []
    for number in range(calls):
        started = time.perf_counter()
        answer = client.post(f"/invoke/{fn}", json={"action": "echo", "value": number})
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200 and answer.json()["output"] == number
    return statistics.median(took)


FLOODER = """
import sys, httpx, orjson
url, key, floods = sys.argv[1], sys.argv[2], orjson.loads(sys.argv[3])
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
    while True:
        for event in floods:
            api.post(f"/invoke/{event.pop('function', 'hostile')}", json=event)
"""


def test_floods_leave_other_functions_responsive(layout, tenant):
    """Every flood, over and over, from two clients of one tenant (in processes of their own, so
    the measuring client shares no interpreter with them); another tenant's function keeps its
    median latency within twice its unloaded value. Measured in rounds, unloaded then loaded, on
    a machine that other work may share: the best round must hold (a leak shows in every one)."""
    import json
    import time

    with layout.server.client() as admin:
        other = admin.post("/admin/keys", json={"tenant": unique("bob"),
                                                "roles": ["deploy", "invoke"]})
    floods = [
        {"action": "fork", "count": 500}, {"action": "fill", "dir": "/tmp", "mb": 1000},
        {"action": "output", "bytes": 7 << 20}, {"action": "lines", "count": 100_000},
        {"action": "stderr", "count": 100_000}, {"action": "threads", "count": 500},
        {"action": "spin", "seconds": 1},
        *({"function": fn} for fn in WASM_FLOODS),
    ]
    key = tenant.headers["Authorization"].split()[1]
    ratios = []
    with layout.server.client(other.json()["key"]) as bob:
        assert bob.post("/deploy", json={"id": "steady", "runtime": "python",
                                         "code": fixture("hostile.py")}).status_code == 201
        _p50(bob, "steady", 10)  # warm
        for _ in range(3):
            unloaded = _p50(bob, "steady", 20)
            attackers = [
                subprocess.Popen([sys.executable, "-c", FLOODER, layout.server.url, key,
                                  json.dumps(floods)])
                for _ in range(2)
            ]
            try:
                time.sleep(0.5)
                ratios.append(_p50(bob, "steady", 20) / unloaded)
            finally:
                for attacker in attackers:
                    attacker.kill()
                    attacker.wait()
            time.sleep(1)  # the calls they left running end
    assert min(ratios) <= 2, f"p50 under floods / unloaded, per round: {ratios}"

# Where no sandbox can be made, code does not run; without one only when an operator says so.

ECHO = "def handler(event, context):\n    return event\n"


def _runtimes_listing(**env: str) -> str:
    tiergate = str(Path(sys.executable).parent / "tiergate")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}
    done = subprocess.run([tiergate, "runtimes"], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_bubblewrap_python_code_does_not_run(tiergate_factory, tmp_path):
    server = tiergate_factory()
    with server.client() as api:
        assert api.post("/deploy", json={"id": "before", "runtime": "python",
                                         "code": ECHO}).status_code == 201
    server.stop()
    missing = str(tmp_path / "no-bwrap-here")
    server.env["TIERGATE_BWRAP"] = missing
    server.start()
    with server.client() as api:
        problem = assert_problem(
            api.post("/deploy", json={"id": "after", "runtime": "python", "code": ECHO}),
            503, "runtime_unavailable",
        )
        assert "bubblewrap (bwrap) is not installed" in problem["detail"]
        for _ in range(8):  # an operator problem, never an open circuit or an LLM's turn
            problem = assert_problem(api.post("/invoke/before", json=1), 503, "runtime_unavailable")
        assert "execution_id" not in problem
        ready = api.get("/readyz")
        assert ready.status_code == 200
        assert "bubblewrap (bwrap) is not installed" in ready.json()["runtimes"]["python"]
        assert ready.json()["runtimes"]["wasm"] == "ok"
        assert api.post("/deploy", json={"id": "wat", "runtime": "wasm",
                                         "code": fixture("counter.wat")}).status_code == 201
    assert "function code cannot be sandboxed here" in server.log()
    listing = _runtimes_listing(TIERGATE_BWRAP=missing)
    assert "python  unavailable: bubblewrap (bwrap) is not installed" in listing


def test_a_bubblewrap_that_cannot_make_namespaces_is_refused(tiergate_factory, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = tiergate_factory({"TIERGATE_BWRAP": str(fake)})
    with server.client() as api:
        problem = assert_problem(
            api.post("/deploy", json={"id": "nope", "runtime": "python", "code": ECHO}),
            503, "runtime_unavailable",
        )
        assert "No permissions to create new namespace" in problem["detail"]


def test_unsandboxed_only_when_asked_and_loudly(tiergate_factory):
    server = tiergate_factory({"TIERGATE_SANDBOX": "none"})
    with server.client() as api:
        assert api.post("/deploy", json={"id": "open", "runtime": "python",
                                         "code": ECHO}).status_code == 201
        assert api.post("/invoke/open", json=[1]).json()["output"] == [1]
    server.restart()
    assert server.log().count("WARNING tiergate.sandbox: TIERGATE_SANDBOX=none") == 2
    assert "NO isolation" in _runtimes_listing(TIERGATE_SANDBOX="none")


def test_a_data_dir_inside_what_functions_see_is_refused(tiergate_factory):
    data_dir = Path(sys.prefix) / f"tiergate-data-{secrets.token_hex(4)}"
    try:
        server = tiergate_factory(data_dir=data_dir)
        with server.client() as api:
            problem = assert_problem(
                api.post("/deploy", json={"id": "x", "runtime": "python", "code": ECHO}),
                503, "runtime_unavailable",
            )
        assert "private path" in problem["detail"] and str(data_dir) in problem["detail"]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
