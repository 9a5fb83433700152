"""The public plugin API, so plugin authors write ``import tiergate`` and ``@tiergate.hookimpl``;
and the Python SDK, so callers write ``tiergate.Client()`` (docs/sdk.md).

The plugin API's names and their list (``__all__``) live in ``plugins/__init__.py``; this module
only gives them the project's name. The SDK (``gateway.sdk``: ``Client``, ``AsyncClient``,
``TiergateError``, the typed results and ``errors``, the module of every error class) is
imported on first use, not here: every plugin imports this module, in the gateway and in its
workers, and httpx would add a tenth of a second or more to each of their starts.
"""

from typing import TYPE_CHECKING, Any

from plugins import *  # noqa: F403
from plugins import __all__  # noqa: F401

SDK = (
    "Client",
    "AsyncClient",
    "TiergateError",
    "errors",
    "Alias",
    "Attempt",
    "Deployment",
    "Event",
    "Execution",
    "Function",
    "Graph",
    "GraphRun",
    "LogLine",
    "NodeRun",
    "RuntimeInfo",
    "Task",
    "Version",
)
"""The SDK's names here. Its error classes are ``tiergate.errors.FunctionNotFound`` and so on
(or ``from gateway.sdk import ...``): some share a name with a plugin API error."""

if TYPE_CHECKING:  # what type checkers see (``as``: re-exported); __getattr__ imports them
    from gateway.sdk import Alias as Alias
    from gateway.sdk import AsyncClient as AsyncClient
    from gateway.sdk import Attempt as Attempt
    from gateway.sdk import Client as Client
    from gateway.sdk import Deployment as Deployment
    from gateway.sdk import Event as Event
    from gateway.sdk import Execution as Execution
    from gateway.sdk import Function as Function
    from gateway.sdk import Graph as Graph
    from gateway.sdk import GraphRun as GraphRun
    from gateway.sdk import LogLine as LogLine
    from gateway.sdk import NodeRun as NodeRun
    from gateway.sdk import RuntimeInfo as RuntimeInfo
    from gateway.sdk import Task as Task
    from gateway.sdk import TiergateError as TiergateError
    from gateway.sdk import Version as Version
    from gateway.sdk import errors as errors


def __getattr__(name: str) -> Any:
    if name in SDK:
        import gateway.sdk

        value = getattr(gateway.sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tiergate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SDK})
