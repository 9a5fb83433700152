"""Callbacks: ``X-Callback-Url`` on an invocation gets the final execution document POSTed to it
when the execution ends — at once for a quick call, hours later for one a reviewer answers.

Only http and https, and only to addresses ``allowed`` says yes to (``plugins.sandbox.addresses``,
the rule functions' egress follows too): a gateway must not be a way into the network it runs in.
Names are resolved through ``CheckedResolver``, which hands aiohttp only addresses that passed, so
a delivery connects to exactly what was checked, whatever the name answers the next time (DNS
rebinding); the Host header and the TLS server name stay the URL's.
Redirects are never followed: a 3xx is a failed attempt. ``TIERGATE_CALLBACK_ALLOW_PRIVATE``
lifts the address rule (not the redirect one). A delivery is one POST here; retrying it with
backoff for minutes, durably, is the work queue's (``gateway.compose.followups``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlparse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from gateway.errors import BadRequest
from plugins.sandbox.addresses import allowed, embedded_ipv4

__all__ = ["Callbacks", "CheckedResolver", "PrivateAddress", "allowed", "embedded_ipv4"]

log = logging.getLogger("tiergate.callbacks")

TIMEOUT_S = 10.0
DEFAULT_PORTS = {"http": 80, "https": 443}


class PrivateAddress(OSError):
    """A name resolved to an address a callback may not go to."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which callbacks may not reach")
        self.address = address


class CheckedResolver(AbstractResolver):
    """Resolves like ``inner``, and answers only when every address is ``allowed``: a name that
    points at a public and a private address is refused whole."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            if not allowed(ipaddress.ip_address(result["host"])):
                raise PrivateAddress(host, result["host"])
        return found

    async def close(self) -> None:
        await self._inner.close()


class Callbacks:
    def __init__(self, *, allow_private: bool = False, dns: AbstractResolver | None = None) -> None:
        """``dns`` answers names (the system's resolver by default; tests give their own)."""
        dns = dns or DefaultResolver()
        self._allow_private = allow_private
        self._resolver = dns if allow_private else CheckedResolver(dns)
        self._session: aiohttp.ClientSession | None = None

    async def check(self, url: str) -> str:
        """Refuse a callback URL before the call runs (400 ``invalid_request``). Deliveries check
        again as they connect: this is to tell the caller at once."""
        try:
            parsed = urlparse(url)
            scheme, host, port = parsed.scheme, parsed.hostname, parsed.port
        except ValueError:  # a port out of range, a broken IPv6 literal
            scheme, host, port = "", None, None
        if scheme not in ("http", "https") or not host:
            raise BadRequest(f"X-Callback-Url must be an http or https URL, got {url!r}")
        if self._allow_private:
            return url
        try:
            await self._resolver.resolve(host, port or DEFAULT_PORTS[scheme], socket.AF_UNSPEC)
        except PrivateAddress as exc:
            raise BadRequest(
                f"X-Callback-Url {host!r} is a private address ({exc.address}); "
                "set TIERGATE_CALLBACK_ALLOW_PRIVATE=true to allow it"
            ) from None
        except OSError:
            raise BadRequest(f"X-Callback-Url host {host!r} does not resolve") from None
        return url

    async def deliver(self, url: str, payload: bytes) -> str | None:
        """POST ``payload`` to ``url`` once; None when it was taken (2xx), else why not."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            )
        try:
            async with self._session.post(
                url,
                data=payload,
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                if response.status < 300:
                    return None
                reason = f"HTTP {response.status}"
                if response.status < 400:
                    reason += " (redirects are not followed)"
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        log.warning("callback to %s failed: %s", url, reason)
        return reason

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._resolver.close()
