"""A scripted OpenAI-compatible server for the tests: the real chat-completions protocol over
HTTP on 127.0.0.1, answering from scripts the tests set per model name.

A script step is a dict — ``{"content": "…"}``, ``{"tool_calls": [{"name", "arguments"}]}``,
``{"status": 500, "error": "…"}``, optionally ``"delay": seconds``, or
``{"refuse": "json_schema"}`` (a 400 when the request asks for that ``response_format``, then the
next step) — or a callable that gets the request body and returns such a dict. Steps are used in
order; the last one repeats.

A request with ``"stream": true`` is answered as the real API does, with Server-Sent Events of
``chat.completion.chunk`` objects and ``data: [DONE]``: the content in the step's ``chunks``
(default: pieces of 8 characters), each sent ``chunk_delay`` seconds after the one before.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from plugins.testing import free_port

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class ScriptedLLM:
    def __init__(self) -> None:
        self.port = free_port()
        self.scripts: dict[str, list[Step]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._positions: dict[str, int] = defaultdict(int)
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, steps: list[Step]) -> str:
        self.scripts[model] = list(steps)
        self._positions[model] = 0
        self.requests[model].clear()
        return model

    def start(self) -> ScriptedLLM:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def _next(self, model: str) -> Step:
        steps = self.scripts.get(model) or [{"status": 404, "error": f"no script for {model}"}]
        position = self._positions[model]
        self._positions[model] = position + 1
        return steps[min(position, len(steps) - 1)]

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = body.get("model", "")
        self.requests[model].append(body)
        step = self._next(model)
        while isinstance(step, dict) and "refuse" in step:
            asked = (body.get("response_format") or {}).get("type")
            if asked == step["refuse"]:
                return _error(400, f"response_format {asked} is not supported by this server")
            step = self._next(model)
        if callable(step):
            step = step(body)
        if step.get("delay"):
            await asyncio.sleep(step["delay"])
        if "status" in step:
            return _error(step["status"], step.get("error", "scripted failure"))
        if body.get("stream"):
            return await self._stream(request, model, step)
        return web.json_response(self._completion(model, step))

    async def _stream(
        self, request: web.Request, model: str, step: dict[str, Any]
    ) -> web.StreamResponse:
        content = step.get("content") or ""
        chunks = step.get("chunks") or [content[i : i + 8] for i in range(0, len(content), 8)]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        completion_id = f"chatcmpl-{next(self._ids)}"
        deltas = [{"role": "assistant", "content": ""}] + [{"content": c} for c in chunks]
        for index, delta in enumerate(deltas):
            if index > 1 and step.get("chunk_delay"):
                await asyncio.sleep(step["chunk_delay"])
            last = index == len(deltas) - 1
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                ],
            }
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _completion(self, model: str, step: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
        finish = "stop"
        if step.get("tool_calls"):
            finish = "tool_calls"
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": orjson.dumps(c["arguments"]).decode()
                        if not isinstance(c["arguments"], str)
                        else c["arguments"],
                    },
                }
                for c in step["tool_calls"]
            ]
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "scripted", "code": str(status)}}, status=status
    )
