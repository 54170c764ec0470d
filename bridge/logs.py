"""Log output: text lines for a terminal, or one JSON object per line for a collector.

A JSON line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and
``message``, then every field a caller passed with ``extra=`` and, after an error,
``exception`` (the traceback). The message and the traceback are the ones the redacting
filter (bridge.redaction) already cleaned; extra fields that are strings are redacted
here too, since that filter does not look at them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from bridge.redaction import handlers, redact

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return msgspec.json.encode(entry, enc_hook=repr).decode()


def configure(level: str, log_format: LogFormat = "text") -> None:
    """The root logger's handler, at ``level``, writing ``log_format``."""
    logging.basicConfig(level=level.upper(), format=TEXT_FORMAT)
    if log_format == "json":
        use_json()


def use_json() -> None:
    """Every handler configured so far (the root's, uvicorn's) writes JSON lines: call
    again after uvicorn has set up its own."""
    formatter = JsonFormatter()
    for handler in handlers():
        handler.setFormatter(formatter)
