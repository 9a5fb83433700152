"""``Attempt``: one try of one tier, as the engine records it in an execution's ``attempts``.

The engine appends one per try; the execution record, the review task and the cascade's problem
document all carry them. ``as_json`` is the form the API shows (``code`` only when the failure has
a stable name); the stores may keep ``code: null`` as well, and ``from_json`` reads either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

AttemptStatus = Literal["succeeded", "failed", "timeout", "skipped", "cancelled"]


# One is built per try and written with every record, so neither frozen (its __init__ costs ~6x
# a plain one) nor slotted (orjson encodes a slotted dataclass ~3.5x slower: no __dict__ to read).
@dataclass
class Attempt:
    tier: str
    attempt: int
    status: AttemptStatus
    error: str | None
    duration_ms: float
    code: str | None = None

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "tier": self.tier,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }
        if self.code is not None:
            shown["code"] = self.code
        return shown

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        """An attempt as a store kept it; keys this version does not know are ignored."""
        return cls(
            data["tier"],
            data.get("attempt", 1),
            data["status"],
            data.get("error"),
            data.get("duration_ms", 0.0),
            data.get("code"),
        )


def attempts_json(attempts: Iterable[Attempt]) -> list[dict[str, Any]]:
    return [attempt.as_json() for attempt in attempts]
