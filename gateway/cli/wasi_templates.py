"""The ``tiergate new`` templates that clang builds into WASI command modules — ``--lang c``, and
``--lang js``: the QuickJS-ng engine built with a runner and the script into one module, so
JavaScript runs on the wasm runtime, with no JavaScript runtime in the gateway — and whether
this machine has what builds them.

Their files are real files in ``templates/<lang>/`` beside this module rather than strings: C is
all braces, which ``str.format`` would make unreadable. ``{name}`` and ``{path}`` are filled in.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

TOOLCHAIN = "clang lld wasi-libc libclang-rt-14-dev-wasm32"
"""The Debian 12 packages of clang's wasm32-wasi target; without the last, linking fails for
want of ``libclang_rt.builtins-wasm32.a``."""
FILES = {
    "c": {"function.c": "{name}.c", "Makefile": "Makefile", "README.md": "README.md"},
    "js": {
        "handler.js": "handler.js",
        "runner.c": "runner.c",
        "Makefile": "Makefile",
        "README.md": "README.md",
    },
}
"""Each template's files: where they are under ``templates/<lang>/``, what they are called in
the new project."""
PROBE = b'#include <stdio.h>\nint main(void) { return puts("") < 0; }\n'
"""What every build needs of the toolchain, in two lines: wasi-libc's headers and libc, linked
by wasm-ld with the wasm32 builtins."""
PROBE_TIMEOUT_S = 60


def project_files(lang: str, values: Mapping[str, str]) -> dict[str, str]:
    """File name → text of the ``lang`` template, ``values`` filled in."""
    folder = resources.files(__package__).joinpath("templates", lang)
    return {
        _fill(target, values): _fill(folder.joinpath(source).read_text(), values)
        for source, target in FILES[lang].items()
    }


def _fill(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def missing_for(lang: str, project: Path) -> str | None:
    """What this machine lacks to build the ``lang`` template in ``project``, and what to do
    about it, as one sentence; None when it has it all."""
    clang = clang_missing()
    if clang is not None:
        return (
            f"{clang}, so `make -C {project}` cannot build it yet: apt-get install {TOOLCHAIN} "
            f"(Debian 12), or use wasi-sdk's clang: "
            f"make -C {project} CC=/path/to/wasi-sdk/bin/clang"
        )
    if lang == "js" and not _has_pip("python3"):
        return (
            f"python3 has no pip, which the first `make -C {project}` needs to fetch the "
            f"JavaScript engine's source: apt-get install python3-pip, or "
            f"make -C {project} PYTHON={sys.executable}"
        )
    return None


def clang_missing() -> str | None:
    """What is wrong with clang's wasm32-wasi target here (None when ``PROBE`` builds): clang
    itself, wasm-ld, wasi-libc and the wasm32 builtins library each fail it their own way."""
    clang = shutil.which("clang")
    if clang is None:
        return "clang is not installed"
    with tempfile.TemporaryDirectory() as folder:
        command = [clang, "--target=wasm32-wasi", "-o", str(Path(folder) / "probe.wasm")]
        try:
            done = subprocess.run(
                [*command, "-x", "c", "-"],
                input=PROBE,
                capture_output=True,
                timeout=PROBE_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"clang did not run ({exc})"
    if done.returncode == 0:
        return None
    said = [line for line in done.stderr.decode(errors="replace").splitlines() if "error" in line]
    return f"clang cannot build for wasm32-wasi here ({(said or ['no message'])[0].strip()})"


def _has_pip(python: str) -> bool:
    found = shutil.which(python)
    if found is None:
        return False
    try:
        done = subprocess.run(
            [found, "-m", "pip", "--version"], capture_output=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
