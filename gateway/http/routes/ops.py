"""Operations: liveness, readiness, the runtimes, metrics, the OpenAPI document and who a key
is."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.http.apidoc import openapi_document
from gateway.http.health import runtime_checks, runtime_document, store_checks
from gateway.http.keys import PRINCIPAL
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


@routes.get("/runtimes")
async def runtimes(request: web.Request) -> web.Response:
    """The installed runtimes (any role): the suffixes each takes, so clients can tell a file's
    runtime as the gateway would, and whether each can run code here, as ``/readyz`` says."""
    states = services(request).runtimes.states()
    return json_response({"runtimes": [runtime_document(state) for state in states]})


@routes.get("/whoami")
async def whoami(request: web.Request) -> web.Response:
    """The calling key as the pages show it (any role): never the token."""
    principal = request[PRINCIPAL]
    return json_response(
        {
            "key_id": principal.key_id,
            "name": principal.name,
            "tenant": principal.tenant,
            "roles": sorted(principal.roles),
        }
    )
