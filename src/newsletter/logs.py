"""Where the library's log lines go: stderr, one line per event, as text or as JSON.

The library only calls ``logging.getLogger(__name__)``; the command line decides the level
(``-v``, ``-q``) and the format. Events pass their fields as one mapping
(``log.info("batch %(batch)d: %(accepted)d accepted", fields)``), so the text line reads
well and the JSON line carries the same values as data for journald and CI.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

ROOT = "newsletter"
FORMATS = ("text", "json")
LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
"""Verbosity (-q is -1, -v is 1, -vv and more is DEBUG) to the level logged."""


class CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, as logging's own last
    resort does: a progress bar or a test runner that swaps stderr still gets the line."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _timestamp(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if isinstance(record.args, Mapping):
            for key, value in record.args.items():
                line.setdefault(str(key), value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(verbosity: int = 0, log_format: str = "text") -> None:
    """Send the ``newsletter`` loggers' lines to stderr at the level ``verbosity`` asks.

    Called once per command; calling it again replaces the handler it installed, so
    repeated runs in one process (tests) never print a line twice.
    """
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, CurrentStderr)]:
        logger.removeHandler(handler)
    handler = CurrentStderr()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(verbosity, logging.DEBUG if verbosity > 1 else logging.ERROR))


def quiet() -> bool:
    """True under ``-q``: the command's warnings are left out too, only errors show."""
    return not logging.getLogger(ROOT).isEnabledFor(logging.WARNING)
