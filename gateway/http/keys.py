"""Every typed key the app and requests carry (aiohttp ``AppKey``/``RequestKey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.security.auth import Principal
    from gateway.services import Services
    from gateway.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SERVICES: web.AppKey[Services] = web.AppKey("services")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")

__all__ = ["PRINCIPAL", "SERVICES", "SETTINGS"]
