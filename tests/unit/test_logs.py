"""JSON log lines: one object per record, with the fields a collector indexes."""

from __future__ import annotations

import json
import logging
import sys

from bridge.logs import JsonFormatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("bridge.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object() -> None:
    line = JsonFormatter().format(record("opened %d connections", 3, users=2))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "bridge.test"
    assert entry["message"] == "opened 3 connections"
    assert entry["users"] == 2
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"


def test_an_error_carries_its_traceback() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        failed = record("it failed")
        failed.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(failed))
    assert "ValueError: broken" in entry["exception"]


def test_extra_fields_are_redacted_and_any_value_is_written() -> None:
    entry = json.loads(
        JsonFormatter().format(record("hi", header="Basic dXNlcjpzZWNyZXQ=", odd=object()))
    )
    assert "dXNlcjpzZWNyZXQ" not in entry["header"]
    assert entry["odd"].startswith("<object")
