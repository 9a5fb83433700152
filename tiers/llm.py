"""One OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp…) as the model tiers use it.

The ``openai`` client does the HTTP; this module adds what the tiers need around it: a circuit
breaker, so a dead provider fails fast instead of eating every tier timeout; the structured
output ladder (``json_schema`` → ``json_object`` → plain JSON by instruction), remembering what
the endpoint accepted; and turning a reply into a JSON value or a clear failure.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import openai
import orjson
import pybreaker

from plugins.errors import BadOutput, FunctionFailed

from .errors import TierSkipped

FAIL_MAX = 5
RESET_S = 30.0
FORMATS = ("json_schema", "json_object", "plain")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


@dataclass(frozen=True, slots=True)
class StreamedReply:
    """A streamed completion's message, put together: what the tiers read of a message."""

    content: str


class LLMEndpoint:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        default_model: str | None,
        *,
        fail_max: int = FAIL_MAX,
        reset_s: float = RESET_S,
    ) -> None:
        self.base_url = base_url
        self.default_model = default_model
        self._client = (
            None
            if not base_url
            else openai.AsyncOpenAI(
                base_url=base_url, api_key=api_key or "not-needed", max_retries=0
            )
        )
        excluded: list[type[BaseException] | Callable[[Any], bool]] = [
            asyncio.CancelledError,
            _is_not_the_providers_fault,
        ]
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_s,
            throw_new_error_on_trip=False,
            exclude=excluded,
        )
        self._format_index = 0

    @property
    def configured(self) -> bool:
        return self._client is not None

    def model(self, configured: str | None) -> str:
        model = configured or self.default_model
        if not model:
            raise TierSkipped("no model: set tiers.<tier>.model or TIERGATE_LLM_MODEL")
        return model

    async def complete(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        timeout_s: float,
        schema: Any = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        temperature: float | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Any:
        """One chat completion; returns the first choice's message. With ``on_token`` the
        completion is streamed (``stream=True``): ``on_token`` gets each piece of the answer's
        text as it arrives, and the message returned is a ``StreamedReply`` of the whole text."""
        if self._client is None:
            raise TierSkipped("no LLM endpoint is configured (set OPENAI_BASE_URL)")
        while True:
            kind = FORMATS[self._format_index]
            request = self._request(kind, model, messages, schema, tools, temperature)
            try:
                with self._breaker.calling():
                    if on_token is not None:
                        return await self._streamed(request, timeout_s, on_token)
                    reply = await self._client.chat.completions.create(timeout=timeout_s, **request)
                return reply.choices[0].message
            except pybreaker.CircuitBreakerError:
                raise FunctionFailed(
                    f"the LLM endpoint {self.base_url} is failing; not calling it again for a while"
                ) from None
            except openai.BadRequestError as exc:
                if kind != "plain" and "response_format" in str(exc):
                    self._format_index += 1  # this endpoint does not take that format: step down
                    continue
                raise FunctionFailed(
                    f"the LLM endpoint refused the request: {_reason(exc)}"
                ) from None
            except openai.APITimeoutError:
                raise FunctionFailed(
                    f"the LLM endpoint did not answer in {timeout_s:g} s"
                ) from None
            except openai.APIStatusError as exc:
                raise FunctionFailed(
                    f"the LLM endpoint answered HTTP {exc.status_code}: {_reason(exc)}"
                ) from None
            except openai.APIConnectionError as exc:
                raise FunctionFailed(
                    f"cannot reach the LLM endpoint {self.base_url}: {exc}"
                ) from None

    async def _streamed(
        self, request: dict[str, Any], timeout_s: float, on_token: Callable[[str], None]
    ) -> StreamedReply:
        assert self._client is not None
        chunks = await self._client.chat.completions.create(
            timeout=timeout_s, stream=True, **request
        )
        parts: list[str] = []
        async with chunks:
            async for chunk in chunks:
                text = chunk.choices[0].delta.content if chunk.choices else None
                if text:
                    parts.append(text)
                    on_token(text)
        return StreamedReply("".join(parts))

    def _request(
        self,
        kind: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        schema: Any,
        tools: Sequence[Mapping[str, Any]] | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model, "messages": list(messages)}
        if temperature is not None:
            request["temperature"] = temperature
        if tools:
            request["tools"] = list(tools)
        elif kind == "json_schema" and isinstance(schema, dict):
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": False},
            }
        elif kind in ("json_schema", "json_object"):
            request["response_format"] = {"type": "json_object"}
        return request

    def breaker_state(self) -> str:
        return str(self._breaker.current_state)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def parse_json_reply(content: str | None) -> Any:
    """The model's answer as JSON: code fences are tolerated, anything else is a failure."""
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        shown = text if len(text) < 200 else text[:200] + "…"
        raise BadOutput(f"the model's answer is not JSON: {shown!r}") from None


def describe_task(description: str, instructions: str, schema: Any) -> str:
    """The system prompt both model tiers start from."""
    parts = ["You stand in for a function of an API. Answer with one JSON value and nothing else."]
    if description:
        parts.append(f"What the function does: {description}")
    if instructions:
        parts.append(instructions)
    if schema is not None:
        parts.append("The answer must fit this JSON Schema:\n" + orjson.dumps(schema).decode())
    parts.append(f"Today is {datetime.now(UTC).date().isoformat()}.")
    return "\n\n".join(parts)


def _reason(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return exc.message


def _is_not_the_providers_fault(exc: BaseException) -> bool:
    """Bad requests describe our request, not the provider's health."""
    return isinstance(exc, openai.BadRequestError)
