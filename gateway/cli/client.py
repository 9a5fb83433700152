"""A small HTTP client for the CLI: finds the URL and key, turns problems into one-line errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(click.ClickException):
    """Printed as one line (``error: …``) with exit status 1; never a traceback."""

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
        url = (url or env.get("TIERGATE_URL") or DEFAULT_URL).rstrip("/")
        key = key or env.get("TIERGATE_KEY") or _key_file(env)
        return cls(url, key)

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
            raise ClientError(problem_line(status, body))
        return body


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def problem_line(status: int, body: Any) -> str:
    if isinstance(body, dict) and "code" in body:
        detail = _one_line(str(body.get("detail") or body.get("title")))
        line = f"error: {detail} ({body['code']}, HTTP {status})"
        if status == 401:
            line += "; pass --key, set TIERGATE_KEY, or run where <data-dir>/admin.key exists"
        return line
    return f"error: HTTP {status}: {str(body)[:200]}"


def _one_line(text: str) -> str:
    """Compiler messages come with caret diagrams; keep their words, drop the drawing."""
    parts = [p.strip() for p in text.splitlines()]
    return " ".join(p for p in parts if p and set(p) - set("|^ "))


def _key_file(env: Mapping[str, str]) -> str | None:
    path = Path(env.get("TIERGATE_DATA_DIR") or ".tiergate") / "admin.key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def environ() -> Mapping[str, str]:
    return os.environ
