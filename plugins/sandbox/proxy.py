"""The gateway's side of a function's egress: one ``EgressProxy`` per sandboxed worker, a Unix
socket server on the gateway's event loop, shown inside the worker's sandbox at
``egress.EGRESS_SOCKET``. It takes the two ways of asking an HTTP proxy for a connection:
``CONNECT host:port`` (a tunnel: https, or any protocol over TCP) and a plain-HTTP request for an
absolute ``http://`` URL (forwarded as one request, with ``Connection: close``).

For each connection: the worker must be running a call (``calls()`` gives that call's
``EgressLedger``), which holds fewer than ``MAX_OPEN`` connections; ``host:port`` must be on the
function's allow list; the name is resolved here, and every address it has must be public
(``addresses.allowed``) unless the operator allows private ones
(``TIERGATE_EGRESS_ALLOW_PRIVATE``); then the proxy connects to one of exactly those addresses
(it never looks the name up again, so a rebinding name cannot swap in another) and pipes bytes
both ways, ``CHUNK`` at a time with flow control, until both sides are done or the call ends
(or the call's connections together have moved ``max_bytes``: ``EgressLedger.cut``).
A refusal answers 403, an unreachable destination 502; both are counted and logged on the
execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .addresses import allowed
from .egress import AllowList, EgressLedger, normalise_host, shown

log = logging.getLogger("tiergate.egress")

HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
RESOLVE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
CHUNK = 64 * 1024
LINGER_S = 2.0
DEFAULT_MAX_BYTES = 256 << 20
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization"})
_METHOD = re.compile(r"[A-Z]{1,20}")
_VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_PHRASES = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}

Address = IPv4Address | IPv6Address
Resolve = Callable[[str, int], Awaitable[list[Address]]]


class Refused(Exception):
    """The destination is not one the function may reach; the message says why."""


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """What a connection asks for: ``host`` as ``normalise_host`` gives it; ``head`` is the
    plain-HTTP request to send on (None for ``CONNECT``)."""

    host: str
    port: int
    head: bytes | None = None


class EgressProxy:
    """Start with ``await start()``; ``calls`` says which call the worker runs now (an
    ``EgressLedger``, or anything else when none); ``close`` when the worker has exited."""

    def __init__(
        self,
        path: Path,
        allow: AllowList,
        *,
        allow_private: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        resolve: Resolve | None = None,
    ) -> None:
        self.path = path
        self.allow = allow
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.calls: Callable[[], Any] = lambda: None
        self._resolve = resolve or resolve_name
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=HEAD_BYTES
        )
        # The sandbox's user may not be the gateway's; the socket's directory (0700) keeps every
        # other user of the host out.
        os.chmod(self.path, 0o666)

    def follow(self, calls: Callable[[], Any], ended: asyncio.Future[Any]) -> None:
        """Serve the worker whose running call ``calls()`` gives; close when ``ended`` is."""
        self.calls = calls
        ended.add_done_callback(lambda _: self.close())

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ledger = self.calls()
        task = asyncio.current_task()
        try:
            if not isinstance(ledger, EgressLedger) or ledger.closed or task is None:
                log.debug("egress refused for %s: no call is running", self.path.name)
                await _answer(reader, writer, 403, "egress refused: no call is running")
                return
            if reason := ledger.admit(task):
                ledger.refuse("another connection", reason)
                await _answer(reader, writer, 403, f"egress refused: {reason}")
                return
            try:
                await self._connect(ledger, reader, writer)
            finally:
                ledger.release(task)
        except (OSError, asyncio.CancelledError):  # a side went away, or the call ended
            pass  # (the task is this connection's own: a cancelled one would be logged)
        finally:
            writer.close()

    async def _connect(
        self, ledger: EgressLedger, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        request = await read_request(reader)
        if request is None:
            reason = "not CONNECT host:port or a request for an absolute http:// URL"
            ledger.refuse("an unreadable request", reason)
            await _answer(reader, writer, 400, f"egress refused: {reason}")
            return
        where = shown(request.host, request.port)
        try:
            if not self.allow.permits(request.host, request.port):
                raise Refused("not in network.allow")
            addresses = await self._checked(request.host, request.port)
        except Refused as exc:
            ledger.refuse(where, str(exc))
            await _answer(reader, writer, 403, f"egress refused: {where} ({exc})")
            return
        except (OSError, TimeoutError, UnicodeError):
            reason = "the name does not resolve"
            ledger.fail(where, reason)
            await _answer(reader, writer, 502, f"egress failed: {where} ({reason})")
            return
        try:
            up_reader, up_writer = await _open(addresses, request.port)
        except OSError as exc:
            ledger.fail(where, str(exc))
            await _answer(reader, writer, 502, f"egress failed: {where} ({exc})")
            return
        ledger.allowed += 1
        try:
            if request.head is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(request.head)
                ledger.bytes_sent += len(request.head)
            both = (writer, up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer, both, ledger, sent=True),
                self._pipe(up_reader, writer, both, ledger, sent=False),
            )
        finally:
            up_writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        both: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        ledger: EgressLedger,
        *,
        sent: bool,
    ) -> None:
        """Copy until ``reader`` ends, then pass the end on; a broken side ends both, and so
        does the call passing ``max_bytes`` (every connection of the call ends with it)."""
        try:
            while chunk := await reader.read(CHUNK):
                if sent:
                    ledger.bytes_sent += len(chunk)
                else:
                    ledger.bytes_received += len(chunk)
                if ledger.bytes_moved > self.max_bytes:
                    ledger.cut(
                        f"the call moved more than {self.max_bytes >> 20} MiB "
                        "(TIERGATE_EGRESS_MAX_MB)"
                    )
                    raise OSError("egress cap reached")
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            for side in both:
                side.close()

    async def _checked(self, host: str, port: int) -> list[Address]:
        """The addresses ``host`` has, once every one of them may be reached."""
        try:
            found: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = await self._resolve(host, port)
        if not found:
            raise OSError("no address")
        if not self.allow_private:
            for address in found:
                if not allowed(address):
                    raise Refused(
                        f"{address} is not a public address: loopback, private, link-local "
                        "and metadata addresses are closed"
                    )
        return found


async def resolve_name(host: str, port: int) -> list[Address]:
    """Every address the system's resolver gives ``host``, each once, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


async def read_request(reader: asyncio.StreamReader) -> ProxyRequest | None:
    """The request's head, read within ``HEAD_TIMEOUT_S`` and ``HEAD_BYTES``; None when it is
    not one a proxy takes."""
    try:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        return None
    return parse_request(head)


def parse_request(head: bytes) -> ProxyRequest | None:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or parts[2] not in _VERSIONS:
        return None
    method, target, version = parts
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        name = normalise_host(host)
        if name is None or not port.isdigit() or not 1 <= int(port) <= 65535:
            return None
        return ProxyRequest(name, int(port))
    try:
        url = urlsplit(target)
        port_number = url.port or 80
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname:
        return None
    name = normalise_host(f"[{url.hostname}]" if ":" in url.hostname else url.hostname)
    if name is None:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() not in HOP_HEADERS]
    if not any(h.lower().startswith("host:") for h in headers):
        headers.insert(0, f"Host: {url.netloc.rpartition('@')[2]}")
    rebuilt = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""])
    return ProxyRequest(name, port_number, rebuilt.encode("latin-1"))



async def _open(
    addresses: list[Address], port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of ``addresses`` that answers (numeric: nothing is resolved)."""
    reason = "no address"
    for address in addresses:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return await asyncio.open_connection(str(address), port, limit=CHUNK)
        except TimeoutError:
            reason = f"connecting timed out after {CONNECT_TIMEOUT_S:g} s"
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
    raise OSError(reason)


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, text: str
) -> None:
    """Answer, then read what the client still sends (for at most ``LINGER_S``) before the
    connection closes: closing with unread data would reset it, and the answer with it."""
    body = f"{text}\n".encode()
    head = (
        f"HTTP/1.1 {status} {_PHRASES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    with contextlib.suppress(OSError, TimeoutError):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_S):
            while await reader.read(CHUNK):
                pass
