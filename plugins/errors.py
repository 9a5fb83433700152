"""What runtime plugins raise, and what the gateway raises about them.

Two families that never mix (``docs/plugins.md``, *Errors*):

* ``PluginError`` and its subclasses are reported to the API's caller: each carries a stable
  ``code`` from the API's error table, a ``detail`` the user can act on, and keyword
  ``extensions`` that join the problem document. They know nothing of HTTP: the gateway gives each
  its status in one place (``gateway/http/problems.py``).
* ``AttemptFailure`` and its subclasses are how one tier attempt ends without an answer. They are
  recorded in ``attempts[]`` and never become a response by themselves; only the cascade's verdict
  does (``tiers/errors.py``).

They live here, with the plugin API, because runtimes raise them; the public ones are exported
as ``tiergate.X``. Standard library only: a worker process or the compiler's child imports this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal


class PluginError(Exception):
    """A runtime plugin misbehaved (an invalid or duplicate runtime): ``internal_error``."""

    code: ClassVar[str] = "internal_error"
    default_detail: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)
        self.extensions = extensions


class CompileError(PluginError):
    """Raised by ``Runtime.compile`` at deploy when the code does not validate or compile."""

    code = "compile_error"
    default_detail = "Compile error"


class RuntimeUnavailable(PluginError):
    """A runtime cannot work on this machine (its interpreter is missing, or it cannot isolate
    code here): deploys and calls of that runtime are refused until an operator fixes it."""

    code = "runtime_unavailable"
    default_detail = "Runtime unavailable"


class UnknownRuntime(PluginError):
    """No runtime of that name is installed, or its plugin failed to load (the detail says why)."""

    code = "unknown_runtime"
    default_detail = "Unknown runtime"


class PayloadTooLarge(PluginError):
    """Something sent is larger than a limit allows: a request body, a multipart part, or code
    over a runtime's own limit (the wasm runtime's ``TIERGATE_WASM_MAX_MODULE_MB``)."""

    code = "payload_too_large"
    default_detail = "Payload too large"


class QueueFull(PluginError):
    """Every slot is busy and the queue is full (a runtime's worker pool, or the gateway's own
    admission): the caller should retry after ``retry_after`` seconds; it never escalates."""

    code = "queue_full"
    default_detail = "Queue full"

    def __init__(self, detail: str | None = None, *, retry_after: float, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.retry_after = max(1, math.ceil(retry_after))


class AttemptFailure(Exception):
    """How one tier attempt ended without an answer; recorded in ``attempts[]`` (with ``code``
    when the failure has a stable name, e.g. ``output_too_large``). ``logs`` and ``metrics``
    are what the attempt logged and counted before it failed, as in ``CallResult``."""

    status: ClassVar[Literal["failed", "timeout", "skipped", "cancelled"]] = "failed"
    code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        logs: list[Any] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.logs = list(logs or [])
        self.metrics = dict(metrics or {})


class FunctionFailed(AttemptFailure):
    """The code raised, trapped or exited non-zero."""


class FunctionCrashed(FunctionFailed):
    """The process running the code died (killed, out of memory); it has been replaced."""


class BadOutput(FunctionFailed):
    """The output is not JSON, or it breaks the function's output schema."""


class OutputTooLarge(FunctionFailed):
    """The output is larger than ``limits.max_output_kb``; it escalates like any failure."""

    code = "output_too_large"


class FunctionTimeout(AttemptFailure):
    """The call ran past its deadline; a ``timeout`` attempt."""

    status = "timeout"
