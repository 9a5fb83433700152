"""Frames: ``length(u32) | id(u32) | meta_length(u32) | meta (JSON) | data (raw bytes)``.

``meta`` carries small structured facts (operation, limits, logs, errors); ``data`` carries the
input or output JSON untouched, so it is never decoded and re-encoded on the way through.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

HEADER = struct.Struct("!III")
READY_ID = 0  # the frame a child sends once it is ready; request ids start at 1
ASK_ID = 0xFFFFFFFF
"""A child's question to its parent while it answers a call (``child.ask``), and the parent's
answer to it: one at a time; the parent's own request ids never reach it."""
LOG_ID = 0xFFFFFFFE
"""Log entries a child sends while it answers a call (``child.log``), before its answer: meta is
``[request id, [entry, …]]``. They cross as they are written, so a call whose worker is killed
(timeout, cancel) still leaves what it wrote with the parent."""
MAX_FRAME = 256 * 1024 * 1024
"""The default bound on one frame; a runtime whose answers are bounded by construction passes a
tighter ``max_frame`` derived from its caps."""


class Frame(NamedTuple):
    id: int
    meta: Any
    data: bytes


def encode(frame_id: int, meta: Any, data: bytes | bytearray = b"") -> bytes:
    raw = orjson.dumps(meta)
    return HEADER.pack(8 + len(raw) + len(data), frame_id, len(raw)) + raw + data


class FrameReader:
    """Accumulates bytes from a pipe and yields whole frames; a frame announced as longer than
    ``max_frame`` raises ``ValueError`` before any of it is buffered."""

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, chunk: bytes) -> Iterator[Frame]:
        buffer = self._buffer
        buffer += chunk
        offset = 0
        end = len(buffer)
        while end - offset >= 12:
            length, frame_id, meta_length = HEADER.unpack_from(buffer, offset)
            if length > self._max_frame:
                raise ValueError(f"frame of {length} bytes is larger than {self._max_frame}")
            stop = offset + 4 + length
            if stop > end:
                break
            meta_start = offset + 12
            data_start = meta_start + meta_length
            yield Frame(
                frame_id,
                orjson.loads(buffer[meta_start:data_start]),
                bytes(buffer[data_start:stop]),
            )
            offset = stop
        if offset:
            del buffer[:offset]
