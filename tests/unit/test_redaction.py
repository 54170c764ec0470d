"""The log filter: secrets masked, everything else left as it was."""

from __future__ import annotations

import logging

import pytest

from bridge.redaction import RedactingFilter, redact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("< authorization: Basic YWxpY2U6cHc=", "< authorization: Basic <redacted>"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer <redacted>"),
        ("authorization: raw-token", "authorization: <redacted>"),
        ("[(b'authorization', b'Basic YWxp')]", "[(b'authorization', b'Basic <redacted>')]"),
        ("GET /jmap/eventsource?ping=1&access_token=a-b_c HTTP/1.1",
         "GET /jmap/eventsource?ping=1&access_token=<redacted> HTTP/1.1"),
        ("cookie: jmap_token=xyz; theme=dark", "cookie: jmap_token=<redacted>; theme=dark"),
        ('{"token": "abc", "expires": 1}', '{"token": "<redacted>", "expires": 1}'),
        ('A1 LOGIN alice "pw"', "A1 LOGIN alice <redacted>"),
        ("A1 AUTHENTICATE PLAIN AGFsaWNlAHB3", "A1 AUTHENTICATE PLAIN <redacted>"),
        ("store postgresql://bridge:p@ss@db:5432/mail down",
         "store postgresql://bridge:<redacted>@db:5432/mail down"),
        ("see https://example.com/a:b@c", "see https://example.com/a:b@c"),
        ("login failed for alice from 127.0.0.1", "login failed for alice from 127.0.0.1"),
        ("connection for basic (1 open)", "connection for basic (1 open)"),
    ],
)  # fmt: skip
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_filter_keeps_the_access_log_arguments() -> None:
    args = ("127.0.0.1:5000", "GET", "/jmap/eventsource?access_token=secret", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", 20, "", 0, '%s - "%s %s HTTP/%s" %d', args, None)
    RedactingFilter().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/jmap/eventsource?access_token=<redacted>",
                           "1.1", 200)  # fmt: skip


def test_filter_masks_a_secret_split_between_message_and_arguments() -> None:
    record = logging.LogRecord("x", 10, "", 0, "< %s: %s", ("authorization", "opaque"), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "< authorization: <redacted>"
