"""The generative tier: one chat completion that answers in place of the function's code,
streamed, so that whoever follows the execution sees the model's tokens as they arrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import orjson

from .base import Invocation, Tier, TierResult
from .function import LoadedFunction
from .llm import LLMEndpoint, describe_task, parse_json_reply


class GenerativeTier(Tier):
    name: ClassVar[str] = "generative"
    default_timeout_ms: ClassVar[int] = 60_000

    def __init__(self, llm: LLMEndpoint) -> None:
        self._llm = llm

    def configured(self, fn: LoadedFunction) -> bool:
        return "generative" in fn.tiers

    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        config = inv.fn.tiers["generative"]
        model = self._llm.model(config.get("model"))
        system = describe_task(inv.fn.description, config.get("prompt", ""), inv.fn.output_schema)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": "Input:\n" + orjson.dumps(inv.input).decode()},
        ]
        reply = await self._llm.complete(
            model=model,
            messages=messages,
            timeout_s=timeout_s,
            schema=inv.fn.output_schema,
            temperature=config.get("temperature"),
            on_token=self._tokens(inv),
        )
        return TierResult(value=parse_json_reply(reply.content), details={"model": model})

    def _tokens(self, inv: Invocation) -> Callable[[str], None] | None:
        """Where the model's text goes as it arrives: the execution's followers (``live``),
        who see it as ``token`` events; the answer is still checked whole, once it is all in.
        None (not streamed) for an invocation nobody can follow."""
        live, execution_id = inv.live, inv.execution_id
        if live is None:
            return None
        return lambda text: live.token(execution_id, self.name, text)
