"""``ReviewTask``: one question for a person, kept in the KV as JSON (``task/<id>``).

A task is a value: every change makes a new one (``dataclasses.replace``) and writes it by
compare-and-set against the bytes it was read from, so two reviewers can never both decide it.
It becomes JSON only here, on its way to and from the KV; ``http/views.py`` renders it for the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import orjson

from tiers.attempt import Attempt

TaskStatus = Literal["pending", "completed", "rejected", "expired", "cancelled"]


@dataclass(slots=True)
class ReviewTask:
    """Times are Unix seconds. ``claimed_*`` say who holds it until when; ``answered_*`` who
    decided it (``answered_at`` alone when it expired); ``output`` or ``reason`` the answer."""

    id: str
    tenant: str
    function_id: str
    version: int
    execution_id: str
    input: Any
    instructions: str
    created_at: float
    expires_at: float
    attempts: list[Attempt] = field(default_factory=list)
    status: TaskStatus = "pending"
    claimed_by: str | None = None
    claimed_name: str | None = None
    claimed_until: float | None = None
    answered_by: str | None = None
    answered_name: str | None = None
    answered_at: float | None = None
    output: Any = None
    reason: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ReviewTask:
        """A task as the KV holds it. Keys this version does not know are ignored."""
        return cls.from_json(orjson.loads(raw))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReviewTask:
        known = {name: data[name] for name in _FIELDS if name in data}
        known["attempts"] = [Attempt.from_json(a) for a in data.get("attempts") or ()]
        return cls(**known)


_FIELDS = tuple(f.name for f in fields(ReviewTask))
