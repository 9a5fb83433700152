"""The agentic tier: a tool-calling loop whose tools are other functions of the same tenant.

Each tool call goes through the gateway's own invoke path (admission, records, metrics and
tenancy apply), never reaches a human tier, and is refused past ``MAX_DEPTH`` nested calls. A
tool's failure goes back to the model as the tool's result. The loop ends when the model answers
without calling a tool; that answer, as JSON, is the output.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from plugins.errors import FunctionFailed
from plugins.runtime import LogEntry

from .base import Invocation, Tier, TierResult
from .errors import ToolCallFailed
from .function import LoadedFunction
from .llm import LLMEndpoint, describe_task, parse_json_reply
from .ports import ToolGateway

MAX_DEPTH = 3
DEFAULT_STEPS = 8
TOOL_PROMPT = (
    "You may call the tools you are given; each is another function of this API. "
    "When you know the answer, reply with it as JSON and call no tool."
)


class AgenticTier(Tier):
    name: ClassVar[str] = "agentic"
    default_timeout_ms: ClassVar[int] = 300_000

    def __init__(self, llm: LLMEndpoint, tools: ToolGateway) -> None:
        self._llm = llm
        self._tools = tools

    def configured(self, fn: LoadedFunction) -> bool:
        return "agentic" in fn.tiers

    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        config = inv.fn.tiers["agentic"]
        model = self._llm.model(config.get("model"))
        deadline = time.monotonic() + timeout_s
        tools, wrapped = await self._describe(inv.tenant, config.get("tools", []))
        system = describe_task(
            inv.fn.description, config.get("instructions", ""), inv.fn.output_schema
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"{system}\n\n{TOOL_PROMPT}" if tools else system},
            {"role": "user", "content": "Input:\n" + orjson.dumps(inv.input).decode()},
        ]
        logs: list[LogEntry] = []
        steps = config.get("max_steps", DEFAULT_STEPS)
        for step in range(1, steps + 1):
            remaining = max(0.001, deadline - time.monotonic())
            reply = await self._llm.complete(
                model=model,
                messages=messages,
                timeout_s=remaining,
                tools=tools,
                schema=inv.fn.output_schema,
            )
            calls = list(reply.tool_calls or [])
            if not calls:
                value = parse_json_reply(reply.content)
                return TierResult(value=value, logs=logs, details={"model": model, "steps": step})
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.content or "",
                    "tool_calls": [c.model_dump() for c in calls],
                }
            )
            for call in calls:
                content = await self._call(
                    inv, call.function.name, call.function.arguments, wrapped
                )
                logs.append(
                    LogEntry(
                        time.time(), "log", f"tool {call.function.name} -> {content[:200]}", "INFO"
                    )
                )
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise FunctionFailed(
            f"the agent took {steps} steps (max_steps) without answering", logs=logs
        )

    async def _describe(
        self, tenant: str, ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """OpenAI tool definitions for the listed functions that exist in this tenant; tools whose
        input is not an object take it as ``{"input": …}`` (those are returned in ``wrapped``)."""
        tools, wrapped = [], set()
        for tool_id in ids:
            fn = await self._tools.load_tool(tenant, tool_id)
            if fn is None:
                continue
            schema = fn.input_schema
            if not (isinstance(schema, dict) and schema.get("type") == "object"):
                schema = {
                    "type": "object",
                    "properties": {"input": schema or {}},
                    "required": ["input"],
                }
                wrapped.add(tool_id)
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": tool_id,
                        "description": fn.description or f"the {tool_id} function",
                        "parameters": schema,
                    },
                }
            )
        return tools, wrapped

    async def _call(self, inv: Invocation, name: str, arguments: str, wrapped: set[str]) -> str:
        listed = inv.fn.tiers["agentic"].get("tools", [])
        if name not in listed:
            return f"error: there is no tool {name!r}; the tools are {', '.join(listed) or 'none'}"
        if inv.depth + 1 > MAX_DEPTH:
            return f"error: tool calls nest deeper than {MAX_DEPTH}; answer without tools"
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return "error: the arguments are not valid JSON"
        if name in wrapped:
            args = args.get("input") if isinstance(args, dict) else args
        try:
            output = await self._tools.call_tool(
                inv.tenant, name, orjson.dumps(args), inv.depth + 1, inv.trace_id
            )
        except ToolCallFailed as exc:
            return f"error: {exc.code}: {exc.detail}"
        return orjson.dumps(output).decode()
