"""The envelope a message implies (RFC 8621 §7.5), and the message as it goes to SMTP."""

from __future__ import annotations

import pytest

from bridge.mime.envelope import (
    EnvelopeError,
    envelope_recipients,
    envelope_sender,
    for_transport,
    header_fields,
    is_mailbox,
)
from bridge.smtp import reply_of


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a@example.com", True),
        ("first.last+tag@sub.example.co", True),
        ('"two words"@example.com', True),
        ("user@[192.0.2.1]", True),
        ("jörg@bücher.example", True),  # RFC 6531
        ("user@localhost", True),
        ("*@example.com", True),  # syntactically; the callers decide what a * means
        ("", False),
        ("no-at-sign", False),
        ("two words@example.com", False),
        ("a@b@example.com", False),
        ("a..b@example.com", False),
        (".a@example.com", False),
        ("a@-example.com", False),
        ("a@example.com\r\nRCPT TO:<x@y>", False),
        ("a@example.com>", False),
        ("<a@example.com>", False),
        ("a\x00@example.com", False),
        ("x" * 65 + "@example.com", False),
        ("a@" + "b" * 260 + ".com", False),
        (None, False),
    ],
)
def test_is_mailbox(value: object, valid: bool) -> None:
    assert is_mailbox(value) is valid


def headers(raw: bytes) -> list:
    return header_fields(raw + b"\r\nbody\r\n")


def test_sender_prefers_sender_then_from() -> None:
    assert envelope_sender(headers(b"From: A <a@x.org>\r\nSender: s@x.org\r\n")) == "s@x.org"
    assert envelope_sender(headers(b"From: A <a@x.org>\r\n")) == "a@x.org"
    # Several From addresses are fine when a Sender says who sent.
    both = headers(b"From: a@x.org, b@x.org\r\nSender: b@x.org\r\n")
    assert envelope_sender(both) == "b@x.org"


@pytest.mark.parametrize(
    ("raw", "properties"),
    [
        (b"To: a@x.org\r\n", ["from"]),
        (b"From: a@x.org, b@x.org\r\n", ["from"]),
        (b"From: a@x.org\r\nFrom: b@x.org\r\n", ["from"]),
        (b"From: a@x.org\r\nSender: s@x.org\r\nSender: t@x.org\r\n", ["sender"]),
        (b"From: undisclosed-recipients:;\r\n", ["from"]),
    ],
)
def test_sender_ambiguous_or_missing(raw: bytes, properties: list[str]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        envelope_sender(headers(raw))
    assert caught.value.properties == properties


def test_recipients_from_to_cc_bcc_once_each() -> None:
    raw = (
        b"To: A <a@x.org>, team: b@x.org, c@x.org;\r\n"
        b"Cc: A@X.ORG, d@x.org\r\nBcc: e@x.org\r\nBcc: f@x.org\r\nReply-To: r@x.org\r\n"
    )
    assert envelope_recipients(headers(raw)) == [
        "a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org", "f@x.org",
    ]  # fmt: skip
    assert envelope_recipients(headers(b"From: a@x.org\r\n")) == []


def test_for_transport_drops_every_bcc_field_and_nothing_else() -> None:
    raw = (
        b"From: a@x.org\r\nBCC: one@x.org,\r\n\ttwo@x.org\r\nTo: b@x.org\r\n"
        b"bcc : three@x.org\r\nX-Bcc-Note: kept\r\nSubject: s\r\n\r\n"
        b"Bcc: this is body text\r\n"
    )
    assert for_transport(raw) == (
        b"From: a@x.org\r\nTo: b@x.org\r\nX-Bcc-Note: kept\r\nSubject: s\r\n\r\n"
        b"Bcc: this is body text\r\n"
    )


def test_for_transport_makes_line_ends_crlf() -> None:
    assert for_transport(b"From: a@x.org\nBcc: b@x.org\n\nline\nline\r\n") == (
        b"From: a@x.org\r\n\r\nline\r\nline\r\n"
    )


def test_smtp_reply_lines_joined() -> None:
    # smtplib hands over the lines without their codes, joined by LF.
    reply = reply_of(550, b"5.7.1 Our system has detected that this message is\n5.7.1 likely spam.")
    assert str(reply) == "550 5.7.1 Our system has detected that this message is likely spam."
    assert str(reply_of(250, b"2.0.0 OK")) == "250 2.0.0 OK"
    assert str(reply_of(250, b"OK\nsecond line")) == "250 OK second line"
    assert reply.permanent and not reply_of(451, b"later").permanent
