"""Deploy-time check of Python code, run in a sandbox (never in the gateway): it compiles the code,
imports it — which runs the tenant's module code, so it gets the same sandbox and limits as a
call — and looks for a callable ``handler``. Prints one JSON line:
``{"ok": true, "async": bool}`` or ``{"ok": false, "error": "...", "line": N}``."""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
import types

import orjson

from plugins.python import sandbox


def check(source: bytes) -> dict[str, object]:
    try:
        code = compile(source, "function.py", "exec")
    except SyntaxError as exc:
        return {"ok": False, "error": f"SyntaxError: {exc.msg}", "line": exc.lineno}
    module = types.ModuleType("function")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # keep our one JSON line clean
            exec(code, module.__dict__)
    except BaseException as exc:
        return {
            "ok": False,
            "error": f"importing the function failed: {type(exc).__name__}: {exc}",
            "line": _line(exc),
        }
    handler = module.__dict__.get("handler")
    if handler is None:
        return {"ok": False, "error": "the code defines no `handler(event, context)`"}
    if not callable(handler):
        return {"ok": False, "error": f"`handler` is a {type(handler).__name__}, not a function"}
    return {"ok": True, "async": inspect.iscoroutinefunction(handler)}


def _line(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "function.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def main() -> None:
    source = sys.stdin.buffer.read()
    sandbox.enter(int(sys.argv[1]), int(sys.argv[2]))
    sys.stdout.buffer.write(orjson.dumps(check(source)) + b"\n")


if __name__ == "__main__":
    main()
