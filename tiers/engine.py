"""The cascade engine: which tiers run, in what order, how often, for how long, and the verdict.

A tier attempt fails when it raises, times out, returns something that is not JSON, or returns
output that breaks ``output_schema``. Failures are retried ``tier_retries[tier]`` times, then the
cascade moves on (unless ``fallback`` is false). Every try is recorded in ``attempts`` and
reported to the callable the engine is given (the gateway counts it in its metrics).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from plugins.errors import AttemptFailure, BadOutput, FunctionTimeout, OutputTooLarge

from .attempt import Attempt, AttemptStatus, attempts_json
from .base import TIER_ORDER, Invocation, Tier, TierResult
from .errors import AttemptCancelled, CascadeExhausted, InvocationTimeout, TierSkipped
from .function import LoadedFunction


@dataclass(frozen=True)
class CascadeOptions:
    """The manifest's ``cascade`` section merged with per-invocation overrides."""

    start_tier: str = "code"
    skip_tiers: frozenset[str] = frozenset()
    tier_retries: Mapping[str, int] = field(default_factory=dict)
    tier_timeouts_ms: Mapping[str, int] = field(default_factory=dict)
    parallel: bool = False
    fallback: bool = True
    timeout_ms: int | None = None

    @classmethod
    def merge(cls, manifest: Mapping[str, Any], overrides: Mapping[str, Any]) -> CascadeOptions:
        values = {**manifest, **{k: v for k, v in overrides.items() if v is not None}}
        values["skip_tiers"] = frozenset(values.get("skip_tiers", ()))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Step:
    """One tier of a plan: how many tries it gets and how long each may take."""

    tier: Tier
    tries: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps calls take with ``options`` (kept with them, to know when it applies)."""

    options: CascadeOptions
    steps: tuple[Step, ...]


@dataclass
class Outcome:
    """A successful cascade: the winning tier and its output value."""

    tier: str
    output: Any
    details: Mapping[str, Any] = field(default_factory=dict)


AttemptReport = Callable[[str, str, float], None]
"""(tier, attempt status, seconds): called once per attempt, as it ends."""


class CascadeEngine:
    """Runs the cascade over the tiers it was given.

    Tiers are added once, at startup, after the engine is made: the agentic and human tiers call
    services (the invoke path, the review tasks) that themselves need the engine, so the app
    factory makes the engine, then those services, then adds the tiers with them.
    """

    def __init__(self, report_attempt: AttemptReport) -> None:
        self._tiers: dict[str, Tier] = {}
        self._report_attempt = report_attempt

    def add(self, *tiers: Tier) -> None:
        for tier in tiers:
            if tier.name in self._tiers:
                raise ValueError(f"the {tier.name} tier is added twice")
            self._tiers[tier.name] = tier

    @property
    def tier_names(self) -> list[str]:
        return list(self._tiers)

    def plan(self, fn: LoadedFunction, options: CascadeOptions) -> Plan:
        """The steps this function's calls take with these options. Worked out once per
        function version for its own options (the common case, kept on the loaded function),
        and per call only when a call overrides them."""
        cached = fn.extras.get("plan")
        if cached is not None and cached.options is options:
            return cast(Plan, cached)
        start = TIER_ORDER.index(options.start_tier)
        steps = []
        for name in TIER_ORDER[start:]:
            tier = self._tiers.get(name)
            if tier is None or name in options.skip_tiers or not tier.configured(fn):
                continue
            timeout_ms = self._timeout_ms(fn, options, tier)
            steps.append(Step(tier, options.tier_retries.get(name, 0) + 1, timeout_ms / 1000))
        plan = Plan(options, tuple(steps))
        if options is fn.extras.get("cascade"):
            fn.extras["plan"] = plan
        return plan

    async def run(self, inv: Invocation, options: CascadeOptions) -> Outcome:
        """The winning tier's outcome; raises the cascade's verdict when every tier failed, or
        ``AwaitingHuman`` when the execution went to a person."""
        steps = self.plan(inv.fn, options).steps
        last: AttemptFailure | None = None
        if options.parallel:
            automated = [s for s in steps if s.tier.name != "human"]
            if len(automated) > 1:
                try:
                    return await self._run_parallel(inv, automated)
                except AttemptFailure as failure:
                    last = failure
                    if not options.fallback:
                        raise self._verdict(inv, last) from None
                steps = steps[len(automated) :]
        for step in steps:
            try:
                if step.tries == 1:  # the common case: one try, no retry loop
                    return await self._attempt(inv, step, 1)
                return await self._run_step(inv, step)
            except AttemptFailure as failure:
                last = failure
                if not options.fallback:
                    break
        raise self._verdict(inv, last)

    async def _run_step(self, inv: Invocation, step: Step) -> Outcome:
        failure: AttemptFailure | None = None
        for attempt in range(1, step.tries + 1):
            try:
                return await self._attempt(inv, step, attempt)
            except TierSkipped as exc:
                failure = exc
                break
            except AttemptFailure as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _attempt(self, inv: Invocation, step: Step, attempt: int) -> Outcome:
        tier, timeout_s = step.tier, step.timeout_s
        started = time.perf_counter()
        try:
            if tier.ends_by_deadline:
                result = await tier.run(inv, timeout_s)
            else:
                try:
                    async with asyncio.timeout(timeout_s):
                        result = await tier.run(inv, timeout_s)
                except TimeoutError:
                    raise FunctionTimeout(
                        f"{tier.name} tier timed out after {timeout_s:g} s"
                    ) from None
            inv.add_logs(result.logs)
            if result.metrics:
                inv.add_metrics(result.metrics)
            value = self._checked_output(inv, result)
        except AttemptFailure as failure:
            # Redacted here, where it is recorded: the verdict's detail is built from it too.
            failure.message = inv.redact(failure.message)
            failure.args = (failure.message,)
            inv.add_logs(failure.logs)
            if failure.metrics:
                inv.add_metrics(failure.metrics)
            self._record(
                inv, tier.name, attempt, failure.status, failure.message, started, failure.code
            )
            raise
        except asyncio.CancelledError:
            self._record(inv, tier.name, attempt, "cancelled", "cancelled", started)
            raise
        self._record(inv, tier.name, attempt, "succeeded", None, started)
        return Outcome(tier.name, value, result.details)

    @staticmethod
    def _timeout_ms(fn: LoadedFunction, options: CascadeOptions, tier: Tier) -> int:
        if tier.name == "code":
            if options.timeout_ms is not None:
                return options.timeout_ms
            return options.tier_timeouts_ms.get("code", fn.limits.timeout_ms)
        return options.tier_timeouts_ms.get(tier.name, tier.default_timeout_ms)

    @staticmethod
    def _checked_output(inv: Invocation, result: TierResult) -> Any:
        value = result.value
        if result.output is not None:
            limit = inv.fn.limits.max_output_bytes
            if len(result.output) > limit:
                raise OutputTooLarge(
                    f"the output is {len(result.output)} bytes, over limits.max_output_kb "
                    f"({limit // 1024} KiB)"
                )
            try:
                value = orjson.loads(result.output)
            except orjson.JSONDecodeError as exc:
                raise BadOutput(f"output is not JSON: {exc}") from None
        errors = inv.fn.output_check.errors(value) if inv.fn.output_check.active else None
        if errors:
            where = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
            raise BadOutput(f"output breaks output_schema: {where}")
        return value

    def _record(
        self,
        inv: Invocation,
        tier: str,
        attempt: int,
        status: AttemptStatus,
        error: str | None,
        started: float,
        code: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        ended = Attempt(tier, attempt, status, error, round(elapsed * 1000, 3), code)
        inv.attempts.append(ended)
        self._report_attempt(tier, status, elapsed)
        live = inv.live
        if live is not None and live.followers:
            live.attempt(inv.execution_id, ended)

    async def _run_parallel(self, inv: Invocation, steps: list[Step]) -> Outcome:
        """Start the automated tiers at once; the lowest tier that succeeds wins (as soon as every
        tier below it has failed), the rest are cancelled. Raises the last failure."""
        tasks = [asyncio.ensure_future(self._run_step(inv, step)) for step in steps]
        try:
            last: AttemptFailure | None = None
            for task in tasks:  # in tier order: a lower tier's answer wins even if it came later
                try:
                    return await task
                except AttemptFailure as failure:
                    last = failure
            assert last is not None
            raise last
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _verdict(inv: Invocation, last: AttemptFailure | None) -> Exception:
        if last is None:
            return CascadeExhausted(
                "no tier could run: the function has no code and no tier configured for this call",
                attempts=attempts_json(inv.attempts),
            )
        if isinstance(last, AttemptCancelled):
            return last
        names = ", ".join(sorted({a.tier for a in inv.attempts}))
        attempts = attempts_json(inv.attempts)
        if isinstance(last, FunctionTimeout):
            tier = inv.attempts[-1].tier if inv.attempts else "last"
            return InvocationTimeout(
                f"the {tier} tier timed out: {last.message}", attempts=attempts
            )
        return CascadeExhausted(
            f"every tier tried failed ({names}); last error: {last.message}", attempts=attempts
        )
