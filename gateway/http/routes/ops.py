"""Operations: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.http.apidoc import openapi_document
from gateway.http.health import runtime_checks, store_checks
from gateway.http.routes.common import caller, json_response, services
from storage.errors import StorageUnavailable

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    svc = services(request)
    checks = await store_checks(svc)
    runtimes = runtime_checks(svc)
    if all(v == "ok" for v in checks.values()):
        return json_response({"status": "ready", "checks": checks, "runtimes": runtimes})
    raise StorageUnavailable(
        "a store does not answer", checks=checks, runtimes=runtimes, retry_after=5
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    caller(request, "admin")
    svc = services(request)
    body = await svc.worker_metrics.render() if svc.worker_metrics else svc.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())
