"""Python functions as packages: a zip or tar with several modules and a requirements.txt,
resolved at deploy from a wheelhouse these tests build themselves, into environments shared by
every function with the same lock; archives that try to leave their tree or to flood the disk
are refused, naming the entry; ``tiergate deploy DIR``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_problem, fixture, unique
from wheelhouse import build_wheelhouse, deploy_archive, tar_of, zip_of

from plugins.testing import TiergateServer

HANDLER = (
    "import helpers\n"
    "from tgtest_shout import shout\n\n\n"
    "def handler(event, context):\n"
    "    return {'said': shout(helpers.greet(event['name']))}\n"
)
HELPERS = "def greet(name):\n    return f'hello {name}'\n"
WRITER = (
    "import os\n"
    "import tgtest_shout\n\n\n"
    "def handler(event, context):\n"
    "    places = {'code': os.path.dirname(__file__),\n"
    "              'env': os.path.dirname(os.path.dirname(tgtest_shout.__file__)),\n"
    "              'package': os.path.dirname(tgtest_shout.__file__)}\n"
    "    found = {}\n"
    "    for name, place in places.items():\n"
    "        try:\n"
    "            with open(os.path.join(place, 'planted.py'), 'w') as fh:\n"
    "                fh.write('x = 1')\n"
    "            found[name] = 'written'\n"
    "        except OSError as exc:\n"
    "            found[name] = exc.strerror\n"
    "    return {'places': places, 'written': found,\n"
    "            'listing': sorted(os.listdir(places['code']))}\n"
)


def package(requirements: str = "tgtest-shout==1.0\n") -> dict[str, str]:
    return {"handler.py": HANDLER, "helpers.py": HELPERS, "requirements.txt": requirements}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def gate(tmp_path_factory, wheelhouse):
    server = TiergateServer(
        tmp_path_factory.mktemp("packages") / "data",
        {"TIERGATE_PYTHON_FIND_LINKS": str(wheelhouse)},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(gate):
    with gate.client() as client:
        yield client


def deployed(api, archive: bytes, fn: str | None = None, **manifest) -> str:
    fn = fn or unique("pkg")
    answer = deploy_archive(api, fn, archive, **manifest)
    assert answer.status_code == 201, answer.text
    return fn


def environment(api, fn: str, version: int = 1) -> dict:
    versions = api.get(f"/functions/{fn}/versions").json()["versions"]
    return next(v for v in versions if v["version"] == version)["environment"]


def envs_dir(gate) -> Path:
    return gate.data_dir / "runtimes" / "python" / "envs"


def test_a_package_imports_its_requirement_and_a_module_of_its_own(api):
    fn = deployed(api, zip_of(package()))
    answer = api.post(f"/invoke/{fn}", json={"name": "ada"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == {"said": "HELLO ADA!"}
    env = environment(api, fn)
    assert [line.split(" ")[0] for line in env["lock"]] == ["tgtest-mark==1.2", "tgtest-shout==1.0"]
    assert all(" --hash=sha256:" in line for line in env["lock"])
    assert len(env["sha256"]) == 64


def test_two_functions_with_the_same_lock_share_one_environment(api, gate):
    first = deployed(api, zip_of(package()))
    second = deployed(api, tar_of({
        "handler.py": "from tgtest_shout import shout\n\n\n"
                      "def handler(event, context):\n    return shout(event)\n",
        "requirements.txt": "# the same lock, written otherwise\ntgtest_shout  # any version\n",
    }), filename="code.tar.gz")
    assert api.post(f"/invoke/{second}", json="hi").json()["output"] == "HI!"
    assert environment(api, first) == environment(api, second)
    sha256 = environment(api, first)["sha256"]
    on_disk = envs_dir(gate) / sha256
    assert (on_disk / "tgtest_shout" / "__init__.py").is_file()
    assert not on_disk.stat().st_mode & 0o222  # read-only, for the gateway too
    assert not (on_disk / "tgtest_shout" / "__init__.py").stat().st_mode & 0o222
    named = [p.name for p in envs_dir(gate).iterdir() if not p.name.startswith(".")]
    assert named.count(sha256) == 1
    assert not [p for p in envs_dir(gate).iterdir() if p.name.startswith(".tmp")]


def test_an_entry_in_a_subpackage_with_relative_imports(api):
    fn = deployed(api, zip_of({
        "app/__init__.py": "",
        "app/main.py": "from . import util\n\n\ndef handler(event, context):\n"
                       "    return util.double(event)\n",
        "app/util.py": "def double(x):\n    return 2 * x\n",
    }), entry="app/main.py")
    assert api.post(f"/invoke/{fn}", json=21).json()["output"] == 42
    described = api.get(f"/functions/{fn}").json()
    assert described["entry"] == "app/main.py" and "environment" not in described["versions"][0]


def test_a_package_in_one_top_level_directory(api):
    fn = deployed(api, zip_of({f"myfn/{name}": text for name, text in package().items()}))
    assert api.post(f"/invoke/{fn}", json={"name": "bo"}).json()["output"] == {
        "said": "HELLO BO!"
    }


def test_an_unresolvable_requirement_fails_the_deploy_and_changes_nothing(api):
    fn = deployed(api, zip_of(package()))
    refused = deploy_archive(api, fn, zip_of(package("tgtest-shout==1.0\ntgtest-nosuch>=2\n")))
    problem = assert_problem(refused, 422, "compile_error")
    assert "tgtest-nosuch" in problem["detail"]
    assert "No matching distribution" in problem["detail"] or "Could not find" in problem["detail"]
    assert api.get(f"/functions/{fn}").json()["latest_version"] == 1
    assert api.post(f"/invoke/{fn}", json={"name": "x"}).json()["output"] == {"said": "HELLO X!"}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("-r /etc/passwd", "options are not allowed"),
        ("--index-url http://127.0.0.1:1/simple", "options are not allowed"),
        ("tgtest-shout @ file:///etc/passwd", "no URLs or paths"),
        ("./some/dir", "no URLs or paths"),
    ],
)
def test_requirements_may_only_name_requirements(api, line, words):
    fn = unique("req")
    refused = deploy_archive(api, fn, zip_of(package(f"tgtest-mark\n{line}\n")))
    problem = assert_problem(refused, 422, "compile_error")
    assert words in problem["detail"] and "line 2" in problem["detail"]
    assert problem["entry"] == "requirements.txt"
    assert api.get(f"/functions/{fn}").status_code == 404


MANY = {f"m{i}.py": "" for i in range(1000)}
BOMB = {"handler.py": "def handler(e, c):\n    return 1\n", "zeros.bin": b"\0" * (65 << 20)}


@pytest.mark.parametrize(
    ("archive", "entry", "words"),
    [
        (zip_of({"handler.py": "", "../escape.py": "x = 1"}), "../escape.py", "'..'"),
        (zip_of({"handler.py": "", "/etc/cron.d/x": "x"}), "/etc/cron.d/x", "absolute"),
        (zip_of({"handler.py": ""}, links={"up": "../../../etc"}), "up", "symbolic link"),
        (tar_of({"handler.py": ""}, links={"passwd": "/etc/passwd"}), "passwd", "link"),
        (tar_of({"handler.py": ""}, links={"hard": "/etc/shadow"}, hard=True), "hard", "link"),
        (tar_of({"handler.py": "", "a/../../b.py": ""}), "a/../../b.py", "'..'"),
        (zip_of({"handler.py": "", **MANY}), "m999.py", "at most 1000 entries"),
        (zip_of(BOMB), "zeros.bin", "64 MiB unpacked"),
        (zip_of({"main.py": "def handler(e, c):\n    return 1\n"}), "handler.py", "no handler.py"),
    ],
    ids=["dotdot", "absolute", "zip-symlink", "tar-symlink", "tar-hardlink", "tar-dotdot",
         "too-many-files", "too-large-unpacked", "no-entry"],
)
def test_bad_archives_are_refused_naming_the_entry(api, gate, archive, entry, words):
    fn = unique("badzip")
    problem = assert_problem(deploy_archive(api, fn, archive), 422, "compile_error")
    assert problem["entry"] == entry and entry in problem["detail"]
    assert words in problem["detail"]
    assert api.get(f"/functions/{fn}").status_code == 404
    code_dir = gate.data_dir / "runtimes" / "python" / "code"
    assert not [p for p in code_dir.iterdir() if p.name.startswith(".tmp")]


def test_an_error_in_a_module_names_the_file_and_line(api):
    broken = "def greet(name):\n    return 1 / 0\n\nGREETING = greet('x')\n"
    archive = zip_of({**package(), "helpers.py": broken})
    problem = assert_problem(deploy_archive(api, unique("pkg"), archive), 422, "compile_error")
    assert "ZeroDivisionError" in problem["detail"] and "(helpers.py, line 2)" in problem["detail"]
    assert problem["file"] == "helpers.py" and problem["line"] == 2


def test_entry_is_for_archives_only(api):
    answer = api.post("/deploy", json={"id": unique("one"), "runtime": "python",
                                       "code": "def handler(e, c):\n    return e\n",
                                       "entry": "main.py"})
    assert "code archive" in assert_problem(answer, 422, "compile_error")["detail"]
    answer = api.post("/deploy", json={"id": unique("one"), "runtime": "python", "code": "x",
                                       "entry": "../main.py"})
    assert assert_problem(answer, 400, "invalid_manifest")["field"] == "entry"


def test_a_package_cannot_write_to_its_code_or_environment(api):
    fn = deployed(api, zip_of({"handler.py": WRITER, "requirements.txt": "tgtest-shout\n"}))
    seen = api.post(f"/invoke/{fn}", json={}).json()["output"]
    assert seen["places"]["code"] != seen["places"]["env"]
    assert all(result != "written" for result in seen["written"].values()), seen
    assert seen["listing"] == ["handler.py", "requirements.txt"]


def test_the_cli_deploys_a_directory(gate, tmp_path):
    source = tmp_path / "shouter"
    (source / "__pycache__").mkdir(parents=True)
    (source / ".git").mkdir()
    for name, text in package().items():
        (source / name).write_text(text)
    (source / "handler.py").write_text("import os\n" + HANDLER + (
        "\n\ndef files(event, context):\n"
        "    return sorted(os.listdir(os.path.dirname(__file__)))\n"
    ))
    (source / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"junk")
    (source / ".git" / "config").write_text("[core]\n")
    tiergate = str(Path(sys.executable).parent / "tiergate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERGATE_")}

    def deploy(*more: str) -> str:
        done = subprocess.run([tiergate, "deploy", str(source), "--url", gate.url,
                               "--key", gate.admin_key, *more], capture_output=True, text=True,
                              env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert deploy().startswith("deployed shouter version 1 (python, ")
    with gate.client() as api:
        assert api.post("/invoke/shouter", json={"name": "cli"}).json()["output"] == {
            "said": "HELLO CLI!"
        }
    (source / "files.py").write_text("from handler import files as handler\n")
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"entry": "files.py"}')
    assert deploy("--id", "listing", "--manifest", str(manifest)).startswith(
        "deployed listing version 1 (python, ")
    with gate.client() as api:
        shipped = api.post("/invoke/listing", json=None).json()["output"]
        assert shipped == ["files.py", "handler.py", "helpers.py", "requirements.txt"]
        deploy()
        deploy()
        versions = api.get("/functions/shouter/versions").json()["versions"]
    assert versions[1]["code_sha256"] == versions[2]["code_sha256"]  # the same zip, byte for byte


def test_a_lost_environment_is_rebuilt_from_the_recorded_lock(tiergate_factory, wheelhouse):
    from plugins.python.archive import remove_tree

    server = tiergate_factory({"TIERGATE_PYTHON_FIND_LINKS": str(wheelhouse)})
    with server.client() as api:
        fn = deployed(api, zip_of(package()))
        sha256 = environment(api, fn)["sha256"]
    server.stop()
    runtime_dir = server.data_dir / "runtimes" / "python"
    remove_tree(runtime_dir / "envs")
    remove_tree(runtime_dir / "code")
    server.start()  # like another instance that shares the stores but not this disk
    with server.client() as api:
        answer = api.post(f"/invoke/{fn}", json={"name": "again"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == {"said": "HELLO AGAIN!"}
    assert (runtime_dir / "envs" / sha256 / "tgtest_mark").is_dir()


def test_the_disk_cache_keeps_what_loaded_functions_hold_and_removes_the_rest(
    tiergate_factory, wheelhouse
):
    """Code trees and environments on a gateway's disk are a cache within
    TIERGATE_PYTHON_MAX_DISK_MB: here a budget nothing fits in, so every sweep removes all that
    no loaded function holds, and a function whose environment went is rebuilt at its load."""
    server = tiergate_factory({"TIERGATE_PYTHON_FIND_LINKS": str(wheelhouse),
                               "TIERGATE_PYTHON_MAX_DISK_MB": "0.001"})
    root = server.data_dir / "runtimes" / "python"

    def on_disk(kind: str) -> set[str]:
        return {p.name for p in (root / kind).iterdir() if not p.name.startswith(".")}

    with server.client() as api:
        shouter = deployed(api, zip_of(package()))
        shouter_env = environment(api, shouter)["sha256"]
        assert on_disk("envs") == set() and on_disk("code") == set()  # swept at once
        assert api.post(f"/invoke/{shouter}", json={"name": "x"}).json()["output"] == {
            "said": "HELLO X!"}  # rebuilt from its lock, and held while loaded
        assert on_disk("envs") == {shouter_env}
        marker = deployed(api, zip_of({
            "handler.py": "from tgtest_mark import MARK\n\n\n"
                          "def handler(event, context):\n    return event + MARK\n",
            "requirements.txt": "tgtest-mark\n"}))
        marker_env = environment(api, marker)["sha256"]
        assert marker_env != shouter_env
        assert on_disk("envs") == {shouter_env}  # the new one went, the held one stayed
        assert api.post(f"/invoke/{marker}", json="hey").json()["output"] == "hey!"
        assert on_disk("envs") == {shouter_env, marker_env}
        assert api.delete(f"/functions/{shouter}").status_code == 204
        single = unique("single")
        assert api.post("/deploy", json={
            "id": single, "runtime": "python",
            "code": "def handler(event, context):\n    return 1\n"}).status_code == 201
        assert api.post(f"/invoke/{single}", json={}).json()["output"] == 1  # a load: a sweep
        assert on_disk("envs") == {marker_env}
        assert len([n for n in on_disk("code") if n.endswith(".py")]) == 1
        assert not [p for p in (root / "envs").iterdir() if p.name.startswith(".trash")]
    assert "TIERGATE_PYTHON_MAX_DISK_MB" in server.log()


def test_a_single_file_still_deploys_as_before(api):
    fn = unique("single")
    code = fixture("hostile.py")
    answer = api.post("/deploy", json={"id": fn, "runtime": "python", "code": code})
    assert answer.status_code == 201, answer.text
    assert api.post(f"/invoke/{fn}", json={"action": "echo", "value": 7}).json()["output"] == 7
    assert "environment" not in api.get(f"/functions/{fn}/versions").json()["versions"][0]
