"""Dependency graphs: deploy, read and delete graphs; start, read and cancel their runs."""

from __future__ import annotations

from aiohttp import web

from gateway.compose.graphs import Graph
from gateway.compose.runs import GraphRun
from gateway.errors import RunNotFound
from gateway.http.routes.common import (
    caller,
    json_response,
    read_json,
    services,
    tenant_of,
    whole_number,
)
from gateway.http.routes.invoke import wants_async
from gateway.http.views import graph_body, graph_summary, run_body
from gateway.services import Services

routes = web.RouteTableDef()

DEFAULT_WAIT_MS = 30_000


@routes.post("/graphs")
async def deploy_graph(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    document = await read_json(request, "graph")
    svc = services(request)
    graph: Graph = await svc.graphs.deploy(tenant, document, principal.key_id)
    await svc.audit.record(principal, "graph.deploy", f"{tenant}/{graph.id}", version=graph.version)
    body = {"id": graph.id, "version": graph.version, "nodes": list(graph.nodes)}
    return json_response(body, status=201, headers={"Location": f"/graphs/{graph.id}"})


@routes.get("/graphs")
async def list_graphs(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    heads = await services(request).graphs.list(tenant)
    return json_response({"graphs": [graph_summary(head) for head in heads]})


@routes.get("/graphs/{id}")
async def get_graph(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    svc = services(request)
    graph_id = request.match_info["id"]
    version = None
    if "version" in request.query:
        version = whole_number(request.query["version"], "version", 1, 9_999_999_999)
    head = await svc.graphs.head(tenant, graph_id)
    graph = await svc.graphs.latest(tenant, graph_id, version)
    return json_response(graph_body(graph, head))


@routes.delete("/graphs/{id}")
async def delete_graph(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    svc = services(request)
    graph_id = request.match_info["id"]
    await svc.graphs.delete(tenant, graph_id)
    await svc.audit.record(principal, "graph.delete", f"{tenant}/{graph_id}")
    return web.Response(status=204)


@routes.post("/graphs/{id}/runs")
async def start_run(request: web.Request) -> web.Response:
    principal = caller(request, "invoke")
    tenant = tenant_of(request, principal)
    svc = services(request)
    query = request.query
    wait_ms = DEFAULT_WAIT_MS
    if "timeout_ms" in query:
        wait_ms = whole_number(
            query["timeout_ms"],
            "timeout_ms",
            0,
            svc.settings.max_timeout_ms,
            "TIERGATE_MAX_TIMEOUT_MS",
        )
    prefer = request.headers.get("Prefer")
    body = await request.read()
    run = await svc.runs.start(
        tenant,
        request.match_info["id"],
        body,
        base_run=query.get("base_run") or None,
        principal=principal.key_id,
    )
    if not (prefer and wants_async(prefer)) and run.status == "running":
        run = await svc.runs.wait(tenant, run.run_id, wait_ms / 1000)
    return await _answer(svc, run, started=True)


@routes.get("/graphs/{id}/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    principal = caller(request, "invoke")
    svc = services(request)
    run = await _run(svc, tenant_of(request, principal), request)
    return await _answer(svc, run)


@routes.delete("/graphs/{id}/runs/{run_id}")
async def cancel_run(request: web.Request) -> web.Response:
    principal = caller(request, "invoke")
    svc = services(request)
    run = await _run(svc, tenant_of(request, principal), request)
    run = await svc.runs.cancel(run.tenant, run.run_id, principal)
    return await _answer(svc, run)


async def _run(svc: Services, tenant: str, request: web.Request) -> GraphRun:
    graph_id, run_id = request.match_info["id"], request.match_info["run_id"]
    try:
        run = await svc.runs.get(tenant, run_id)
    except RunNotFound:
        raise RunNotFound(f"graph run {run_id!r} not found", run_id=run_id) from None
    if run.graph_id != graph_id:
        raise RunNotFound(
            f"graph {graph_id!r} has no run {run_id!r}", run_id=run_id, graph_id=graph_id
        )
    return run


async def _answer(svc: Services, run: GraphRun, *, started: bool = False) -> web.Response:
    """200 with the run; a run just started that has not ended answers 202 with where to look."""
    body = run_body(run, await svc.runs.outputs(run))
    if started and run.status not in ("completed", "failed", "cancelled"):
        location = f"/graphs/{run.graph_id}/runs/{run.run_id}"
        return json_response(body, status=202, headers={"Location": location})
    return json_response(body)
