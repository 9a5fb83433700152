"""Controlled egress: the manifest's ``network.allow`` list, and what one call did with it.

A sandbox has no network of its own. A function whose manifest says ``network: {"allow":
["api.example.com:443", "*.internal.example:8080"]}`` gets one way out: a Unix socket shown at
``EGRESS_SOCKET`` inside its sandboxes, served by the gateway's ``proxy.EgressProxy``, which opens
exactly the listed destinations (by name, then by every address the name resolves to:
``addresses``). Inside, ``forward`` offers it as an ordinary HTTP proxy on the sandbox's loopback.

An entry is ``host:port``: ``host`` a DNS name, ``*.suffix`` (any name of one label or more in
front of ``suffix``, never ``suffix`` itself), an IPv4 address or a bracketed IPv6 address;
``port`` 1-65535. Names compare case-insensitively, without a trailing dot.

``EgressLedger`` is one call's account: connections allowed, refused and failed, bytes each way,
a log entry per refusal or failure (at most ``MAX_LOGGED``), and the call's open connections,
which end with the call, or sooner when they have moved more bytes than the operator allows one
call (``cut``): the proxy pipes them through the gateway's own event loop, and a tenant pulling
without end would take that loop's time from every other tenant.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

EGRESS_SOCKET = "/run/tiergate/egress.sock"
"""Where a sandbox with egress finds the proxy's socket (absent in sandboxes without)."""
MAX_ALLOW = 32
MAX_OPEN = 16
"""Connections one call may hold open at once; more are refused."""
MAX_LOGGED = 64
"""Refusals and failures logged on one execution; later ones are counted, and summed up once."""

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
ENTRY_PATTERN = r"^(\*\.)?[A-Za-z0-9_.-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$"

NETWORK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["allow"],
    "description": "Controlled egress (docs/api.md, Network egress): the destinations the "
    "function's code may connect to, through the gateway's proxy (HTTP_PROXY and HTTPS_PROXY "
    "are set for it). Without this field a function has no network at all.",
    "properties": {
        "allow": {
            "type": "array",
            "maxItems": MAX_ALLOW,
            "items": {
                "type": "string",
                "maxLength": 262,
                "pattern": ENTRY_PATTERN,
                "description": "host:port; host a DNS name, *.suffix (one label or more before "
                "suffix), an IPv4 address or a bracketed IPv6 address; port 1-65535",
            },
        },
    },
}
"""The manifest's ``network`` field."""


def normalise_host(raw: str) -> str | None:
    """``raw`` as destinations are compared: an IP address in its canonical form (without
    brackets), or a lower-case DNS name without a trailing dot; None when it is neither."""
    if raw.startswith("[") and raw.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(raw[1:-1]))
        except ValueError:
            return None
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        pass
    name = raw.lower()
    name = name[:-1] if name.endswith(".") else name
    if len(name) > 253 or not _NAME.fullmatch(name):
        return None
    return name


def shown(host: str, port: int) -> str:
    """``host:port`` as messages show it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Destination:
    """One entry of ``network.allow``; ``host`` is the suffix (without ``*.``) of a wildcard."""

    host: str
    port: int
    wildcard: bool = False

    def matches(self, host: str, port: int) -> bool:
        if port != self.port:
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host

    def __str__(self) -> str:
        return ("*." if self.wildcard else "") + shown(self.host, self.port)


def parse_destination(entry: Any) -> Destination:
    """One ``network.allow`` entry; ``ValueError`` saying what is wrong with it."""
    if not isinstance(entry, str):
        raise ValueError("must be a string host:port")
    host, colon, port_text = entry.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{entry!r} is not host:port")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    wildcard = host.startswith("*.")
    name = normalise_host(host[2:] if wildcard else host)
    if name is None or (wildcard and (":" in name or _is_ipv4(name))):
        raise ValueError(
            f"{entry!r}: the host must be a DNS name, *.suffix, an IPv4 address or a "
            "bracketed IPv6 address"
        )
    return Destination(name, int(port_text), wildcard)


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AllowList:
    """The destinations a function's code may reach (``network.allow``, parsed)."""

    destinations: tuple[Destination, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[Any]) -> AllowList:
        return cls(tuple(parse_destination(entry) for entry in entries))

    def permits(self, host: str, port: int) -> bool:
        """``host`` as ``normalise_host`` gives it."""
        return any(d.matches(host, port) for d in self.destinations)


@dataclass
class EgressLedger:
    """One call's connections through the proxy. The runtime makes one per call of a function
    with ``network`` and hands it to the worker's proxy for the call (``FunctionPool.call``'s
    ``context``); when the call ends it closes the ledger (its connections end) and reports
    ``metrics`` and ``entries`` with the call's own."""

    allowed: int = 0
    refused: int = 0
    failed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    entries: list[list[Any]] = field(default_factory=list)
    closed: bool = False
    cut_because: str = ""
    _unlogged: int = 0
    _open: set[asyncio.Task[Any]] = field(default_factory=set)

    def admit(self, task: asyncio.Task[Any]) -> str:
        """Count ``task`` (one connection) as open; or why not ("" when admitted)."""
        if self.closed:
            return "no call is running"
        if self.cut_because:
            return self.cut_because
        if len(self._open) >= MAX_OPEN:
            return f"the call holds {MAX_OPEN} connections open already"
        self._open.add(task)
        return ""

    @property
    def bytes_moved(self) -> int:
        return self.bytes_sent + self.bytes_received

    def cut(self, reason: str) -> None:
        """The call has used its egress: its connections end now, later ones are refused with
        ``reason``, logged once."""
        if self.cut_because:
            return
        self.cut_because = reason
        self._log(f"egress cut: {reason}")
        self._end_open()

    def release(self, task: asyncio.Task[Any]) -> None:
        self._open.discard(task)

    def refuse(self, destination: str, reason: str) -> None:
        self.refused += 1
        self._log(f"egress refused: {destination} ({reason})")

    def fail(self, destination: str, reason: str) -> None:
        """The list allowed ``destination`` but it could not be reached."""
        self.failed += 1
        self._log(f"egress failed: {destination} ({reason})")

    def _log(self, message: str) -> None:
        if len(self.entries) < MAX_LOGGED:
            self.entries.append([time.time(), "log", message, "WARNING"])
        else:
            self._unlogged += 1

    def close(self) -> None:
        """The call ended: its connections end, and no more are let in."""
        self.closed = True
        self._end_open()
        if self._unlogged:
            message = f"egress: {self._unlogged} more refusals and failures, not logged"
            self.entries.append([time.time(), "log", message, "WARNING"])
            self._unlogged = 0

    def _end_open(self) -> None:
        for task in self._open:
            task.cancel()
        self._open.clear()

    def merged(self, entries: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
        """The call's own log ``entries`` (``[ts, stream, message, level]``) with the ledger's,
        in time order."""
        if not self.entries:
            return list(entries)
        return sorted([*entries, *self.entries], key=lambda entry: entry[0])

    def metrics(self) -> dict[str, float]:
        """As ``CallResult.metrics``: ``egress.allowed``, ``egress.refused``, ``egress.failed``,
        ``egress.bytes_sent`` and ``egress.bytes_received``."""
        return {
            "egress.allowed": self.allowed,
            "egress.refused": self.refused,
            "egress.failed": self.failed,
            "egress.bytes_sent": self.bytes_sent,
            "egress.bytes_received": self.bytes_received,
        }
