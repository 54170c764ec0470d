"""Keeps secrets out of every log line, bridge's own and its libraries' (uvicorn, websockets).

At ``--log-level debug`` uvicorn and websockets log request headers (``authorization:
Basic ...``), and the access log shows query strings (``?access_token=...``). A filter on
every handler rewrites each record before it is written: credentials after the Basic and
Bearer schemes, the value of an Authorization header, ``access_token=`` / ``jmap_token=``
and ``password=``-like parameters, JSON ``"token"`` and ``"password"`` members, a URL's
password, and the arguments of IMAP LOGIN and AUTHENTICATE. Records are rewritten only
where a secret shows, and field by field where they can be, so formatters that read a
record's arguments (the access log's) keep working.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "<redacted>"
ACCESS = "uvicorn.access"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A scheme and its credentials (RFC 7235 token68), wherever they show: a header, a repr
    # of a header list.
    (re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9._~+/-]+=*"), rf"\1\2{MASK}"),
    # An Authorization value without a known scheme.
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization['\"]?+\s*+[:=,]\s*+(?-i:b)?+['\"]?+)"
            r"(?!basic\b|bearer\b|<redacted>)[^\s'\",)\]]+"
        ),
        rf"\1{MASK}",
    ),
    # Query and form parameters, cookies.
    (
        re.compile(r"(?i)\b((?:access_)?token|jmap_token|password|passwd|pass)(=|%3D)[^\s&;'\"]+"),
        rf"\1\2{MASK}",
    ),
    # JSON members.
    (re.compile(r"(?i)(\"(?:token|password)\"\s*:\s*\")[^\"]*"), rf"\1{MASK}"),
    # A URL's password (the PostgreSQL store's, scheme://user:password@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@'\"]+:)[^\s/'\"]+@"), rf"\1{MASK}@"),
    # IMAP: LOGIN user password, AUTHENTICATE mechanism initial-response (commands as
    # bridge sends them, in capitals: "login failed for ..." is no command).
    (re.compile(r"\b(LOGIN\s+\S+\s+)\S+"), rf"\1{MASK}"),
    (re.compile(r"\b(AUTHENTICATE\s+\S+\s+)\S+"), rf"\1{MASK}"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redacted_arg(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray | list | tuple | dict):
        shown = str(value)
        cleaned = redact(shown)
        return value if cleaned == shown else cleaned
    return value


class RedactingFilter(logging.Filter):
    """Rewrites records in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted_arg(arg) for key, arg in record.args.items()}
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = None  # the record's own formatting error: logging reports it
        if message is not None and redact(message) != message and record.name != ACCESS:
            # A secret made of the message and its arguments together. (The access log's
            # formatter unpacks its arguments, each redacted above.)
            record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def handlers() -> list[logging.Handler]:
    """The handlers of every logger configured so far (the root's, uvicorn's)."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def install() -> None:
    """Put the filter on every handler configured so far; call once logging is set up."""
    for handler in handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
