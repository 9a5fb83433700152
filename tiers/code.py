"""The code tier: the function's own code through its runtime plugin, which may call other
functions of the tenant from the code (``Call.invoke``: the Python runtime's ``context.invoke``,
the wasm runtime's ``tiergate.invoke``) through the gateway's own invoke path, as an agent's
tools do.

Such calls nest at most ``MAX_CALL_DEPTH`` deep (a function that calls itself holds a worker on
every level while it waits), and one execution makes at most ``MAX_CALLS``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ClassVar

import orjson

from plugins.runtime import Call, CallRefused

from .base import Invocation, Tier, TierResult
from .errors import ToolCallFailed
from .function import LoadedFunction
from .ports import ToolGateway

MAX_CALL_DEPTH = 4
MAX_CALLS = 64


class CodeTier(Tier):
    name: ClassVar[str] = "code"
    default_timeout_ms: ClassVar[int] = 30_000
    ends_by_deadline: ClassVar[bool] = True

    def __init__(
        self,
        calls: ToolGateway | None = None,
        *,
        annotate: Callable[[str, str], None] | None = None,
    ) -> None:
        """``annotate``: ``Call.annotate`` for every call (set while the gateway traces)."""
        self._calls = calls
        self._annotate = annotate

    def configured(self, fn: LoadedFunction) -> bool:
        return fn.has_code

    async def run(self, inv: Invocation, timeout_s: float) -> TierResult:
        fn = inv.fn
        assert fn.runtime is not None
        call = Call(
            input=inv.input_bytes,
            execution_id=inv.execution_id,
            function_id=fn.function_id,
            trace_id=inv.trace_id,
            deadline=time.monotonic() + timeout_s,
            limits=fn.limits,
            env=fn.env,
            secrets=inv.secrets,
            caller=inv.caller,
            custom=inv.custom,
            # a partial, not a closure made by a call: nothing more on the hot path
            invoke=None if self._calls is None else functools.partial(self._invoke, inv, [0]),
            on_log=inv.add_log,  # entries kept as written: a killed call keeps them too
            annotate=self._annotate,
        )
        result = await fn.runtime.invoke(fn.handle, call)
        return TierResult(output=result.output, logs=result.logs, metrics=result.metrics)

    async def _invoke(self, inv: Invocation, made: list[int], ref: str, body: bytes) -> bytes:
        """``Call.invoke`` of one execution (``made`` counts its calls)."""
        assert self._calls is not None
        if inv.depth + 1 > MAX_CALL_DEPTH:
            raise CallRefused(
                "call_too_deep", f"functions call functions at most {MAX_CALL_DEPTH} deep"
            )
        made[0] += 1
        if made[0] > MAX_CALLS:
            raise CallRefused(
                "too_many_calls", f"one execution calls other functions at most {MAX_CALLS} times"
            )
        cause = {"kind": "call", "execution_id": inv.execution_id}
        try:
            output = await self._calls.call_tool(
                inv.tenant, ref, body, inv.depth + 1, inv.trace_id, cause
            )
        except ToolCallFailed as exc:
            raise CallRefused(exc.code, exc.detail) from None
        return orjson.dumps(output)
