"""What the tiers need from the services above them, as ``Protocol``s the gateway implements.

The agentic tier calls other functions and the human tier files review tasks; both services live
in the gateway (the invoker, the task service), which also runs the cascade. So the tiers name
only what they call, and the app factory hands them the gateway's services once, at startup:
nothing here imports the gateway, and nothing is looked up per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from plugins.runtime import LogEntry

from .attempt import Attempt
from .function import LoadedFunction


class ToolGateway(Protocol):
    """The invoke path, as an agent's tools see it (implemented by ``gateway.invoke.Invoker``)."""

    async def load_tool(self, tenant: str, function_id: str) -> LoadedFunction | None:
        """The tenant's function, loaded (for its description and input schema); ``None`` when
        the tenant has no such function. Other errors (storage away, an open circuit) propagate."""
        ...

    async def call_tool(
        self,
        tenant: str,
        ref: str,
        body: bytes,
        depth: int,
        trace_id: str,
        cause: Mapping[str, Any] | None = None,
    ) -> Any:
        """Invoke the function ``ref`` (``id`` or ``id@version``) with ``body`` (JSON) through
        the gateway's own invoke path, never reaching a human tier, its record naming ``cause``;
        returns its output value, or raises ``ToolCallFailed`` with the API's error code and
        detail when the call is refused or fails. (An agent's tools, and a function's
        ``context.invoke``.)"""
        ...


class FiledTask(Protocol):
    """A review task as the human tier needs it: something with an id."""

    @property
    def id(self) -> str: ...


class ReviewDesk(Protocol):
    """Durable review tasks, as the human tier files them (``gateway.review.TaskService``)."""

    async def create(
        self,
        *,
        tenant: str,
        function_id: str,
        version: int,
        execution_id: str,
        input: Any,
        instructions: str,
        attempts: Sequence[Attempt],
        expires_in_s: float,
    ) -> FiledTask:
        """File a pending task for the execution; returns the task (with its ``id``)."""
        ...


class LiveEvents(Protocol):
    """Where an execution's live events go as they happen, for whoever follows it
    (``GET /executions/{id}/events``, implemented by ``gateway.invoke.live.LiveHub``). The
    tiers look at ``followers`` first and call nothing while it is 0: these come on the hot
    path."""

    followers: int
    """How many streams follow executions in this process (0: nobody, call nothing)."""

    def log(
        self, execution_id: str, function: tuple[str, str], index: int, entry: LogEntry
    ) -> None:
        """A log entry the execution kept (capped and redacted), as it was written: the
        ``index``-th of its ``logs``; ``function`` is ``(tenant, function_id)``."""

    def attempt(self, execution_id: str, attempt: Attempt) -> None:
        """An attempt ended (it is in the execution's ``attempts`` already)."""

    def token(self, execution_id: str, tier: str, text: str) -> None:
        """Text a model tier's model produced, as it arrived."""
