"""The whole test run's log, scanned for keys (issue 15): a handler on the root logger reads every record
written while the tests run (message, `extra=` fields, exception text: before any masking), and the run
fails at its end if one holds a whole key of any kind. Only the masked form (`****...****abcd`) may appear.
"""

from __future__ import annotations

import logging
import re

from trollllm.crypto import mask_secrets

# A whole key: ours, OpenAI's (`sk-…`, `sk-proj-…`), Anthropic's (`sk-ant-…`), Groq's, Google's, xAI's. A
# masked form has `*` right after its prefix, so it never matches.
WHOLE_KEY = re.compile(
    r"sk-trollllm-(?:friend-)?[0-9a-f]{64}"
    r"|sk-ant-[A-Za-z0-9_\-]{20,}"
    r"|sk-(?!trollllm-|ant-)[A-Za-z0-9_\-]{20,}"
    r"|gsk_[A-Za-z0-9]{20,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|xai-[A-Za-z0-9]{20,}"
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def record_text(record: logging.LogRecord) -> str:
    """Everything a log line of `record` would carry, unmasked."""
    parts = [record.getMessage()]
    parts += [f"{name}={value}" for name, value in record.__dict__.items() if name not in _STANDARD]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return " ".join(parts)


class KeyScan(logging.Handler):
    """Counts the records written and keeps (masked) the ones that held a whole key."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        text = record_text(record)
        if WHOLE_KEY.search(text):
            self.leaks.append(f"{record.name} {record.levelname}: {mask_secrets(text)[:300]}")


SCAN = KeyScan()


def install() -> None:
    """Scan every record from now on: ours down to DEBUG, everything else from INFO."""
    root = logging.getLogger()
    root.addHandler(SCAN)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    logging.getLogger("trollllm").setLevel(logging.DEBUG)
