"""Deploy-time check of Python code, run in a sandbox (never in the gateway): it compiles the code,
imports it — which runs the tenant's module code, so it gets the same sandbox and limits as a
call — and looks for a callable ``handler``. ``python -m plugins.python.check MEMORY_MB TMP_MB
[MODULE CODE_DIR PATH...]``: a single source file comes on stdin; a package names its entry
module, its code directory and its environment (``plugins.python.imports``). Prints one JSON
line: ``{"ok": true, "async": bool}`` or ``{"ok": false, "error": "...", "line": N, "file": F}``
(``file`` relative to a package's code directory)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
import sys
from collections.abc import Sequence

import orjson

from plugins.python import sandbox
from plugins.python.imports import SOURCE_NAME, import_package, run_source


def check(source: bytes, package: Sequence[str] = ()) -> dict[str, object]:
    if package:
        load = functools.partial(import_package, package[0], package[1:])
    else:
        try:
            compile(source, SOURCE_NAME, "exec")
        except SyntaxError as exc:
            return {"ok": False, "error": f"SyntaxError: {exc.msg}", "line": exc.lineno}
        load = functools.partial(run_source, source)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # keep our one JSON line clean
            namespace = load()
    except BaseException as exc:
        return {
            "ok": False,
            "error": f"importing the function failed: {type(exc).__name__}: {exc}",
            **_place(exc, package[1] if package else None),
        }
    handler = namespace.get("handler")
    if handler is None:
        return {"ok": False, "error": "the code defines no `handler(event, context)`"}
    if not callable(handler):
        return {"ok": False, "error": f"`handler` is a {type(handler).__name__}, not a function"}
    return {"ok": True, "async": inspect.iscoroutinefunction(handler)}


def _place(exc: BaseException, code_dir: str | None) -> dict[str, object]:
    """Where the error arose in the function's own code: ``line`` (and ``file`` in a package)."""
    def ours(filename: str | None) -> str | None:
        if code_dir is None:
            return "" if filename == SOURCE_NAME else None
        if filename and filename.startswith(code_dir.rstrip("/") + "/"):
            return os.path.relpath(filename, code_dir)
        return None

    place: dict[str, object] = {"line": None}
    tb = exc.__traceback__
    while tb is not None:
        file = ours(tb.tb_frame.f_code.co_filename)
        if file is not None:
            place = {"line": tb.tb_lineno, **({"file": file} if file else {})}
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and (file := ours(exc.filename)) is not None:
        place = {"line": exc.lineno, **({"file": file} if file else {})}
    return place


def main() -> None:
    source = sys.stdin.buffer.read()
    sandbox.enter(int(sys.argv[1]), int(sys.argv[2]))
    sys.stdout.buffer.write(orjson.dumps(check(source, sys.argv[3:])) + b"\n")


if __name__ == "__main__":
    main()
