"""The OpenAPI 3.1 document of the API. Written out (not derived from the routes) so that a test
can hold the two against each other: every route is documented and every documented path exists."""

from __future__ import annotations

import functools
from typing import Any

from gateway.http.apidoc.admin_paths import admin_paths
from gateway.http.apidoc.compose_paths import compose_paths
from gateway.http.apidoc.core_paths import core_paths
from gateway.http.apidoc.graph_paths import graph_paths, graph_schemas
from gateway.http.apidoc.helpers import ERROR_CODES
from gateway.http.apidoc.review_paths import review_paths
from gateway.http.apidoc.schemas import schemas
from gateway.http.apidoc.stream_paths import stream_paths, stream_schemas

__all__ = ["ERROR_CODES", "openapi_document"]


@functools.cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tiergate",
            "version": "0.1.0",
            "description": "Serverless function gateway with a 4-tier cascade.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            **core_paths(),
            **stream_paths(),
            **compose_paths(),
            **graph_paths(),
            **admin_paths(),
            **review_paths(),
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {**schemas(), **graph_schemas(), **stream_schemas()},
        },
    }
