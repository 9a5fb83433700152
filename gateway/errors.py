"""The one exception hierarchy of tiergate.

Two families that never mix:

* ``TiergateError`` and its subclasses are what the API reports as RFC 9457 problems. Each class
  carries its stable ``code`` and HTTP ``status``; the problem middleware renders them.
* ``AttemptFailure`` and its subclasses are how one tier attempt ends badly. They are recorded in
  ``attempts[]`` and never become a response by themselves; only the cascade's final verdict
  (``CascadeExhausted`` / ``InvocationTimeout``) does.

This module is a leaf: stdlib imports only, so storage and plugins may import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal


class TiergateError(Exception):
    """Something the API reports as an RFC 9457 problem."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extensions = extensions


class RetryLater(TiergateError):
    """An error the client should retry after ``retry_after`` seconds."""

    def __init__(self, detail: str | None = None, *, retry_after: float, **extensions: Any) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(detail, headers={"Retry-After": str(seconds)}, **extensions)
        self.retry_after = seconds


class BadRequest(TiergateError):
    code = "invalid_request"
    status = 400
    title = "Invalid request"


class InvalidFunctionId(BadRequest):
    code = "invalid_function_id"
    title = "Invalid function id"


class InvalidManifest(BadRequest):
    code = "invalid_manifest"
    title = "Invalid manifest"


class UnknownRuntime(BadRequest):
    code = "unknown_runtime"
    title = "Unknown runtime"


class InvalidInput(BadRequest):
    code = "invalid_input"
    title = "Invalid input"


class InvalidOutput(BadRequest):
    code = "invalid_output"
    title = "Invalid output"


class Unauthenticated(TiergateError):
    code = "unauthenticated"
    status = 401
    title = "Unauthenticated"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": 'Bearer realm="tiergate"'}, **extensions
        )


class Forbidden(TiergateError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class QuotaExceeded(TiergateError):
    """The tenant would have more than an operator's hard quota allows (one function more than
    ``TIERGATE_MAX_FUNCTIONS_PER_TENANT``): retrying does not help until it has freed some."""

    code = "quota_exceeded"
    status = 403
    title = "Quota exceeded"


class NotFound(TiergateError):
    code = "not_found"
    status = 404
    title = "Not found"


class FunctionNotFound(NotFound):
    code = "function_not_found"
    title = "Function not found"


class VersionNotFound(NotFound):
    code = "version_not_found"
    title = "Version not found"


class ExecutionNotFound(NotFound):
    code = "execution_not_found"
    title = "Execution not found"


class SecretNotFound(NotFound):
    code = "secret_not_found"
    title = "Secret not found"


class KeyNotFound(NotFound):
    code = "key_not_found"
    title = "API key not found"


class TaskNotFound(NotFound):
    code = "task_not_found"
    title = "Task not found"


class MethodNotAllowed(TiergateError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class ExecutionCancelled(TiergateError):
    """A sync call whose execution was cancelled with ``DELETE /executions/{id}``."""

    code = "execution_cancelled"
    status = 409
    title = "Execution cancelled"


class RequestTimeout(TiergateError):
    """The client did not send its request body in time; the connection is closed after this."""

    code = "request_timeout"
    status = 408
    title = "Request timeout"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, headers={"Connection": "close"}, **extensions)


class LastAdminKey(TiergateError):
    """Revoking this key would leave no key that can manage keys."""

    code = "last_admin_key"
    status = 409
    title = "Last admin key"


class TaskClaimed(TiergateError):
    code = "task_claimed"
    status = 409
    title = "Task claimed"


class PayloadTooLarge(TiergateError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class CompileError(TiergateError):
    """Raised by runtimes at deploy when code does not validate or compile."""

    code = "compile_error"
    status = 422
    title = "Compile error"


class RateLimited(RetryLater):
    code = "rate_limited"
    status = 429
    title = "Rate limited"


class QueueFull(RetryLater):
    code = "queue_full"
    status = 429
    title = "Queue full"


class TooManyDeploys(RetryLater):
    """The tenant has as many deploys in progress in this gateway process as it may have at once
    (``TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT``); one may start when one ends."""

    code = "too_many_deploys"
    status = 429
    title = "Too many deploys"


class CircuitOpen(RetryLater):
    code = "circuit_open"
    status = 503
    title = "Circuit open"


class StorageUnavailable(RetryLater):
    """A transient storage fault. Backends raise only this (or their internal not-found)."""

    code = "storage_unavailable"
    status = 503
    title = "Storage unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1, **ext: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **ext)


class InvocationError(TiergateError):
    """The cascade's final verdict when no tier produced an answer."""


class CascadeExhausted(InvocationError):
    code = "cascade_exhausted"
    status = 500
    title = "Cascade exhausted"


class InvocationTimeout(InvocationError):
    code = "timeout"
    status = 504
    title = "Timeout"


class PluginError(TiergateError):
    """A runtime plugin misbehaved at startup or deploy."""


class RuntimeUnavailable(PluginError):
    """A runtime cannot work on this machine (its interpreter is missing, or it cannot isolate
    code here): deploys and calls of that runtime are refused until an operator fixes it."""

    code = "runtime_unavailable"
    status = 503
    title = "Runtime unavailable"


class AttemptFailure(Exception):
    """How one tier attempt ended without an answer; recorded in ``attempts[]`` (with ``code``
    when the failure has a stable name, e.g. ``output_too_large``)."""

    status: ClassVar[Literal["failed", "timeout", "skipped", "cancelled"]] = "failed"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, logs: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.logs = list(logs or [])


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
    status = "timeout"


class TierSkipped(AttemptFailure):
    status = "skipped"


class AttemptCancelled(AttemptFailure):
    status = "cancelled"
