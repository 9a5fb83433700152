"""Sandboxes for function code: every runtime that runs code in processes starts them through
``Sandbox.command`` (see ``bubblewrap`` for what a sandbox is and ``docs/isolation.md``), and a
function with ``network`` reaches out only through its worker's ``EgressProxy`` (``egress``)."""

from .bubblewrap import Sandbox, SandboxedCommand, SandboxSettings
from .egress import EGRESS_SOCKET, NETWORK_SCHEMA, AllowList, EgressLedger
from .proxy import EgressProxy

__all__ = [
    "EGRESS_SOCKET",
    "NETWORK_SCHEMA",
    "AllowList",
    "EgressLedger",
    "EgressProxy",
    "Sandbox",
    "SandboxSettings",
    "SandboxedCommand",
]
