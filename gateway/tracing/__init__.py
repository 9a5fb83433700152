"""Tracing with OpenTelemetry: off unless the operator asks for it, and free while off.

The OpenTelemetry packages are an optional extra (``pip install 'tiergate[otel]'``). This module
decides from ``Settings`` whether to trace and only then imports ``gateway.tracing.otel`` (which
imports OpenTelemetry): a gateway that does not trace never loads it. While off, the services get
``None`` instead of a ``Tracing`` and the wiring builds the plain classes, so the invoke path does
what it did before, with no span objects and no checks beyond ``tracing is None`` at the edges.

``TIERGATE_TRACING``: ``auto`` (the default) traces when an OTLP endpoint is configured the
standard way (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and the
extra is installed; ``on`` traces (to OpenTelemetry's default endpoint when none is set) and
refuses to start without the extra; ``off`` never traces. ``OTEL_SDK_DISABLED=true`` and
``OTEL_TRACES_EXPORTER=none`` turn it off as they do for any OpenTelemetry SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.tracing.otel import Tracing

log = logging.getLogger("tiergate.tracing")

EXTRA_MISSING = "tracing needs the otel extra: pip install 'tiergate[otel]'"


class TracingUnavailable(RuntimeError):
    """``TIERGATE_TRACING=on`` but the OpenTelemetry packages are not installed."""


class ExecutionSpan(Protocol):
    """The span an execution runs in, as the invoke path needs it: the ids the execution's record
    keeps (its ``trace_id`` is the span's, so logs and spans join up)."""

    trace_id: str
    traceparent: str


def wanted(settings: Settings) -> bool:
    """Whether this gateway should trace (see the module docstring)."""
    if settings.tracing == "off" or settings.otel_sdk_disabled:
        return False
    if settings.otel_traces_exporter == "none":
        return False
    if settings.tracing == "on":
        return True
    return bool(settings.otlp_endpoint or settings.otlp_traces_endpoint)


def check_installed(settings: Settings) -> None:
    """Raise ``TracingUnavailable`` when the settings demand tracing that cannot work here; for
    ``serve`` to say so in one line before it starts."""
    if settings.tracing == "on" and wanted(settings) and not _installed():
        raise TracingUnavailable(f"TIERGATE_TRACING=on: {EXTRA_MISSING}")


def start_tracing(settings: Settings, stack: contextlib.AsyncExitStack) -> Tracing | None:
    """The process's tracing, exporting until ``stack`` closes; None when it does not trace."""
    if not wanted(settings):
        return None
    if not _installed():
        if settings.tracing == "on":
            raise TracingUnavailable(f"TIERGATE_TRACING=on: {EXTRA_MISSING}")
        log.warning("an OTLP endpoint is set, but %s; serving without tracing", EXTRA_MISSING)
        return None
    from gateway.tracing.otel import Tracing

    tracing = Tracing.start()
    stack.push_async_callback(asyncio.to_thread, tracing.shutdown)  # flushes: blocking I/O
    log.info("tracing: spans go to %s", _endpoint(settings))
    return tracing


def _endpoint(settings: Settings) -> str:
    """Where the OTLP/HTTP exporter sends spans, as OpenTelemetry's variables say."""
    if settings.otlp_traces_endpoint:
        return settings.otlp_traces_endpoint
    base = settings.otlp_endpoint or "http://localhost:4318"
    return base.rstrip("/") + "/v1/traces"


def _installed() -> bool:
    try:
        import gateway.tracing.otel  # noqa: F401
    except ImportError:
        return False
    return True
