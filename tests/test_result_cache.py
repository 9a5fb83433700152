"""The result cache (manifest ``cache: {"ttl_s"}``): an identical call of a version answers from
an earlier call's output without running any tier, over HTTP against a real server; and the
bounds that keep a tenant from filling the KV with it (plain calls on a real SQLite KV)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from conftest import assert_problem, deploy_wat, eventually, metric, run, unique

from gateway.invoke import result_cache
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.result_cache import ResultCache
from tiers.function import ResultCachePolicy

# Shows whether it ran: each run answers a new stamp (its time and a random nonce).
STAMP = """
import time
import uuid


def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("asked to fail")
    pad = event.get("pad", 0) if isinstance(event, dict) else 0
    return {"at": time.time(), "run": uuid.uuid4().hex, "pad": "x" * pad}
"""


def deploy_stamp(api, fn=None, ttl_s=60, **manifest):
    fn = fn or unique("cached")
    body = {"id": fn, "runtime": "python", "code": STAMP, "cache": {"ttl_s": ttl_s}, **manifest}
    answer = api.post("/deploy", json=body)
    assert answer.status_code == 201, answer.text
    return fn


def call(api, fn, data=None, *, content=None, params=None, status=200):
    answer = api.post(f"/invoke/{fn}", json=data, content=content, params=params)
    assert answer.status_code == status, answer.text
    return answer.json()


def ran(body):
    """The call ran the code: its own attempt, and no answer from the cache."""
    assert body["metrics"]["cache_hit_result"] is False, body
    assert [a["tier"] for a in body["attempts"]] == ["code"], body
    return body


def hit(body, first):
    """The call answered from ``first``'s result and ran nothing."""
    assert body["status"] == "completed" and body["tier"] == "code", body
    assert body["metrics"]["cache_hit_result"] is True, body
    assert body["output"] == first["output"]
    assert body["attempts"] == [] and body["logs"] == []
    assert body["execution_id"] != first["execution_id"]
    assert body["details"]["result_cache"]["execution_id"] == first["execution_id"]
    return body


def test_an_identical_call_answers_from_the_cache(api):
    fn = deploy_stamp(api)
    first = ran(call(api, fn, {"a": 1, "b": [1, 2]}))
    second = hit(call(api, fn, {"a": 1, "b": [1, 2]}), first)
    # The execution document says so too, and the hit counts as a completion.
    shown = eventually(lambda: api.get(f"/executions/{second['execution_id']}").json())
    assert shown["metrics"]["cache_hit_result"] is True and shown["output"] == first["output"]
    counted = metric(api.get("/metrics").text, "tiergate_invocations_total", function=fn,
                     status="completed", tier="code")
    assert counted == 2
    # Key order does not matter; any other input is another entry.
    hit(call(api, fn, content=b'{"b": [1, 2], "a": 1}'), first)
    other = ran(call(api, fn, {"a": 2, "b": [1, 2]}))
    assert other["output"] != first["output"]
    assert call(api, fn, content=b'{"b": [2, 1], "a": 1}')["metrics"]["cache_hit_result"] is False


def test_a_hit_is_followed_like_any_ending(api):
    target = unique("after")
    deploy_wat(api, target)
    fn = deploy_stamp(api, chains=[{"to": target}])
    first = ran(call(api, fn, {"c": 1}))
    second = hit(call(api, fn, {"c": 1}), first)
    [child] = eventually(
        lambda: api.get(f"/executions/{second['execution_id']}").json()["children"]
    )

    def completed():
        body = api.get(f"/executions/{child}").json()
        return body if body["status"] == "completed" else None

    assert eventually(completed)["output"] == first["output"]


def test_functions_without_cache_say_nothing_of_it(api):
    fn = unique("plain")
    deploy_wat(api, fn)
    body = call(api, fn, {"x": 1})
    assert "cache_hit_result" not in body["metrics"]
    assert "cache_hit_result" not in api.get(f"/executions/{body['execution_id']}").json()[
        "metrics"]


def test_a_new_version_misses_and_the_old_one_still_hits(api):
    fn = deploy_stamp(api)
    first = ran(call(api, fn, {"n": 1}))
    deploy_stamp(api, fn)
    second = ran(call(api, fn, {"n": 1}))
    assert second["version"] == 2 and second["output"] != first["output"]
    hit(call(api, f"{fn}@1", {"n": 1}), first)
    hit(call(api, fn, {"n": 1}), second)


def test_a_function_deleted_and_deployed_again_misses(api):
    fn = deploy_stamp(api)
    first = ran(call(api, fn, {"n": 1}))
    assert api.delete(f"/functions/{fn}").status_code == 204
    deploy_stamp(api, fn)
    again = ran(call(api, fn, {"n": 1}))
    assert again["version"] == first["version"] == 1 and again["output"] != first["output"]


def test_entries_expire_after_ttl_s(api):
    fn = deploy_stamp(api, ttl_s=1)
    first = ran(call(api, fn, "same"))
    hit(call(api, fn, "same"), first)
    time.sleep(1.5)  # the entry's time to live: nothing to await
    assert ran(call(api, fn, "same"))["output"] != first["output"]


def test_failures_and_large_outputs_are_not_kept(api):
    fn = deploy_stamp(api)
    for _ in range(2):
        failed = assert_problem(
            api.post(f"/invoke/{fn}", json={"fail": True}), 500, "cascade_exhausted"
        )
        shown = eventually(lambda e=failed["execution_id"]: api.get(f"/executions/{e}").json())
        assert shown["status"] == "failed" and shown["metrics"]["cache_hit_result"] is False
        assert [a["status"] for a in shown["attempts"]] == ["failed"]
    big = ran(call(api, fn, {"pad": 300_000}))
    assert ran(call(api, fn, {"pad": 300_000}))["output"] != big["output"]


def test_query_overrides_bypass_the_cache(api):
    fn = deploy_stamp(api)
    first = ran(call(api, fn, {"q": 1}))
    for params in ({"skip_tiers": "generative"}, {"start_tier": "code"}):
        bypassed = ran(call(api, fn, {"q": 1}, params=params))
        assert bypassed["output"] != first["output"]
    hit(call(api, fn, {"q": 1}), first)  # what ran bypassing the cache was not kept either


def test_asynchronous_calls_use_the_cache(api):
    fn = deploy_stamp(api)
    async_ = {"Prefer": "respond-async"}

    def finished(execution_id):
        body = api.get(f"/executions/{execution_id}").json()
        return body if body["status"] == "completed" else None

    first = ran(call(api, fn, {"a": 1}))
    accepted = api.post(f"/invoke/{fn}", json={"a": 1}, headers=async_)
    assert accepted.status_code == 202, accepted.text
    hit(eventually(lambda: finished(accepted.json()["execution_id"])), first)
    # A queued call that misses keeps its result for the calls after it.
    accepted = api.post(f"/invoke/{fn}", json={"a": 2}, headers=async_)
    queued = ran(eventually(lambda: finished(accepted.json()["execution_id"])))
    hit(call(api, fn, {"a": 2}), queued)


def test_another_tenant_never_sees_this_tenants_entries(api):
    fn = deploy_stamp(api)
    mine = ran(call(api, fn, {"t": 1}))
    created = api.post(
        "/admin/keys", json={"tenant": unique("other"), "roles": ["deploy", "invoke"]}
    )
    assert created.status_code == 201, created.text
    with httpx_client(api, created.json()["key"]) as other:
        deploy_stamp(other, fn)  # the same id, version and input: a key only the tenant differs in
        theirs = ran(call(other, fn, {"t": 1}))
        assert theirs["version"] == mine["version"] and theirs["output"] != mine["output"]
        hit(call(other, fn, {"t": 1}), theirs)
    hit(call(api, fn, {"t": 1}), mine)


def httpx_client(api, key):
    import httpx

    return httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {key}"},
                        timeout=60)


@pytest.mark.parametrize(
    ("cache", "field"),
    [
        ({"ttl_s": 0}, "cache.ttl_s"),
        ({"ttl_s": 90_000}, "cache.ttl_s"),
        ({"ttl_s": 1.5}, "cache.ttl_s"),
        ({"ttl_s": "60"}, "cache.ttl_s"),
        ({"ttl_s": True}, "cache.ttl_s"),
        ({}, "cache.ttl_s"),
        ({"ttl": 5}, "cache.ttl"),
        ({"ttl_s": 5, "size": 10}, "cache.size"),
        (5, "cache"),
        (None, "cache"),
    ],
)
def test_invalid_cache_fields_are_refused_naming_the_field(api, cache, field):
    body = {"id": unique("badcache"), "runtime": "python", "code": STAMP, "cache": cache}
    problem = assert_problem(api.post("/deploy", json=body), 400, "invalid_manifest")
    assert problem["field"] == field and field in problem["detail"], problem


def test_the_cache_field_is_in_the_manifest_schema(api):
    fn = deploy_stamp(api, ttl_s=86_400)
    assert api.get(f"/functions/{fn}").json()["cache"] == {"ttl_s": 86_400}
    manifest = api.get("/openapi.json").json()["components"]["schemas"]["Manifest"]
    cache = manifest["properties"]["cache"]
    assert cache["properties"]["ttl_s"]["maximum"] == 86_400
    assert cache["additionalProperties"] is False and cache["required"] == ["ttl_s"]


# The bounds, on a real KV with a clock of our own.


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(result_cache, "time", SimpleNamespace(time=lambda: now[0]))
    return now


def _record(n):
    return ExecutionRecord(
        execution_id=f"e{n}", tenant="t", function_id="f", version=1, trace_id="x",
        started_at=0.0, status="completed", tier="code", output={"n": n},
    )


def _key(n, version=1):
    return f"rcache/t/f/{version}/{n:064x}"


def test_a_version_keeps_a_bounded_number_of_entries(sqlite_kv, clock):
    policy = ResultCachePolicy(ttl_s=10, generation=1.0)

    async def scenario():
        kv = sqlite_kv()
        cache = ResultCache(kv, max_entries=3)
        try:
            assert [await cache.put(_key(n), policy, _record(n)) for n in range(4)] == [
                True, True, True, False]
            assert await cache.put(_key(0, version=2), policy, _record(0))  # per version
            assert (await cache.get(_key(2), policy)).output == {"n": 2}
            assert await cache.get(_key(3), policy) is None
            assert await cache.get(_key(2), ResultCachePolicy(10, generation=2.0)) is None
            clock[0] += 5
            assert not await cache.put(_key(4), policy, _record(4))  # still full
            clock[0] += 60  # the entries expired, and a minute passed since they were counted
            assert await cache.get(_key(2), policy) is None
            assert await cache.put(_key(5), policy, _record(5))
            assert len([k async for k, _ in kv.scan("rcache/t/f/1/")]) == 1  # expired ones went
        finally:
            await kv.close()

    run(scenario())


def test_purge_drops_expired_entries_and_their_counts(sqlite_kv, clock):
    async def scenario():
        kv = sqlite_kv()
        cache = ResultCache(kv, max_entries=3, max_entry_bytes=1024)
        try:
            assert not await cache.put(_key(9), ResultCachePolicy(1, 1.0), _large_record())
            for n, ttl in ((0, 1), (1, 1), (2, 100)):
                assert await cache.put(_key(n), ResultCachePolicy(ttl, 1.0), _record(n))
            assert await cache.put(_key(0, version=2), ResultCachePolicy(1, 1.0), _record(0))
            clock[0] += 2
            await cache.purge()
            assert [k async for k, _ in kv.scan("rcache/")] == [_key(2)]
            counts = {k: v async for k, v in kv.scan("rcount/")}
            assert list(counts) == ["rcount/t/f/1"] and b'"entries":1' in counts["rcount/t/f/1"]
        finally:
            await kv.close()

    run(scenario())


def _large_record():
    record = _record(0)
    record.output = {"pad": "x" * 2048}
    return record
