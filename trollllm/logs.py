"""Structured logging: one JSON object per line, with anything key-shaped masked."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from trollllm.crypto import mask_secrets

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRS and not name.startswith("_"):
                payload[name] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return mask_secrets(orjson.dumps(payload, default=str).decode())


def configure_logging(level: str) -> None:
    """Send every log record to stderr as masked JSON lines (called once by the CLI, never on import)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per request comes from our own middleware; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
