"""A Python function's worker:
``python -I -m plugins.python.worker FUNCTION_ID CODE_PATH MEMORY_MB READ_FD WRITE_FD``.

It imports the function's code once, then answers call frames one at a time: ``meta`` is
``[execution_id, trace_id, deadline (Unix time), secrets]``, ``data`` the input JSON. The answer
is ``["ok", logs]`` with the output JSON, or ``["failed", message, logs]``. ``print`` output and
``logging`` records become log entries; an exception's traceback is logged on stderr.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import sys
import time
import traceback
import types
from typing import Any

import orjson

from plugins.python import sandbox
from plugins.workers.child import serve


class Context:
    """What a handler gets as ``context`` (as in API.md)."""

    def __init__(
        self,
        function_id: str,
        execution_id: str,
        trace_id: str,
        secrets: dict[str, str],
        deadline: float,
    ) -> None:
        self.function_id = function_id
        self.execution_id = execution_id
        self.trace_id = trace_id
        self.secrets = secrets
        self._deadline = deadline

    def remaining_time_ms(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append([record.created, "log", self.format(record), record.levelname])


class _Stream(io.TextIOBase):
    """``print`` into log entries, one per line."""

    def __init__(self, name: str, sink: list[list[Any]]) -> None:
        self.name = name
        self._sink = sink
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        now = time.time()
        self._sink.extend([now, self.name, line, None] for line in lines)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._sink.append([time.time(), self.name, self._partial, None])
            self._partial = ""


class Function:
    def __init__(self, function_id: str, source: str) -> None:
        self.function_id = function_id
        self.module = types.ModuleType("function")
        self.loop = asyncio.new_event_loop()
        self.capture = _Capture()
        self.capture.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.addHandler(self.capture)
        root.setLevel(logging.DEBUG)
        self.import_error: str | None = None
        try:
            exec(compile(source, "function.py", "exec"), self.module.__dict__)
            self.handler = self.module.__dict__["handler"]
        except BaseException as exc:  # the import runs user code: report any failure per call
            self.import_error = f"importing the function failed: {type(exc).__name__}: {exc}"

    def call(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        logs: list[list[Any]] = []
        if self.import_error:
            return ["failed", self.import_error, logs], b""
        execution_id, trace_id, deadline, secrets = meta
        context = Context(self.function_id, execution_id, trace_id, secrets, deadline)
        self.capture.entries = logs
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Stream("stdout", logs), _Stream("stderr", logs)
        try:
            result = self.handler(orjson.loads(data), context)
            if inspect.isawaitable(result):
                result = self.loop.run_until_complete(result)
            output = orjson.dumps(result)
        except orjson.JSONEncodeError as exc:
            return ["failed", f"output is not JSON-serialisable: {exc}", logs], b""
        except BaseException as exc:
            sys.stderr.write(traceback.format_exc())
            return ["failed", f"{type(exc).__name__}: {exc}".rstrip(": "), logs], b""
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = stdout, stderr
        return ["ok", logs], output


def main() -> None:
    function_id, path, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path) as fh:
        source = fh.read()
    isolated = sandbox.enter(memory_mb)
    function = Function(function_id, source)
    serve(function.call, hello=["ready", isolated])


if __name__ == "__main__":
    main()
