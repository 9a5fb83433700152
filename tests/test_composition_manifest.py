"""The manifest's composition fields — triggers, chains, schedules, retry — at deploy (over HTTP),
and the expressions, mappings, schedules and retry policy they compile into (plain calls)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import assert_problem, deploy_wat, unique

from gateway.errors import InvalidManifest
from gateway.expressions import (
    ExpressionError,
    compile_expression,
    compile_mapping,
    truthy,
)
from gateway.functions.composition import Chain, Composition, RetryPolicy, Schedule, Trigger

EVERYTHING = {
    "triggers": [
        {"event": "order.created"},
        {
            "event": "order.updated",
            "when": "data.total > `100` && data.currency == 'EUR'",
            "input": {"order": "data.id", "priority": '`"high"`', "whole": None},
        },
    ],
    "chains": [
        {"to": "SELF", "on": "failure", "when": "error != null", "input": "input", "delay_s": 2.5},
        {"to": "SELF", "on": "always", "input": {"result": "output", "meta": {"id": "execution"}}},
    ],
    "schedules": [
        {"cron": "0 3 1 1 *", "timezone": "Europe/Berlin", "input": {"kind": "yearly"}},
        {"every_s": 86_400},
    ],
    "retry": {"attempts": 5, "backoff_ms": 200, "max_backoff_ms": 10_000, "max_age_s": 3600},
}


def _with_self(fn: str) -> dict:
    chains = [{**c, "to": fn} for c in EVERYTHING["chains"]]
    return {**EVERYTHING, "chains": chains}


def test_a_manifest_with_every_composition_field_deploys_as_given(api):
    fn = unique("composed")
    fields = _with_self(fn)
    answer = deploy_wat(api, fn, **fields)
    assert answer["version"] == 1 and "warnings" not in answer
    detail = api.get(f"/functions/{fn}").json()
    for name, value in fields.items():
        assert detail[name] == value, name
    assert api.post(f"/invoke/{fn}", json={"still": "works"}).json()["output"] == {"still": "works"}


@pytest.fixture(scope="module")
def kept(tiergate_server):
    """A function whose first version has composition fields; bad deploys must leave it alone."""
    fn = unique("kept")
    with tiergate_server.client() as api:
        deploy_wat(api, fn, **_with_self(fn))
    return fn


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"triggers": [{"event": "Order Created"}]}, "triggers[0].event"),
        ({"triggers": [{"event": "ok"}, {"event": "ok", "when": "data.["}]}, "triggers[1].when"),
        ({"triggers": [{"event": "ok", "when": "nope(data)"}]}, "triggers[0].when"),
        ({"triggers": [{"event": "ok", "input": "data.{"}]}, "triggers[0].input"),
        (
            {"triggers": [{"event": "ok", "input": {"a": "data.a", "b": {"c": "[?"}}}]},
            "triggers[0].input.b.c",
        ),
        ({"triggers": [{"event": "ok", "input": 42}]}, "triggers[0].input"),
        ({"triggers": [{"event": "ok", "when": "a" * 1025}]}, "triggers[0].when"),
        ({"schedules": [{"cron": "61 * * * *"}]}, "schedules[0].cron"),
        ({"schedules": [{"cron": "* * * *"}]}, "schedules[0].cron"),
        ({"schedules": [{"cron": "0 0 30 2 *"}]}, "schedules[0].cron"),
        ({"schedules": [{"cron": "R * * * *"}]}, "schedules[0].cron"),
        (
            {"schedules": [{"cron": "0 * * * *", "timezone": "Mars/Olympus"}]},
            "schedules[0].timezone",
        ),
        ({"schedules": [{"every_s": 0}]}, "schedules[0].every_s"),
        ({"schedules": [{"every_s": 1.5}]}, "schedules[0].every_s"),
        ({"schedules": [{"cron": "0 * * * *", "every_s": 60}]}, "schedules[0]"),
        ({"schedules": [{"input": 1}]}, "schedules[0]"),
        ({"schedules": [{"every_s": 60, "timezone": "UTC"}]}, "schedules[0].timezone"),
        ({"chains": [{"to": "x", "on": "sometimes"}]}, "chains[0].on"),
        ({"chains": [{"to": "x"}, {"to": "x", "when": "output.["}]}, "chains[1].when"),
        ({"chains": [{"to": "Not/An/Id"}]}, "chains[0].to"),
        ({"chains": [{"to": "x", "delay_s": 86_401}]}, "chains[0].delay_s"),
        ({"chains": [{"to": "x", "delay_s": -1}]}, "chains[0].delay_s"),
        ({"chains": [{"to": "x", "dealy_s": 1}]}, "chains[0]"),
        ({"chains": [{"to": "x"}] * 17}, "chains"),
        ({"retry": {"attempts": 11}}, "retry.attempts"),
        ({"retry": {"attempts": -1}}, "retry.attempts"),
        ({"retry": {"backoff_ms": 0}}, "retry.backoff_ms"),
        ({"retry": {"backoff_ms": 5000, "max_backoff_ms": 1000}}, "retry.max_backoff_ms"),
        ({"retry": {"max_age_s": 0}}, "retry.max_age_s"),
        ({"retry": {"attempts": 2, "forever": True}}, "retry"),
    ],
)
def test_bad_composition_is_refused_naming_the_field(api, kept, fields, field):
    r = api.post("/deploy", json={"id": kept, "runtime": "wasm", "code": "(module)", **fields})
    problem = assert_problem(r, 400, "invalid_manifest")
    assert problem["field"] == field, problem
    assert problem["detail"].startswith(f"{field}:"), problem
    assert len(problem["detail"]) < 400  # a short message, not the value repeated
    after = api.get(f"/functions/{kept}").json()
    assert after["latest_version"] == 1 and [v["version"] for v in after["versions"]] == [1]
    assert after["chains"] == _with_self(kept)["chains"]


def test_a_chain_to_a_function_not_there_yet_is_accepted_with_a_warning(api):
    fn, there, missing = unique("chainer"), unique("there"), unique("missing")
    deploy_wat(api, there)
    chains = [{"to": there}, {"to": missing, "on": "failure"}, {"to": fn}]
    answer = deploy_wat(api, fn, chains=chains)
    assert answer["warnings"] == [
        f"chains[1].to: no function '{missing}' in this tenant (yet); the chain starts nothing "
        "until one is deployed"
    ]
    assert api.get(f"/functions/{fn}").json()["chains"] == chains
    deploy_wat(api, missing)
    assert "warnings" not in deploy_wat(api, fn, chains=chains)


def test_the_openapi_document_describes_the_fields(api):
    doc = api.get("/openapi.json").json()
    manifest = doc["components"]["schemas"]["Manifest"]["properties"]
    assert {"triggers", "chains", "schedules", "retry"} <= set(manifest)
    assert manifest["chains"]["items"]["properties"]["on"]["enum"] == [
        "success",
        "failure",
        "always",
    ]
    deployed = doc["components"]["schemas"]["DeployResult"]["properties"]
    assert deployed["warnings"]["type"] == "array"


# Expressions and mappings, evaluated.

EVENT = {
    "type": "order.created",
    "id": "e1",
    "time": "2026-01-01T00:00:00Z",
    "data": {"id": 7, "total": 250, "tags": ["a", "b"], "customer": {"name": "Ada"}},
}


def test_a_mapping_is_the_default_an_expression_or_an_object_of_mappings():
    assert compile_mapping(None, "input").apply(EVENT, EVENT["data"]) is EVENT["data"]
    assert compile_mapping("data.customer.name", "input").apply(EVENT, None) == "Ada"
    built = compile_mapping(
        {
            "order": "data.id",
            "priority": '`"high"`',
            "limits": '`{"max": [1, 2]}`',
            "original": None,
            "who": {"name": "data.customer.name", "tags": "data.tags[0]"},
        },
        "input",
    ).apply(EVENT, "the default")
    assert built == {
        "order": 7,
        "priority": "high",
        "limits": {"max": [1, 2]},
        "original": "the default",
        "who": {"name": "Ada", "tags": "a"},
    }
    built["limits"]["max"].append(3)  # a literal in the result is a copy of its own
    again = compile_mapping({"limits": '`{"max": [1, 2]}`'}, "input").apply(EVENT, None)
    assert again == {"limits": {"max": [1, 2]}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        (True, True),
        ("x", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_when_is_true_by_jmespaths_rules(value, expected):
    assert truthy(value) is expected
    assert compile_expression("v", "when").matches({"v": value}) is expected


def test_a_when_over_an_event():
    assert compile_expression("data.total > `100`", "when").matches(EVENT)
    assert not compile_expression("data.total > `1000`", "when").matches(EVENT)
    assert not compile_expression("data.missing", "when").matches(EVENT)
    assert compile_expression("contains(data.tags, 'b')", "when").matches(EVENT)


@pytest.mark.parametrize(
    ("text", "data", "says"),
    [
        ("abs('x')", {}, "abs()"),
        ("data.customer.name < `1`", EVENT, "TypeError"),
        ("[*].[@, @]", list(range(60_000)), "steps"),
        (" | ".join(["[@, @, @, @]"] * 20), "x" * 100, "bytes"),
        ("join('', [@, @]) | " * 30 + "@", "x" * 1000, "bytes"),
        ("to_string(" + " | ".join(["[@, @]"] * 40) + ")", [1], "bytes"),
        (" | ".join(["[@, @]"] * 40) + " | [0] == [1]", [1], "bytes"),
    ],
)
def test_a_failing_or_runaway_evaluation_is_one_expression_error(text, data, says):
    expression = compile_expression(text, "when")
    with pytest.raises(ExpressionError) as failed:
        expression.search(data)
    assert says in str(failed.value) and text[:20] in str(failed.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "non-empty"),
        ("data.[", "not a valid JMESPath expression"),
        ("nope(@)", "unknown JMESPath function nope()"),
        ("abs(@, @)", "abs() takes 1 argument(s), 2 given"),
        ("x" * 1025, "at most 1024"),
        (" | ".join(["@"] * 100), "nests more than 64 levels"),
    ],
)
def test_a_bad_expression_is_refused_at_compile(text, says):
    with pytest.raises(InvalidManifest) as refused:
        compile_expression(text, "chains[3].when")
    assert refused.value.extensions["field"] == "chains[3].when"
    assert says in refused.value.detail


def test_mappings_are_bounded():
    deep: dict = {"a": "data"}
    for _ in range(8):
        deep = {"a": deep}
    with pytest.raises(InvalidManifest, match="8 objects deep"):
        compile_mapping(deep, "input")
    with pytest.raises(InvalidManifest, match="at most 64 fields"):
        compile_mapping({f"f{i}": "data" for i in range(65)}, "input")


def test_triggers_and_chains_decide_and_map():
    trigger = Trigger(event="order.created", when=compile_expression("data.total > `100`", "w"))
    assert trigger.matches(EVENT) and not trigger.matches({**EVENT, "type": "order.updated"})
    assert trigger.input_for(EVENT) == EVENT["data"]
    context = {"input": 1, "output": {"ok": True}, "error": None, "execution": {"id": "x"}}
    on_success = Chain(to="next", input=compile_mapping({"was": "output.ok"}, "i"))
    assert on_success.follows(True, context) and not on_success.follows(False, context)
    assert on_success.input_for(context) == {"was": True}
    assert Chain(to="next", on="failure").follows(False, context)
    assert Chain(to="next", on="always").follows(False, context)
    assert Chain(to="next").input_for(context) == {"ok": True}


# Retry and schedules.


def test_retry_delays_grow_and_are_capped():
    policy = RetryPolicy(attempts=10, backoff_ms=1000, max_backoff_ms=30_000)
    assert [policy.ceiling_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    rng = random.Random(7)
    for n in range(1, 11):
        delays = [policy.delay_s(n, rng) for _ in range(200)]
        assert all(policy.ceiling_s(n) / 2 <= d <= policy.ceiling_s(n) for d in delays)
        assert max(delays) > policy.ceiling_s(n) * 0.9  # the random half spreads over its range
    assert RetryPolicy(backoff_ms=1).ceiling_s(10_000) == 60  # no overflow far out
    assert RetryPolicy() == RetryPolicy(
        attempts=2, backoff_ms=1000, max_backoff_ms=60_000, max_age_s=21_600
    )
    assert RetryPolicy().allows(2, 10) and not RetryPolicy().allows(3, 10)
    assert not RetryPolicy().allows(1, 21_600)


def test_a_cron_schedule_ticks_in_its_time_zone():
    berlin = ZoneInfo("Europe/Berlin")
    schedule = Composition.parse(
        {"schedules": [{"cron": "30 9 * * mon-fri", "timezone": "Europe/Berlin"}]}
    ).schedules[0]
    friday_evening = datetime(2026, 3, 27, 18, 0, tzinfo=berlin).timestamp()
    ticks = [schedule.next_after(friday_evening)]
    ticks.append(schedule.next_after(ticks[0]))
    assert [datetime.fromtimestamp(t, berlin) for t in ticks] == [
        datetime(2026, 3, 30, 9, 30, tzinfo=berlin),  # Monday, after the switch to summer time
        datetime(2026, 3, 31, 9, 30, tzinfo=berlin),
    ]
    assert datetime.fromtimestamp(ticks[0], UTC).hour == 7
    assert schedule.last_at_or_before(ticks[1]) == ticks[1]
    assert schedule.last_at_or_before(ticks[1] - 1) == ticks[0]


def test_an_every_s_schedule_ticks_on_multiples_since_the_epoch():
    schedule = Schedule(every_s=60)
    assert schedule.next_after(120.0) == 180.0
    assert schedule.next_after(119.5) == 120.0
    assert schedule.last_at_or_before(120.0) == schedule.last_at_or_before(179.9) == 120.0
    assert Schedule(every_s=3600).next_after(1_700_000_000.0) % 3600 == 0


def test_composition_parse_is_empty_by_default_and_lenient_when_stored():
    assert Composition.parse({}).empty and Composition.parse({}) == Composition()
    stored = {
        "triggers": [{"event": "ok", "when": "a.["}, {"event": "ok"}],
        "chains": "not a list",
        "schedules": [{"cron": "0 * * * *", "timezone": "Gone/Zone"}, {"every_s": 5}],
        "retry": {"attempts": 99},
    }
    composition = Composition.parse(stored, stored=True)
    assert [t.event for t in composition.triggers] == ["ok"]
    assert composition.chains == () and [s.every_s for s in composition.schedules] == [5]
    assert composition.retry == RetryPolicy()
    with pytest.raises(InvalidManifest):
        Composition.parse(stored)
