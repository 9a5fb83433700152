"""How the gateway's log lines look: ``text`` for a terminal, ``json`` (one object per line:
``time``, ``level``, ``logger``, ``message``, and ``exception`` with the traceback) for a log
pipeline (``TIERGATE_LOG_FORMAT``, ``serve --log-format``). Every process of ``serve --workers``
sets itself up from the same settings."""

from __future__ import annotations

import logging
from typing import Literal

import orjson

from gateway.times import iso

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str, form: str) -> None:
    """The root logger's level and format (once per process, before anything logs)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
