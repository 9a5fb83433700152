"""The human tier: creates a durable review task and leaves the execution ``awaiting_human``.

The cascade stops here (``AwaitingHuman``); a reviewer completes or rejects the task later,
through the API or the reviewer page, or it expires.
"""

from __future__ import annotations

from typing import ClassVar

from .base import AwaitingHuman, Invocation, Tier, TierResult
from .function import LoadedFunction
from .ports import ReviewDesk

DEFAULT_TIMEOUT_MS = 24 * 3600 * 1000


class HumanTier(Tier):
    name: ClassVar[str] = "human"
    default_timeout_ms: ClassVar[int] = DEFAULT_TIMEOUT_MS
    ends_by_deadline: ClassVar[bool] = True  # it only files a task; the sweeper ends it later

    def __init__(self, desk: ReviewDesk) -> None:
        self._desk = desk

    def configured(self, fn: LoadedFunction) -> bool:
        return "human" in fn.tiers

    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        config = inv.fn.tiers["human"]
        expires_in = config.get("expires_in_s", timeout_s)
        task = await self._desk.create(
            tenant=inv.tenant,
            function_id=inv.fn.function_id,
            version=inv.fn.version,
            execution_id=inv.execution_id,
            input=inv.input,
            instructions=config.get("instructions", ""),
            attempts=inv.attempts,
            expires_in_s=expires_in,
        )
        raise AwaitingHuman(task.id)
