"""The gateway's own API errors, and the list of errors raised below it that the API reports.

``TiergateError`` and its subclasses are what the gateway itself refuses or fails with: each
class carries its stable ``code`` and HTTP ``status``. Errors live with what raises them, so
storage, the runtimes and the cascade raise errors of their own, which know nothing of HTTP:
``StorageUnavailable`` (``storage/errors.py``); ``PluginError`` and its subclasses such as
``CompileError``, ``QueueFull`` or ``RuntimeUnavailable`` (``plugins/errors.py``, the plugin API);
the cascade's verdicts ``CascadeExhausted`` and ``InvocationTimeout`` (``tiers/errors.py``). Each
of those carries its ``code``, ``detail`` and ``extensions``; ``gateway/http/problems.py`` gives
every one its status and renders them all as RFC 9457 problems, in one place.

How one tier attempt ends badly (``AttemptFailure``, ``plugins/errors.py``) never becomes a
response by itself: only the cascade's verdict does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from plugins.errors import PluginError
from storage.errors import StorageUnavailable
from tiers.errors import InvocationError


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


class InvalidInput(BadRequest):
    code = "invalid_input"
    title = "Invalid input"


class InvalidGraph(BadRequest):
    """A graph definition that cannot run: a cycle, an unknown ``needs`` name or function, a bad
    expression (the detail names the node and field)."""

    code = "invalid_graph"
    title = "Invalid graph"


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


class AliasNotFound(NotFound):
    """``id:alias`` or ``/functions/{id}/aliases/{name}`` naming an alias the function lacks."""

    code = "alias_not_found"
    title = "Alias not found"


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


class GraphNotFound(NotFound):
    code = "graph_not_found"
    title = "Graph not found"


class RunNotFound(NotFound):
    code = "run_not_found"
    title = "Graph run not found"


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


class RateLimited(RetryLater):
    code = "rate_limited"
    status = 429
    title = "Rate limited"


class TooManyDeploys(RetryLater):
    """The tenant has as many deploys in progress in this gateway process as it may have at once
    (``TIERGATE_MAX_CONCURRENT_DEPLOYS_PER_TENANT``); one may start when one ends."""

    code = "too_many_deploys"
    status = 429
    title = "Too many deploys"


class TooManyStreams(RetryLater):
    """The tenant has as many live streams open on this gateway process as it may have at once
    (``TIERGATE_MAX_STREAMS_PER_TENANT``): each holds a connection and a queue while it lasts."""

    code = "too_many_streams"
    status = 429
    title = "Too many streams"


class CircuitOpen(RetryLater):
    code = "circuit_open"
    status = 503
    title = "Circuit open"


RAISED_BELOW = (StorageUnavailable, PluginError, InvocationError)
"""The errors raised below the gateway that the API reports, each with ``code``, ``detail`` and
``extensions`` (their statuses are in ``gateway/http/problems.py``)."""

REPORTED = (TiergateError, StorageUnavailable, PluginError, InvocationError)
"""Everything the API reports as a problem, for the places that catch exactly that."""
