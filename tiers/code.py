"""The code tier: the function's own code through its runtime plugin."""

from __future__ import annotations

import time
from typing import ClassVar

from plugins.runtime import Call

from .base import Invocation, Tier, TierResult
from .function import LoadedFunction


class CodeTier(Tier):
    name: ClassVar[str] = "code"
    default_timeout_ms: ClassVar[int] = 30_000
    ends_by_deadline: ClassVar[bool] = True

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
        )
        result = await fn.runtime.invoke(fn.handle, call)
        return TierResult(output=result.output, logs=result.logs)
