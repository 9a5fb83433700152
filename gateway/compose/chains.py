"""Chains: when an execution ends, its version's ``chains`` start the next functions — on success,
on failure or always, when a ``when`` holds over ``{input, output, error, execution}``, with an
input built by a mapping (default: the output), after ``delay_s``. Each child is a queued
execution with cause ``chain``; the parent lists it in ``children``.

A chain that cannot be followed — its target is gone, its input does not fit the target's
schema, an expression fails on this data, or the chain is already ``MAX_DEPTH`` links deep (a
loop such as a → b → a stops there) — is recorded on the parent in ``follow_errors``, never
dropped silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from gateway.errors import REPORTED
from gateway.expressions import ExpressionError
from gateway.functions.composition import Chain, Composition
from gateway.functions.registry import FunctionRef
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import InvokeOptions

if TYPE_CHECKING:
    from gateway.compose.durable import DurableExecutions
    from gateway.compose.followups import Document

MAX_DEPTH = 16
ON = {
    "success": frozenset({"completed"}),
    "failure": frozenset({"failed", "timeout"}),
    "always": frozenset({"completed", "failed", "timeout"}),
}


class Chains:
    def __init__(self, durable: DurableExecutions, document: Document) -> None:
        self._durable = durable
        self._document = document

    async def follow(self, record: ExecutionRecord, composition: Composition | None) -> None:
        """Start what the chains of ``record``'s version say, into its ``children`` (or its
        ``follow_errors``)."""
        if composition is None:
            return
        scope = {
            "input": record.input,
            "output": record.output,
            "error": record.error,
            "execution": self._document(record),
        }
        for index, chain in enumerate(composition.chains):
            if record.status in ON[chain.on]:
                await self._follow_one(record, index, chain, scope)

    async def _follow_one(
        self, record: ExecutionRecord, index: int, chain: Chain, scope: dict[str, Any]
    ) -> None:
        def refuse(code: str, detail: str) -> None:
            record.follow_errors.append(
                {"chain": str(index), "to": chain.to, "code": code, "detail": detail}
            )

        try:
            if chain.when is not None and not chain.when.matches(scope):
                return
            child_input = chain.input.apply(scope, record.output)
        except ExpressionError as exc:
            return refuse("expression_error", str(exc))
        if record.depth + 1 > MAX_DEPTH:
            return refuse(
                "chain_too_deep",
                f"{record.depth + 1} links deep: chains stop at {MAX_DEPTH} (a loop?)",
            )
        try:
            child = await self._durable.accept(
                record.tenant,
                FunctionRef(chain.to),
                orjson.dumps(child_input),
                InvokeOptions(trace_id=record.trace_id, traceparent=record.traceparent),
                cause={"kind": "chain", "execution_id": record.execution_id},
                depth=record.depth + 1,
                delay_s=chain.delay_s,
            )
        except REPORTED as exc:
            return refuse(exc.code, exc.detail)
        record.children.append(child.execution_id)
