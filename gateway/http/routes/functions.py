"""Functions: deploy, list, describe, versions, rollback, delete, logs."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from gateway.errors import BadRequest, InvalidManifest
from gateway.functions.deploy import Deployment
from gateway.functions.manifest import check_function_id
from gateway.functions.records import FunctionRecord, VersionRecord
from gateway.http.routes.common import (
    caller,
    json_response,
    read_json,
    services,
    tenant_of,
    whole_number,
)
from gateway.http.routes.streams import follow_function_logs
from gateway.http.views import iso, log_entry_body
from plugins.errors import PayloadTooLarge

routes = web.RouteTableDef()


@routes.post("/deploy")
async def deploy(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    svc = services(request)
    if request.content_type == "multipart/form-data":
        manifest, code = await _read_multipart(
            request, svc.settings.max_body_bytes, svc.settings.max_code_bytes
        )
    elif request.content_type in ("application/json", "application/octet-stream", ""):
        manifest, code = await read_json(request, "manifest"), None
    else:
        raise BadRequest(
            f"unsupported content type {request.content_type!r}: send the manifest as "
            "application/json, or multipart/form-data with parts 'manifest' and 'code'"
        )
    deployment = await svc.functions.deploy(principal, tenant, manifest, code)
    return json_response(
        _deployed(deployment), status=201, headers={"Location": f"/functions/{deployment.id}"}
    )


def _deployed(deployment: Deployment) -> dict[str, Any]:
    record = deployment.record
    answer = {
        "id": record.id,
        "version": record.version,
        "runtime": record.runtime,
        "code_sha256": record.code_sha256,
        "code_size": record.code_size,
        "deployed_at": iso(record.deployed_at),
        "precompiled": record.precompiled,
    }
    if deployment.warnings:
        answer["warnings"] = list(deployment.warnings)
    return answer


async def _read_multipart(
    request: web.Request, max_manifest: int, max_code: int
) -> tuple[Any, bytes | None]:
    manifest: Any = None
    code: bytes | None = None
    filename = None
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "manifest":
            raw = await _read_part(part, max_manifest, "manifest")
            try:
                manifest = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidManifest(f"the manifest part is not valid JSON: {exc}") from None
        elif part.name == "code":
            code = await _read_part(part, max_code, "code")
            filename = part.filename
        else:
            raise BadRequest(f"unexpected multipart part {part.name!r}: use 'manifest' and 'code'")
    if manifest is None:
        raise InvalidManifest("the multipart body has no 'manifest' part", field="(manifest)")
    if filename and isinstance(manifest, dict):
        manifest.setdefault("filename", filename)
    return manifest, code


async def _read_part(part: BodyPartReader, limit: int, name: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(65536):
        data.extend(chunk)
        if len(data) > limit:
            raise PayloadTooLarge(f"the {name} part is larger than {limit} bytes", limit=limit)
    return bytes(data)


@routes.get("/functions")
async def list_functions(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    everyone = principal.is_admin and "tenant" not in request.query
    tenant = None if everyone else tenant_of(request, principal)
    records = await services(request).registry.list_functions(tenant)
    return json_response({"functions": [_summary(r, everyone) for r in records]})


def _summary(record: FunctionRecord, with_tenant: bool) -> dict[str, Any]:
    summary = {
        "id": record.id,
        "latest_version": record.latest_version,
        "runtime": record.runtime,
        "description": record.description,
        "updated_at": iso(record.updated_at),
    }
    if with_tenant:
        summary["tenant"] = record.tenant
    return summary


@routes.get("/functions/{id}")
async def get_function(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    registry = services(request).registry
    record = await registry.get_function(tenant, function_id)
    latest = await registry.get_version(tenant, function_id, record.latest)
    versions = await registry.list_versions(tenant, function_id)
    return json_response(
        {
            **latest.manifest,
            "tenant": tenant,
            "latest_version": record.latest_version,
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
            "code_sha256": latest.code_sha256,
            "code_size": latest.code_size,
            "versions": [_version(v) for v in versions],
        }
    )


def _version(record: VersionRecord) -> dict[str, Any]:
    view = {
        "version": record.version,
        "runtime": record.runtime,
        "code_sha256": record.code_sha256,
        "code_size": record.code_size,
        "deployed_at": iso(record.deployed_at),
        "precompiled": record.precompiled,
        "description": record.description,
    }
    environment = _environment(record)
    if environment is not None:
        view["environment"] = environment
    return view


def _environment(record: VersionRecord) -> Any:
    """What the version's code was resolved against, as its runtime recorded it on an
    artifact (the python runtime: ``{"sha256", "lock"}`` of a package's requirements)."""
    for metadata in record.artifacts.values():
        if isinstance(metadata, dict) and isinstance(metadata.get("environment"), dict):
            return metadata["environment"]
    return None


@routes.get("/functions/{id}/versions")
async def list_versions(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    registry = services(request).registry
    record = await registry.get_function(tenant, function_id)
    versions = await registry.list_versions(tenant, function_id)
    return json_response(
        {
            "id": function_id,
            "latest_version": record.latest_version,
            "versions": [_version(v) for v in versions],
        }
    )


@routes.post("/functions/{id}/rollback")
async def rollback(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    body = await read_json(request)
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadRequest('send {"version": N} with N a version number from 1')
    record = await services(request).functions.rollback(principal, tenant, function_id, version)
    return json_response({"id": function_id, "latest_version": record.latest_version})


@routes.delete("/functions/{id}")
async def delete_function(request: web.Request) -> web.Response:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    await services(request).functions.delete(principal, tenant, function_id)
    return web.Response(status=204)


@routes.get("/functions/{id}/logs")
async def function_logs(request: web.Request) -> web.StreamResponse:
    principal = caller(request, "deploy")
    tenant = tenant_of(request, principal)
    function_id = check_function_id(request.match_info["id"])
    follow = request.query.get("follow", "false")
    if follow not in ("true", "false"):
        raise BadRequest(f"follow must be true or false, got {follow[:20]!r}")
    limit = whole_number(request.query.get("limit", "50"), "limit", 1, 1000)
    svc = services(request)
    await svc.registry.get_function(tenant, function_id)
    if follow == "true":
        return await follow_function_logs(request, principal, tenant, function_id)
    records = await svc.records.log_page(
        tenant, function_id, limit=limit, before=request.query.get("before")
    )
    return json_response({"executions": [log_entry_body(r) for r in records]})
