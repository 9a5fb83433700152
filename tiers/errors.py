"""What the cascade raises.

* ``InvocationError`` is the cascade's verdict when no tier produced an answer:
  ``CascadeExhausted`` (every tier tried failed) or ``InvocationTimeout`` (the last one timed out).
  Each carries its ``code`` from the API's error table, a ``detail`` and the ``attempts``; the
  gateway gives it its HTTP status (``gateway/http/problems.py``).
* ``TierSkipped`` and ``AttemptCancelled`` are attempt outcomes of the tiers themselves, beside
  the runtimes' ``AttemptFailure`` family (``plugins/errors.py``).
* ``ToolCallFailed`` is what a ``ToolGateway`` raises when a tool call is refused or fails, and
  ``TierConfigError`` what the deploy-time check of a manifest's ``tiers`` section raises.
"""

from __future__ import annotations

from typing import Any, ClassVar

from plugins.errors import AttemptFailure


class InvocationError(Exception):
    """The cascade's final verdict when no tier produced an answer."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class CascadeExhausted(InvocationError):
    code = "cascade_exhausted"


class InvocationTimeout(InvocationError):
    code = "timeout"


class TierSkipped(AttemptFailure):
    """The tier cannot run for this call (e.g. no LLM endpoint is configured)."""

    status = "skipped"


class AttemptCancelled(AttemptFailure):
    status = "cancelled"


class ToolCallFailed(Exception):
    """A tool call was refused or failed; ``code`` and ``detail`` are the API's, and go back to
    the model as the tool's result."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class TierConfigError(ValueError):
    """A manifest's ``tiers`` section is invalid; ``field`` is the dotted path that is."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
