"""The manifest's composition fields — ``triggers``, ``chains``, ``schedules`` and ``retry``
(API.md, "Composition") — checked at deploy and compiled into what the runtime acts on.

Their shapes are JSON Schema (``COMPOSITION_SCHEMA``, part of the manifest's schema, so
/openapi.json documents them); ``Composition.parse`` checks each item against its schema again and
then what a schema cannot say: JMESPath expressions and mappings (``gateway/expressions.py``), cron
expressions, time zones, and rules across fields. Every problem is ``InvalidManifest`` naming the
field, such as ``chains[1].when`` or ``schedules[0].cron``.

A stored manifest passed all of this when it was deployed, so ``Composition.parse(manifest,
stored=True)`` never fails: an item that no longer passes (a time zone this host does not have,
say) is left out, and the log says so.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, available_timezones

import jsonschema
from croniter import CroniterBadDateError, CroniterError, croniter
from jsonschema import Draft202012Validator

from gateway import expressions
from gateway.errors import InvalidManifest
from gateway.expressions import Expression, compile_expression, compile_mapping

log = logging.getLogger("tiergate.functions")

T = TypeVar("T")

FUNCTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # a manifest's id, a chain's target
EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
CHAIN_ON = ("success", "failure", "always")
MAX_TRIGGERS = 16
MAX_CHAINS = 16
MAX_SCHEDULES = 8
MAX_DELAY_S = 86_400
MAX_EVERY_S = 31 * 86_400
MAX_CRON_LENGTH = 128
MAX_RETRY_ATTEMPTS = 10
MAX_BACKOFF_MS = 86_400_000
MAX_AGE_S = 7 * 86_400

_EXPRESSION = {
    "type": "string",
    "minLength": 1,
    "description": f"a JMESPath expression of at most {expressions.MAX_EXPRESSION_LENGTH} "
    "characters",
}
_MAPPING = {
    "type": ["string", "object", "null"],
    "additionalProperties": {"type": ["string", "object", "null"]},
    "description": "null (the default value), a JMESPath expression, or an object whose values "
    'are mappings (literals as JMESPath literals, e.g. `"high"`); at most '
    f"{expressions.MAX_MAPPING_FIELDS} fields in all, {expressions.MAX_MAPPING_DEPTH} objects deep",
}
TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event"],
    "additionalProperties": False,
    "properties": {
        "event": {"type": "string", "pattern": EVENT_TYPE.pattern},
        "when": _EXPRESSION,
        "input": _MAPPING,
    },
}
CHAIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to"],
    "additionalProperties": False,
    "properties": {
        "to": {"type": "string", "pattern": FUNCTION_ID.pattern},
        "on": {"enum": list(CHAIN_ON), "default": "success"},
        "when": _EXPRESSION,
        "input": _MAPPING,
        "delay_s": {"type": "number", "minimum": 0, "maximum": MAX_DELAY_S, "default": 0},
    },
}
SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "exactly one of cron and every_s; every_s ticks fall on multiples of "
    "every_s seconds since the Unix epoch",
    "properties": {
        "cron": {
            "type": "string",
            "maxLength": MAX_CRON_LENGTH,
            "description": "5 fields: minute hour day-of-month month day-of-week",
        },
        "timezone": {"type": "string", "maxLength": 64, "default": "UTC"},
        "every_s": {"type": "integer", "minimum": 1, "maximum": MAX_EVERY_S},
        "input": {"description": "any JSON value (default null)"},
    },
}
RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 0, "maximum": MAX_RETRY_ATTEMPTS, "default": 2},
        "backoff_ms": {"type": "integer", "minimum": 1, "maximum": 3_600_000, "default": 1000},
        "max_backoff_ms": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BACKOFF_MS,
            "default": 60_000,
        },
        "max_age_s": {"type": "integer", "minimum": 1, "maximum": MAX_AGE_S, "default": 21_600},
    },
}
COMPOSITION_SCHEMA: dict[str, Any] = {
    "triggers": {"type": "array", "maxItems": MAX_TRIGGERS, "items": TRIGGER_SCHEMA},
    "chains": {"type": "array", "maxItems": MAX_CHAINS, "items": CHAIN_SCHEMA},
    "schedules": {"type": "array", "maxItems": MAX_SCHEDULES, "items": SCHEDULE_SCHEMA},
    "retry": RETRY_SCHEMA,
}
_ITEMS = {
    "triggers": Draft202012Validator(TRIGGER_SCHEMA),
    "chains": Draft202012Validator(CHAIN_SCHEMA),
    "schedules": Draft202012Validator(SCHEDULE_SCHEMA),
}
_LISTS = {name: Draft202012Validator({"type": "array"}) for name in _ITEMS}
_RETRY = Draft202012Validator(RETRY_SCHEMA)
_BOUND_NOUNS = {"maxItems": "items", "maxLength": "characters", "maxProperties": "fields"}
_CRON_FIELD = re.compile(
    r"(?:[0-9*/,#?L-]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
    r"|sun|mon|tue|wed|thu|fri|sat)+",
    re.IGNORECASE,
)


def schema_problem(error: jsonschema.ValidationError, prefix: str = "") -> InvalidManifest:
    """A JSON Schema error as ``InvalidManifest`` naming the field (``chains[1].on``), with
    a short message for the bounds (rather than jsonschema's, which repeats the whole value)."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    where = (prefix + path).lstrip(".") or "(manifest)"
    noun = _BOUND_NOUNS.get(str(error.validator))
    message = f"at most {error.validator_value} {noun} allowed" if noun else error.message
    return InvalidManifest(f"{where}: {message}", field=where)


def _check_shape(validator: Draft202012Validator, value: Any, where: str) -> None:
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise schema_problem(errors[0], where)


@dataclass(frozen=True)
class Trigger:
    """Start the function (its ``latest``) on every event of type ``event`` for which ``when``
    holds over the event ``{type, id, data, time}``; its input is ``input`` mapped from the
    event, by default the event's ``data``."""

    event: str
    when: Expression | None = None
    input: expressions.Mapping = field(default_factory=expressions.Mapping)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Raises ExpressionError when ``when`` fails."""
        if event.get("type") != self.event:
            return False
        return self.when is None or self.when.matches(event)

    def input_for(self, event: Mapping[str, Any]) -> Any:
        return self.input.apply(event, event.get("data"))


@dataclass(frozen=True)
class Chain:
    """Start ``to`` (its ``latest``) ``delay_s`` after an execution of this function ended as
    ``on`` says, when ``when`` holds over ``{input, output, error, execution}``; its input is
    ``input`` mapped from that, by default ``output``."""

    to: str
    on: str = "success"
    when: Expression | None = None
    input: expressions.Mapping = field(default_factory=expressions.Mapping)
    delay_s: float = 0.0

    def follows(self, succeeded: bool, context: Mapping[str, Any]) -> bool:
        """Whether an execution that ``succeeded`` (or not) starts this chain. Raises
        ExpressionError when ``when`` fails."""
        if self.on != "always" and (self.on == "success") != succeeded:
            return False
        return self.when is None or self.when.matches(context)

    def input_for(self, context: Mapping[str, Any]) -> Any:
        return self.input.apply(context, context.get("output"))


@dataclass(frozen=True)
class Schedule:
    """Start the function on every tick of ``cron`` (in ``timezone``) or every ``every_s``
    seconds (ticks on multiples of ``every_s`` since the Unix epoch, so every instance agrees on
    them), with ``input``."""

    cron: str | None = None
    every_s: int | None = None
    timezone: str = "UTC"
    input: Any = field(default=None, hash=False)

    @property
    def key(self) -> str:
        """What the ticks depend on: equal keys, equal ticks."""
        return f"cron {self.cron} {self.timezone}" if self.cron else f"every {self.every_s}"

    def next_after(self, t: float) -> float:
        """The first tick strictly after ``t`` (Unix seconds); ``math.inf`` if there is none."""
        if self.every_s is not None:
            return float((math.floor(t / self.every_s) + 1) * self.every_s)
        assert self.cron is not None
        start = datetime.fromtimestamp(t, ZoneInfo(self.timezone))
        try:
            return croniter(self.cron, start).get_next(float)
        except CroniterBadDateError:
            return math.inf

    def last_at_or_before(self, t: float) -> float:
        """The last tick at or before ``t``; ``-math.inf`` if there is none."""
        if self.every_s is not None:
            return float(math.floor(t / self.every_s) * self.every_s)
        assert self.cron is not None
        try:
            before = croniter(self.cron, datetime.fromtimestamp(t, ZoneInfo(self.timezone)))
            tick = before.get_prev(float)
        except CroniterBadDateError:
            return -math.inf
        following = self.next_after(tick)
        return following if following <= t else tick


@dataclass(frozen=True)
class RetryPolicy:
    """How an async execution that ended ``failed`` or ``timeout`` is run again: at most
    ``attempts`` retries, while it is younger than ``max_age_s``, after exponential backoff
    (``backoff_ms`` doubling, at most ``max_backoff_ms``) with equal jitter: half the wait is
    fixed, so each retry waits at least as long as the one before could, and half is random, so
    executions that failed together do not come back together."""

    attempts: int = 2
    backoff_ms: int = 1000
    max_backoff_ms: int = 60_000
    max_age_s: int = 21_600

    def allows(self, retry_number: int, age_s: float) -> bool:
        """Whether retry ``retry_number`` (1 for the first) may run for an execution that
        started ``age_s`` seconds ago."""
        return 1 <= retry_number <= self.attempts and age_s < self.max_age_s

    def ceiling_s(self, retry_number: int) -> float:
        """The longest wait before retry ``retry_number``: the backoff doubled per retry, capped."""
        doublings = min(max(retry_number, 1) - 1, 64)
        return min(self.backoff_ms * (1 << doublings), self.max_backoff_ms) / 1000

    def delay_s(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``retry_number``: from half of ``ceiling_s`` to all of it."""
        ceiling = self.ceiling_s(retry_number)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Composition:
    """A version's composition fields, compiled; empty when the manifest has none."""

    triggers: tuple[Trigger, ...] = ()
    chains: tuple[Chain, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    retry: RetryPolicy = RetryPolicy()

    @property
    def empty(self) -> bool:
        """No triggers, chains or schedules (``retry`` always has a value: the default)."""
        return not (self.triggers or self.chains or self.schedules)

    @classmethod
    def parse(cls, manifest: Mapping[str, Any], *, stored: bool = False) -> Composition:
        """The composition of ``manifest`` (a manifest as deployed or as stored). Raises
        InvalidManifest naming the field, unless ``stored``: then it leaves out what fails."""
        if not isinstance(manifest, Mapping):
            if stored:
                return cls()
            raise InvalidManifest("the manifest must be a JSON object", field="(manifest)")
        return cls(
            triggers=tuple(_items(manifest, "triggers", MAX_TRIGGERS, _trigger, stored)),
            chains=tuple(_items(manifest, "chains", MAX_CHAINS, _chain, stored)),
            schedules=tuple(_items(manifest, "schedules", MAX_SCHEDULES, _schedule, stored)),
            retry=_lenient(_retry, manifest.get("retry"), "retry", stored) or RetryPolicy(),
        )

    def warnings(self, function_ids: Collection[str]) -> list[str]:
        """What a deploy answers besides: each chain whose target is not among ``function_ids``
        (the tenant's functions, this one included)."""
        return [
            f"chains[{i}].to: no function {chain.to!r} in this tenant (yet); the chain starts "
            "nothing until one is deployed"
            for i, chain in enumerate(self.chains)
            if chain.to not in function_ids
        ]


def _items(
    manifest: Mapping[str, Any],
    name: str,
    most: int,
    parse: Callable[[Any, str], T],
    stored: bool,
) -> Iterator[T]:
    raw = manifest.get(name)
    if raw is None:
        return
    try:
        _check_shape(_LISTS[name], raw, name)
        if len(raw) > most:
            raise InvalidManifest(f"{name}: at most {most} items allowed", field=name)
    except InvalidManifest as exc:
        if not stored:
            raise
        log.warning("a stored manifest's %s: %s", name, exc.detail)
        if not isinstance(raw, list):
            return
        raw = raw[:most]
    for i, item in enumerate(raw):
        parsed = _lenient(parse, item, f"{name}[{i}]", stored)
        if parsed is not None:
            yield parsed


def _lenient(parse: Callable[[Any, str], T], raw: Any, where: str, stored: bool) -> T | None:
    """``parse(raw, where)``; for a stored manifest, None (and a warning) where it fails."""
    try:
        return parse(raw, where)
    except InvalidManifest as exc:
        if not stored:
            raise
        log.warning("a stored manifest's %s is left out: %s", where, exc.detail)
        return None


def _expression(raw: Mapping[str, Any], name: str, where: str) -> Expression | None:
    text = raw.get(name)
    return None if text is None else compile_expression(text, f"{where}.{name}")


def _trigger(raw: Any, where: str) -> Trigger:
    _check_shape(_ITEMS["triggers"], raw, where)
    return Trigger(
        event=raw["event"],
        when=_expression(raw, "when", where),
        input=compile_mapping(raw.get("input"), f"{where}.input"),
    )


def _chain(raw: Any, where: str) -> Chain:
    _check_shape(_ITEMS["chains"], raw, where)
    return Chain(
        to=raw["to"],
        on=raw.get("on", "success"),
        when=_expression(raw, "when", where),
        input=compile_mapping(raw.get("input"), f"{where}.input"),
        delay_s=float(raw.get("delay_s", 0)),
    )


def _schedule(raw: Any, where: str) -> Schedule:
    _check_shape(_ITEMS["schedules"], raw, where)
    if ("cron" in raw) == ("every_s" in raw):
        raise InvalidManifest(f"{where}: give exactly one of cron and every_s", field=where)
    if "every_s" in raw:
        if "timezone" in raw:
            raise InvalidManifest(
                f"{where}.timezone: only a cron schedule has a time zone",
                field=f"{where}.timezone",
            )
        return Schedule(every_s=int(raw["every_s"]), input=raw.get("input"))
    timezone = raw.get("timezone", "UTC")
    zone = _zone(timezone, f"{where}.timezone")
    return Schedule(
        cron=_cron(raw["cron"], zone, f"{where}.cron"), timezone=timezone, input=raw.get("input")
    )


def _zone(name: str, where: str) -> ZoneInfo:
    if name not in _zones():
        raise InvalidManifest(
            f"{where}: unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin' "
            "or 'UTC')",
            field=where,
        )
    return ZoneInfo(name)


@cache
def _zones() -> frozenset[str]:
    """The IANA zones of this host (or the tzdata package), without the host's own 'localtime'."""
    return frozenset(available_timezones() - {"localtime", "posixrules"})


def _cron(text: str, zone: ZoneInfo, where: str) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise InvalidManifest(
            f"{where}: a cron expression has 5 fields (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}",
            field=where,
        )
    for value in fields:
        if not _CRON_FIELD.fullmatch(value):
            raise InvalidManifest(
                f"{where}: {value!r} is not a cron field (digits, * / , - and names; "
                "no random or hashed values)",
                field=where,
            )
    cron = " ".join(fields)
    try:
        croniter(cron, datetime.fromtimestamp(time.time(), zone)).get_next(float)
    except CroniterBadDateError:
        raise InvalidManifest(f"{where}: {cron!r} never fires", field=where) from None
    except (CroniterError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise InvalidManifest(
            f"{where}: not a valid cron expression ({exc})", field=where
        ) from None
    return cron


def _retry(raw: Any, where: str) -> RetryPolicy:
    if raw is None:
        return RetryPolicy()
    _check_shape(_RETRY, raw, where)
    backoff_ms = raw.get("backoff_ms", 1000)
    max_backoff_ms = raw.get("max_backoff_ms", max(60_000, backoff_ms))
    if max_backoff_ms < backoff_ms:
        raise InvalidManifest(
            f"{where}.max_backoff_ms: {max_backoff_ms} is less than backoff_ms ({backoff_ms})",
            field=f"{where}.max_backoff_ms",
        )
    return RetryPolicy(
        attempts=int(raw.get("attempts", 2)),
        backoff_ms=int(backoff_ms),
        max_backoff_ms=int(max_backoff_ms),
        max_age_s=int(raw.get("max_age_s", 21_600)),
    )
