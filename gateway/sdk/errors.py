"""The SDK's exceptions: one class per problem ``code`` of the API, grouped by HTTP status.

Every problem document the gateway answers (RFC 9457, ``application/problem+json``) becomes an
instance of the class of its ``code`` (``FunctionNotFound`` for ``function_not_found``…), which
derives from the family of its status (``NotFound`` for 404s, ``BadRequest`` for 400s…), which
derives from ``TiergateError``. A code this SDK does not know yet becomes its status's family
(``BadRequest`` for an unknown 400), or ``TiergateError`` itself; its ``code`` is still the
server's. Two errors are the SDK's own, not the server's: ``ConnectionFailed`` (also a
``ConnectionError``) and ``ClientTimeout`` (also a ``TimeoutError``, like ``Timeout``, the 504).

The classes are written out below rather than made at import time, so they can be imported,
caught and type-checked by name. ``CODES`` maps each code to its class, ``STATUSES`` each status
to its family.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CODES",
    "STATUSES",
    "AliasNotFound",
    "BadRequest",
    "CascadeExhausted",
    "CircuitOpen",
    "ClientTimeout",
    "CompileError",
    "Conflict",
    "ConnectionFailed",
    "ExecutionCancelled",
    "ExecutionNotFound",
    "Forbidden",
    "FunctionNotFound",
    "GraphNotFound",
    "InternalError",
    "InvalidFunctionId",
    "InvalidGraph",
    "InvalidInput",
    "InvalidManifest",
    "InvalidOutput",
    "InvalidRequest",
    "KeyNotFound",
    "LastAdminKey",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "RetryLater",
    "RunNotFound",
    "RuntimeUnavailable",
    "SecretNotFound",
    "ServerError",
    "ServiceUnavailable",
    "StorageUnavailable",
    "TaskClaimed",
    "TaskNotFound",
    "TiergateError",
    "Timeout",
    "TooManyDeploys",
    "TooManyRequests",
    "TooManyStreams",
    "Unauthenticated",
    "Unauthorized",
    "UnknownRuntime",
    "VersionNotFound",
    "error_from_answer",
]

KEY_HINT = "pass key=, set TIERGATE_KEY, or run where <data dir>/admin.key exists"


class TiergateError(Exception):
    """An error the gateway answered (a problem document) or the SDK met on the way.

    ``status`` the HTTP status (``None`` for the SDK's own errors), ``code`` the problem's
    stable ``code``, ``detail`` its human explanation, ``problem`` the whole problem document,
    ``execution_id`` the execution a failed call started (when it started one)."""

    code: str | None = None
    status: int | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        problem: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        execution_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.problem: dict[str, Any] = dict(problem or {})
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        found = execution_id or self.problem.get("execution_id")
        self.execution_id: str | None = found if isinstance(found, str) else None

    @property
    def title(self) -> str | None:
        title = self.problem.get("title")
        return title if isinstance(title, str) else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The problem's ``errors`` (``[{"path", "message"}]`` of a schema check), or ``[]``."""
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []

    @property
    def field(self) -> str | None:
        """The manifest or request field at fault, when the problem names one."""
        field = self.problem.get("field")
        return field if isinstance(field, str) else None

    def __str__(self) -> str:
        if self.code is None and self.status is None:
            return self.detail
        where = ", ".join(x for x in (self.code, f"HTTP {self.status}" if self.status else "") if x)
        line = f"{self.detail} ({where})"
        fields = [f"{e.get('path') or e.get('field') or '/'}: {e.get('message')}" for e in
                  self.errors[:5]]
        if fields:
            line += ": " + "; ".join(fields)
        return line

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r}, status={self.status}, code={self.code!r})"


# The SDK's own errors (nothing the server answered).


class ConnectionFailed(TiergateError, ConnectionError):
    """The gateway could not be reached at ``url``, or the connection broke before an answer."""

    def __init__(self, detail: str, *, url: str) -> None:
        super().__init__(detail)
        self.url = url


class ClientTimeout(TiergateError, TimeoutError):
    """The SDK stopped waiting: ``wait``/``stream`` passed their ``timeout``, or no answer came
    within the client's ``timeout``. The execution (``execution_id``) may still be running."""


# Families, by HTTP status, and the codes of each.


class RetryLater(TiergateError):
    """An answer that says when to try again: ``retry_after`` seconds (``Retry-After``)."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after") or self.problem.get("retry_after")
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
        try:
            when = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class BadRequest(TiergateError):
    """400: the request was refused as it is."""

    status = 400


class InvalidRequest(BadRequest):
    code = "invalid_request"


class InvalidFunctionId(BadRequest):
    code = "invalid_function_id"


class InvalidManifest(BadRequest):
    """``field`` names the manifest field at fault."""

    code = "invalid_manifest"


class UnknownRuntime(BadRequest):
    code = "unknown_runtime"


class InvalidInput(BadRequest):
    """The input broke the function's ``input_schema``: ``errors`` lists ``{"path", "message"}``."""

    code = "invalid_input"


class InvalidOutput(BadRequest):
    """A task's answer broke the function's ``output_schema``: see ``errors``."""

    code = "invalid_output"


class InvalidGraph(BadRequest):
    code = "invalid_graph"


class Unauthorized(TiergateError):
    """401: no key, or a key the gateway does not know."""

    status = 401

    def __str__(self) -> str:
        return f"{super().__str__()}; {KEY_HINT}"


class Unauthenticated(Unauthorized):
    code = "unauthenticated"


class PermissionDenied(TiergateError):
    """403: the key is known but may not do this."""

    status = 403


class Forbidden(PermissionDenied):
    """The key lacks the role, or names a tenant it may not act in."""

    code = "forbidden"


class QuotaExceeded(PermissionDenied):
    code = "quota_exceeded"


class NotFound(TiergateError):
    """404 (also the class of ``not_found``: no such endpoint). A key never sees another
    tenant's things: they are not found either."""

    code = "not_found"
    status = 404


class FunctionNotFound(NotFound):
    code = "function_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class ExecutionNotFound(NotFound):
    code = "execution_not_found"


class TaskNotFound(NotFound):
    code = "task_not_found"


class GraphNotFound(NotFound):
    code = "graph_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class SecretNotFound(NotFound):
    code = "secret_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class MethodNotAllowed(TiergateError):
    code = "method_not_allowed"
    status = 405


class RequestTimeout(TiergateError):
    """408: the request's body came too slowly (the gateway closed the connection)."""

    code = "request_timeout"
    status = 408


class Conflict(TiergateError):
    """409: the thing is not in a state that allows this."""

    status = 409


class TaskClaimed(Conflict):
    code = "task_claimed"


class ExecutionCancelled(Conflict):
    """A sync call whose execution was cancelled (``cancel``) while it waited."""

    code = "execution_cancelled"


class LastAdminKey(Conflict):
    code = "last_admin_key"


class PayloadTooLarge(TiergateError):
    code = "payload_too_large"
    status = 413


class CompileError(TiergateError):
    """422: the code does not compile; ``detail`` carries the compiler's message."""

    code = "compile_error"
    status = 422


class TooManyRequests(RetryLater):
    """429: try again after ``retry_after`` seconds."""

    status = 429


class RateLimited(TooManyRequests):
    code = "rate_limited"


class QueueFull(TooManyRequests):
    code = "queue_full"


class TooManyDeploys(TooManyRequests):
    code = "too_many_deploys"


class TooManyStreams(TooManyRequests):
    code = "too_many_streams"


class ServerError(TiergateError):
    """5xx: the gateway, or every tier of the function, failed."""

    status = 500


class InternalError(ServerError):
    code = "internal_error"


class CascadeExhausted(ServerError):
    """500: every tier tried failed. ``execution_id`` is the failed execution, ``attempts``
    each tier's error."""

    code = "cascade_exhausted"

    @property
    def attempts(self) -> list[dict[str, Any]]:
        found = self.problem.get("attempts")
        return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


class ServiceUnavailable(ServerError, RetryLater):
    """503: the gateway cannot do this now; ``retry_after`` when it says when."""

    status = 503


class CircuitOpen(ServiceUnavailable):
    code = "circuit_open"


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"


class RuntimeUnavailable(ServiceUnavailable):
    """The runtime cannot run code here (no sandbox can be made, …): ``detail`` says why."""

    code = "runtime_unavailable"


class Timeout(ServerError, TimeoutError):
    """504: the last tier timed out and no tier was left (``execution_id`` says which)."""

    code = "timeout"
    status = 504


CODES: dict[str, type[TiergateError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest, InvalidFunctionId, InvalidManifest, UnknownRuntime, InvalidInput,
        InvalidOutput, InvalidGraph, Unauthenticated, Forbidden, QuotaExceeded, NotFound,
        FunctionNotFound, VersionNotFound, AliasNotFound, ExecutionNotFound, TaskNotFound,
        GraphNotFound, RunNotFound, SecretNotFound, KeyNotFound, MethodNotAllowed,
        RequestTimeout, TaskClaimed, ExecutionCancelled, LastAdminKey, PayloadTooLarge,
        CompileError, RateLimited, QueueFull, TooManyDeploys, TooManyStreams, InternalError,
        CascadeExhausted,
        CircuitOpen, StorageUnavailable, RuntimeUnavailable, Timeout,
    )
    if cls.code is not None
}
"""Each problem ``code`` the API answers, with its class."""

STATUSES: dict[int, type[TiergateError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    422: CompileError,
    429: TooManyRequests,
    500: ServerError,
    503: ServiceUnavailable,
    504: Timeout,
}
"""The family of each status, for codes this SDK does not know (and answers without one)."""


def error_from_answer(status: int, body: Any, headers: Mapping[str, str]) -> TiergateError:
    """The exception for a non-2xx answer: the class of its problem's ``code``, else of its
    status (any other 5xx: ``ServerError``), else ``TiergateError``."""
    problem = body if isinstance(body, dict) else {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    cls = CODES.get(code or "") or STATUSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else TiergateError
    detail = problem.get("detail") or problem.get("title")
    if not isinstance(detail, str) or not detail:
        text = body.strip() if isinstance(body, str) else ""
        detail = f"HTTP {status}: {text[:200]}" if text else f"HTTP {status}"
    error = cls(detail, status=status, problem=problem, headers=headers)
    error.code = code  # the server's: an unknown one on its family, none when it sent none
    return error
