"""OpenAPI paths and schemas of the live streams (Server-Sent Events).

OpenAPI has no vocabulary for the events of a ``text/event-stream``; each stream's 200 says, in
``x-events``, which events it sends and the JSON schema of each event's ``data``.
"""

from __future__ import annotations

from typing import Any

from gateway.http.apidoc.helpers import EXEC, op, ref

SSE = "text/event-stream"
STREAM_ERRORS = (404, 429)

_ID = {"execution_id": {"type": "string"}}
_SLOW_READER = {
    "type": "object",
    "description": "The last event of a stream whose reader fell TIERGATE_STREAM_QUEUE_EVENTS "
    "events behind; the connection closes after it",
    "properties": {"code": {"const": "slow_reader"}, "detail": {"type": "string"}},
}


def stream_schemas() -> dict[str, Any]:
    return {
        "StreamStatus": {
            "type": "object",
            "properties": {**_ID, "status": {"type": "string"}},
        },
        "StreamLog": {
            "type": "object",
            "description": "One log entry, as GET /executions/{id} shows it, with its execution",
            "properties": {
                **_ID,
                "ts": {"type": "string"},
                "stream": {"enum": ["stdout", "stderr", "log"]},
                "message": {"type": "string"},
                "level": {"type": "string"},
            },
        },
        "StreamAttempt": {
            "type": "object",
            "description": "An attempt as it ended (an item of the execution's attempts)",
            "properties": {
                **_ID,
                "tier": {"type": "string"},
                "attempt": {"type": "integer"},
                "status": {"enum": ["succeeded", "failed", "timeout", "skipped", "cancelled"]},
                "error": {"type": ["string", "null"]},
                "code": {"type": "string"},
                "duration_ms": {"type": "number"},
            },
        },
        "StreamToken": {
            "type": "object",
            "description": "Text a model tier's model produced, as it arrived",
            "properties": {**_ID, "tier": {"type": "string"}, "text": {"type": "string"}},
        },
    }


def _stream(description: str, events: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "X-Tiergate-Process": {
                "description": "An opaque tag of the gateway process serving the stream (two "
                "streams with the same tag are served by one process)",
                "schema": {"type": "string"},
            }
        },
        "content": event_stream_content(events),
    }


def event_stream_content(events: dict[str, Any]) -> dict[str, Any]:
    """A 200's ``text/event-stream`` content (``GET /functions/{id}/logs?follow=true`` has it
    beside the JSON page)."""
    return {SSE: {"schema": {"type": "string"}, "x-events": events}}


FOLLOW_EVENTS = {
    "log": ref("StreamLog"),
    "execution": {
        "type": "object",
        "description": "An execution of the function ended: an item of GET "
        "/functions/{id}/logs (execution_id, version, status, tier, times, error) without its "
        "logs, which came as log events",
    },
    "error": _SLOW_READER,
}


def stream_paths() -> dict[str, Any]:
    events = {
        "status": ref("StreamStatus"),
        "log": ref("StreamLog"),
        "attempt": ref("StreamAttempt"),
        "token": ref("StreamToken"),
        "end": {"description": "The last event: GET /executions/{id}'s body", **ref("Execution")},
        "error": _SLOW_READER,
    }
    return {
        "/executions/{execution_id}/events": {
            "get": op(
                "Follow an execution live (Server-Sent Events): its status changes, log "
                "entries as they are written, attempts as they end, a model tier's tokens as "
                "they arrive, and a last end event with the execution; an execution that has "
                "ended answers its end at once. A comment line every TIERGATE_STREAM_HEARTBEAT_S "
                "seconds keeps a quiet stream open; 429 too_many_streams past "
                "TIERGATE_MAX_STREAMS_PER_TENANT",
                "invoke",
                _stream("The event stream, closed after end", events),
                STREAM_ERRORS,
                params=[EXEC],
            )
        }
    }
