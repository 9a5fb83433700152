"""A Python function's worker, started in a sandbox: ``python -I -m plugins.python.worker
FUNCTION_ID CODE_PATH MEMORY_MB TMP_MB MAX_OUTPUT_BYTES [MODULE PATH...] READ_FD WRITE_FD``:
``CODE_PATH`` is a source file, or a package's code directory with its entry ``MODULE`` and its
environment's ``PATH`` after the limits (``plugins.python.imports``).

It imports the function's code once, then answers call frames one at a time: ``meta`` is
``[execution_id, trace_id, deadline (Unix time), secrets, caller, custom]``, ``data`` the input
JSON. The answer
is ``["ok", logs]`` with the output JSON, or ``[status, message, logs]`` with status ``failed`` or
``too_large`` (the output passed ``MAX_OUTPUT_BYTES``). ``print`` output and ``logging`` records
become log entries within the log caps (``plugins.logs``), each sent as a log frame the moment it
is written (``child.log``); ``logs`` in the answer is only the entry saying what the caps dropped.
An exception's traceback is logged on stderr. The user code shares this process, so the gateway
trusts none of this: it bounds the frames it reads and checks sizes and caps again.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import orjson

from plugins.logs import ENTRY_BYTES, LogBudget
from plugins.python import sandbox
from plugins.python.imports import import_package, run_source
from plugins.sandbox import forward
from plugins.workers.child import ask, log, serve


class InvokeError(Exception):
    """``context.invoke`` was refused, or the function it called failed: ``code`` and
    ``detail`` are the API's (``function_not_found``, ``call_too_deep``, ``cascade_exhausted``…)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Context:
    """What a handler gets as ``context`` (as in API.md, and ``caller``, ``custom`` and
    ``invoke`` as in docs/api.md)."""

    InvokeError = InvokeError

    def __init__(
        self,
        function_id: str,
        execution_id: str,
        trace_id: str,
        secrets: dict[str, str],
        deadline: float,
        caller: dict[str, Any],
        custom: Any,
    ) -> None:
        self.function_id = function_id
        self.execution_id = execution_id
        self.trace_id = trace_id
        self.secrets = secrets
        self.caller = caller
        self.custom = custom
        self._deadline = deadline

    def remaining_time_ms(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))

    def invoke(self, function: str, input: Any = None) -> Any:
        """Call another function of the same tenant (``"id"`` or ``"id@version"``) through
        the gateway and return its output; ``InvokeError`` when it is refused or fails. It
        blocks this worker until the answer comes (within this call's own deadline)."""
        meta, data = ask(["invoke", function], orjson.dumps(input))
        if meta[0] == "ok":
            return orjson.loads(data)
        raise InvokeError(meta[1], meta[2])


class _CallLogs:
    """One call's log entries, within the caps, each sent to the gateway as it is written
    (``child.log``): a call killed at its deadline or cancelled keeps what it wrote. Only the
    summary of what the caps dropped comes with the answer."""

    def __init__(self) -> None:
        self.budget = LogBudget.for_worker()

    def add(self, stream: str, message: str, level: str | None = None) -> None:
        kept = self.budget.fit(message)
        if kept is not None:
            log([[time.time(), stream, kept, level]])

    def close(self) -> list[list[Any]]:
        summary = self.budget.summary()
        return [[time.time(), "log", summary, "WARNING"]] if summary else []


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.logs = _CallLogs()

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.add("log", self.format(record), record.levelname)


class _Stream(io.TextIOBase):
    """``print`` into log entries, one per line (a line longer than an entry is cut)."""

    def __init__(self, name: str, logs: _CallLogs) -> None:
        self.name = name
        self._logs = logs
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if len(self._partial) > ENTRY_BYTES:
            lines.append(self._partial)
            self._partial = ""
        for line in lines:
            self._logs.add(self.name, line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._logs.add(self.name, self._partial)
            self._partial = ""


class Function:
    def __init__(
        self, function_id: str, load: Callable[[], dict[str, Any]], max_output_bytes: int
    ) -> None:
        """``load`` brings the code in (``plugins.python.imports``) and returns its namespace."""
        self.function_id = function_id
        self.max_output_bytes = max_output_bytes
        self.loop = asyncio.new_event_loop()
        self.capture = _Capture()
        self.capture.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.addHandler(self.capture)
        root.setLevel(logging.DEBUG)
        self.import_error: str | None = None
        try:
            self.handler = load()["handler"]
        except BaseException as exc:  # the import runs user code: report any failure per call
            self.import_error = f"importing the function failed: {type(exc).__name__}: {exc}"

    def call(self, meta: list[Any], data: bytes) -> tuple[list[Any], bytes]:
        logs = _CallLogs()
        if self.import_error:
            return ["failed", self.import_error, logs.close()], b""
        execution_id, trace_id, deadline, secrets, caller, custom = meta
        context = Context(
            self.function_id, execution_id, trace_id, secrets, deadline, caller, custom
        )
        self.capture.logs = logs
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Stream("stdout", logs), _Stream("stderr", logs)
        try:
            result = self.handler(orjson.loads(data), context)
            if inspect.isawaitable(result):
                result = self.loop.run_until_complete(result)
            output = orjson.dumps(result)
        except orjson.JSONEncodeError as exc:
            return ["failed", f"output is not JSON-serialisable: {exc}", logs.close()], b""
        except BaseException as exc:
            sys.stderr.write(traceback.format_exc())
            message = f"{type(exc).__name__}: {exc}".rstrip(": ")[:ENTRY_BYTES]
            return ["failed", message, logs.close()], b""
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = stdout, stderr
        if len(output) > self.max_output_bytes:
            return ["too_large", f"the output is {len(output)} bytes", logs.close()], b""
        return ["ok", logs.close()], output


def main() -> None:
    function_id, path = sys.argv[1], sys.argv[2]
    memory_mb, tmp_mb, max_output_bytes = (int(arg) for arg in sys.argv[3:6])
    package = sys.argv[6:-2]  # a package: its entry MODULE, then more PATHs (its environment)
    if package:
        load = functools.partial(import_package, package[0], [path, *package[1:]])
    else:
        with open(path) as fh:
            load = functools.partial(run_source, fh.read())
    forward.start()  # a function with network: HTTP(S)_PROXY, before any of its code runs
    sandbox.enter(memory_mb, tmp_mb)
    function = Function(function_id, load, max_output_bytes)
    serve(function.call)


if __name__ == "__main__":
    main()
