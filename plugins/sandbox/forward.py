"""Inside a sandbox with egress, before the function's code runs: an ordinary HTTP proxy for it.

The sandbox's network namespace has only its own loopback, and the way out is a Unix socket
(``egress.EGRESS_SOCKET``) that most HTTP clients cannot use as a proxy. ``start`` listens on
``127.0.0.1`` (a free port, inside the sandbox), forwards every connection to that socket in a
thread of its own, and sets ``HTTP_PROXY``, ``HTTPS_PROXY``, ``http_proxy`` and ``https_proxy``
for the code, so ``urllib.request``, ``http.client`` through a proxy, ``requests`` and ``httpx``
use it. The gateway's proxy decides everything; this only carries bytes (code that speaks to the
socket itself gets no more).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading

from .egress import EGRESS_SOCKET

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
BACKLOG = 32
CHUNK = 64 * 1024
STACK_BYTES = 512 * 1024


def start(path: str = EGRESS_SOCKET) -> str | None:
    """Start forwarding when the sandbox shows the proxy's socket at ``path``; the proxy's URL,
    or None (no network: nothing to do)."""
    if not os.path.exists(path):
        return None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    thread = threading.Thread(
        target=asyncio.run, args=(_serve(listener, path),), name="tiergate-egress", daemon=True
    )
    before = threading.stack_size(STACK_BYTES)
    try:
        thread.start()
    finally:
        threading.stack_size(before)
    for name in PROXY_VARIABLES:
        os.environ[name] = url
    return url


async def _serve(listener: socket.socket, path: str) -> None:
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(path, limit=CHUNK)
        except OSError:
            writer.close()
            return
        both = (writer, up_writer)
        await asyncio.gather(_pipe(reader, up_writer, both), _pipe(up_reader, writer, both))
        for side in both:
            side.close()

    server = await asyncio.start_server(forward, sock=listener, limit=CHUNK)
    await server.serve_forever()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except Exception:  # never a traceback in the function's logs: this connection just ends
        for side in both:
            with contextlib.suppress(Exception):
                side.close()
