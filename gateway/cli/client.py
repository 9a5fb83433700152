"""A small HTTP client for the CLI: finds the URL and key, turns problems into one-line errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import click
import orjson

from gateway.sdk import operations as sdk_ops
from gateway.sdk.errors import TiergateError, error_from_answer

EXIT_CODES = {
    "usage": 2,
    "not_found": 3,
    "auth": 4,
    "function_failed": 5,
    "timeout": 6,
    "busy": 7,
}
"""Exit statuses besides 0 (done) and 1 (any other error), documented in the README: a script
can tell a missing function from a refused key from a function that failed."""


class ClientError(click.ClickException):
    """Printed as one line (``error: …``), never a traceback; ``exit_code`` 1 unless a more
    telling one fits (``EXIT_CODES``)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.__dict__["exit_code"] = exit_code  # click reads it; its stub types it a ClassVar

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


@dataclass(frozen=True)
class Client:
    url: str
    key: str | None

    @classmethod
    def resolve(cls, url: str | None, key: str | None, env: Mapping[str, str]) -> Client:
        """The SDK's defaults (``gateway.sdk``): one way to find the gateway and the key."""
        try:
            return cls(*sdk_ops.resolve(url, key, env))
        except ValueError as exc:
            raise ClientError(f"error: {exc}", EXIT_CODES["usage"]) from None

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Mapping[str, str]]:
        return asyncio.run(self._request(method, path, **kwargs))

    async def _request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, Any, Mapping[str, str]]:
        headers = dict(kwargs.pop("headers", {}))
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        timeout = aiohttp.ClientTimeout(total=kwargs.pop("timeout", 900))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(method, self.url + path, headers=headers, **kwargs) as r,
            ):
                raw = await r.read()
                return r.status, _decode(raw), dict(r.headers)
        except aiohttp.ClientConnectorError:
            raise ClientError(
                f"error: cannot reach tiergate at {self.url} (is `tiergate serve` running?)"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(
                f"error: request to {self.url} failed: {exc or type(exc).__name__}"
            ) from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like ``request`` but a non-2xx answer becomes a ``ClientError``."""
        status, body, _ = self.request(method, path, **kwargs)
        if status >= 400:
            raise ClientError(problem_line(status, body), exit_code_of(status, body))
        return body


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def exit_code_of(status: int, body: Any) -> int:
    """The exit status for a problem answer (``EXIT_CODES``)."""
    code = body.get("code") if isinstance(body, dict) else None
    if status == 404:
        return EXIT_CODES["not_found"]
    if status in (401, 403):
        return EXIT_CODES["auth"]
    if status in (408, 504) or code == "timeout":
        return EXIT_CODES["timeout"]
    if status in (429, 503):
        return EXIT_CODES["busy"]
    if code == "cascade_exhausted":
        return EXIT_CODES["function_failed"]
    return 1


def problem_line(status: int, body: Any) -> str:
    """``error: DETAIL (CODE, HTTP STATUS)``, then the fields at fault (``/items/0/qty: 'qty' is
    a required property``), as the SDK's errors say it."""
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        body = {**body, "detail": _one_line(body["detail"])}
    line = f"error: {error_from_answer(status, body, {})}"
    if status == 401:
        line += "; pass --key, set TIERGATE_KEY, or run where <data-dir>/admin.key exists"
    return line


def sdk_error(exc: TiergateError) -> ClientError:
    """An SDK error (a command built on ``gateway.sdk``) as the CLI's one line and exit status."""
    if exc.status is None:  # the SDK's own: the gateway unreachable, a timeout
        return ClientError(f"error: {exc}")
    return ClientError(problem_line(exc.status, exc.problem), exit_code_of(exc.status, exc.problem))


def _one_line(text: str) -> str:
    """Compiler messages come with caret diagrams; keep their words, drop the drawing."""
    parts = [p.strip() for p in text.splitlines()]
    return " ".join(p for p in parts if p and set(p) - set("|^ "))


def environ() -> Mapping[str, str]:
    return os.environ
