"""Sandboxes for function code: every runtime that runs code in processes starts them through
``Sandbox.command`` (see ``bubblewrap`` for what a sandbox is and ``docs/isolation.md``)."""

from .bubblewrap import Sandbox, SandboxedCommand, SandboxSettings

__all__ = ["Sandbox", "SandboxSettings", "SandboxedCommand"]
