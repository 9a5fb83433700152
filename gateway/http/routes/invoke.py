"""Invocation: ``POST /invoke/{id}`` and ``POST /invoke/{id}@{version}``, sync or async."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.errors import BadRequest
from gateway.functions.registry import FunctionRef
from gateway.http.routes.common import caller, json_response, services, tenant_of, whole_number
from gateway.http.views import accepted_body, execution_body
from gateway.ids import new_span_id
from gateway.invoke.execution import ExecutionRecord
from gateway.invoke.invoker import InvokeOptions
from gateway.services import Services

if TYPE_CHECKING:
    from gateway.tracing.otel import Tracing

routes = web.RouteTableDef()

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")
TIERS = ("code", "generative", "agentic", "human")
MAX_CUSTOM_BYTES = 4096


@routes.post("/invoke/{ref}")
async def invoke(request: web.Request) -> web.Response:
    principal = caller(request, "invoke")
    tenant = tenant_of(request, principal)
    ref = FunctionRef.parse(request.match_info["ref"])
    trace_id, flags = _trace(request.headers.get("traceparent"))
    prefer = request.headers.get("Prefer")
    callback = request.headers.get("X-Callback-Url")
    custom = request.headers.get("X-Tiergate-Context")
    svc = services(request)
    max_timeout_ms = svc.settings.max_timeout_ms
    options = InvokeOptions(
        overrides=_overrides(request.query, max_timeout_ms) if request.query_string else {},
        respond_async=prefer is not None and wants_async(prefer),
        trace_id=trace_id,
        callback_url=await svc.callbacks.check(callback) if callback else None,
        caller={
            "key_id": principal.key_id,
            "tenant": principal.tenant,
            "roles": sorted(principal.roles),
        },
        custom=None if custom is None else _custom(custom),
    )
    body = await request.read()
    key = request.headers.get("Idempotency-Key")
    if svc.tracing is not None:
        parent = request.headers.get("traceparent") if trace_id else None
        record = await _traced(svc.tracing, svc, tenant, ref, body, options, key, parent)
    elif key is None and not options.respond_async:  # as ``_call``; inline: no hop added
        record = await svc.invoker.invoke(tenant, ref, body, options)
    else:
        record = await _accept(svc, tenant, ref, body, options, key)
    own = record.traceparent or f"00-{record.trace_id}-{new_span_id()}-{flags}"
    headers = {"traceparent": own}
    if record.status in ("pending", "running", "awaiting_human"):
        headers["Location"] = f"/executions/{record.execution_id}"
        return json_response(accepted_body(record), status=202, headers=headers)
    return json_response(execution_body(record, full=False), headers=headers)


async def _call(
    svc: Services,
    tenant: str,
    ref: FunctionRef,
    body: bytes,
    options: InvokeOptions,
    key: str | None,
) -> ExecutionRecord:
    if key is None and not options.respond_async:
        return await svc.invoker.invoke(tenant, ref, body, options)
    return await _accept(svc, tenant, ref, body, options, key)


async def _traced(
    tracing: Tracing,
    svc: Services,
    tenant: str,
    ref: FunctionRef,
    body: bytes,
    options: InvokeOptions,
    key: str | None,
    parent: str | None,
) -> ExecutionRecord:
    """``_call`` in the execution's ``invoke`` span, in the caller's trace when it sent a valid
    ``traceparent``; an async call's span ends once it is queued (its run joins it later)."""
    function_id = ref.function_id
    with tracing.execution(
        "invoke", tenant=tenant, function_id=function_id, parent=parent, server=True
    ) as span:
        record = await _call(svc, tenant, ref, body, options.within(span), key)
        span.ended(record)
        return record


async def _accept(
    svc: Services,
    tenant: str,
    ref: FunctionRef,
    body: bytes,
    options: InvokeOptions,
    key: str | None,
) -> ExecutionRecord:
    """An async call (into the work queue), or a call with an ``Idempotency-Key``: a key used
    before answers with that first call's execution, as it is now."""
    prepared = await svc.invoker.prepare(tenant, ref, body, options)
    if key is not None:
        mine = {"execution_id": prepared.record.execution_id}
        first = await svc.idempotency.claim(tenant, "invoke", key, mine)
        earlier = await svc.records.get(first["execution_id"]) if first is not None else None
        if earlier is not None:
            return earlier
    if options.respond_async:
        return await svc.durable.enqueue(prepared, options.overrides)
    return await svc.invoker.execute(prepared)


def _custom(header: str) -> Any:
    """``X-Tiergate-Context``: JSON the caller passes through to the code (``context.custom``),
    kept on the record with the execution, so bounded."""
    if len(header) > MAX_CUSTOM_BYTES:
        raise BadRequest(
            f"X-Tiergate-Context is {len(header)} bytes; at most {MAX_CUSTOM_BYTES} are allowed"
        )
    try:
        return orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"X-Tiergate-Context is not valid JSON: {exc}") from None


def wants_async(prefer: str) -> bool:
    return any(token.strip().lower() == "respond-async" for token in prefer.split(","))


def _trace(header: str | None) -> tuple[str | None, str]:
    if header:
        match = TRACEPARENT.match(header.strip().lower())
        if match and match.group(1) != "0" * 32:
            return match.group(1), match.group(2)
    return None, "01"


def _overrides(query: Any, max_timeout_ms: int) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if "start_tier" in query:
        overrides["start_tier"] = _tier(query["start_tier"], "start_tier")
    if "skip_tiers" in query:
        names = [t.strip() for t in query["skip_tiers"].split(",") if t.strip()]
        overrides["skip_tiers"] = [_tier(t, "skip_tiers") for t in names]
    for name in ("parallel", "fallback"):
        if name in query:
            overrides[name] = _flag(query[name], name)
    if "timeout_ms" in query:
        overrides["timeout_ms"] = whole_number(
            query["timeout_ms"], "timeout_ms", 1, max_timeout_ms, "TIERGATE_MAX_TIMEOUT_MS"
        )
    return overrides


def _tier(name: str, param: str) -> str:
    if name not in TIERS:
        raise BadRequest(f"{param}: unknown tier {name!r} (use {', '.join(TIERS)})")
    return name


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")
