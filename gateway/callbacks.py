"""Callbacks: ``X-Callback-Url`` on an invocation gets the final execution document POSTed to it
when the execution ends — at once for a quick call, hours later for one a reviewer answers.

Only http and https; addresses that resolve to private, loopback or link-local networks are
refused unless ``TIERGATE_CALLBACK_ALLOW_PRIVATE`` is set (a gateway must not be a way into the
network it runs in). Deliveries are retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlparse

import aiohttp
import orjson

from .errors import BadRequest

log = logging.getLogger("tiergate.callbacks")

ATTEMPTS = 5
FIRST_DELAY_S = 0.5
TIMEOUT_S = 10.0


class Callbacks:
    def __init__(self, *, allow_private: bool = False) -> None:
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed = 0

    async def check(self, url: str) -> str:
        """Refuse a callback URL before the call runs (400 ``invalid_request``)."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BadRequest(f"X-Callback-Url must be an http or https URL, got {url!r}")
        if self._allow_private:
            return url
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.hostname, parsed.port or 443, type=socket.SOCK_STREAM
            )
        except OSError:
            raise BadRequest(f"X-Callback-Url host {parsed.hostname!r} does not resolve") from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global:
                raise BadRequest(
                    f"X-Callback-Url {parsed.hostname!r} is a private address; "
                    "set TIERGATE_CALLBACK_ALLOW_PRIVATE=true to allow it"
                )
        return url

    def send(self, url: str, body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(url, orjson.dumps(body)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, payload: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        delay = FIRST_DELAY_S
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._session.post(
                    url, data=payload, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            log.warning(
                "callback to %s failed (%s), attempt %d of %d", url, reason, attempt, ATTEMPTS
            )
            if attempt < ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        self.failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
