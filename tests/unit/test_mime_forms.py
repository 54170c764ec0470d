from __future__ import annotations

from typing import Any

import pytest

from bridge.mime import (
    Header,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_text,
    as_urls,
    header_value,
    parse_header_block,
)

SPEC_EXAMPLE = (
    '"  James Smythe" <james@example.com>, Friends:\r\n'
    "  jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n"
    "  <john@example.com>;"
)


def addr(name: str | None, email: str) -> dict[str, Any]:
    return {"name": name, "email": email}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            SPEC_EXAMPLE,
            [
                addr("James Smythe", "james@example.com"),
                addr(None, "jane@example.com"),
                addr("John Smîth", "john@example.com"),
            ],
        ),
        (" alice@example.com", [addr(None, "alice@example.com")]),
        (" <alice@example.com>", [addr(None, "alice@example.com")]),
        (' "Doe, Jane" <jane@example.com>', [addr("Doe, Jane", "jane@example.com")]),
        (' "A \\"Q\\" B" <q@example.com>', [addr('A "Q" B', "q@example.com")]),
        (" Jane   Q.  Doe <jane@example.com>", [addr("Jane Q. Doe", "jane@example.com")]),
        # A comment after a bare addr-spec names it; anywhere else it is dropped.
        (" jane@example.com (Jane Doe)", [addr("Jane Doe", "jane@example.com")]),
        (" Jane <jane@example.com> (work)", [addr("Jane", "jane@example.com")]),
        (" (first) jane@example.com", [addr(None, "jane@example.com")]),
        (" jane@example.com (=?UTF-8?Q?J=C3=A4ne?=)", [addr("Jäne", "jane@example.com")]),
        (" =?ISO-8859-1?Q?Andr=E9?= Pirard <p@x.be>", [addr("André Pirard", "p@x.be")]),
        (' "=?UTF-8?B?SsO2cmc=?=" <j@x.de>', [addr("Jörg", "j@x.de")]),
        # Folding inside a quoted display name unfolds; outer spaces go.
        (' "  Folded\r\n Name " <f@x>', [addr("Folded Name", "f@x")]),
        (" undisclosed-recipients:;", []),
        (" Team: a@x, b@y;", [addr(None, "a@x"), addr(None, "b@y")]),
        (" a@x,, ,b@y,", [addr(None, "a@x"), addr(None, "b@y")]),
        (" <@relay1,@relay2:user@host>", [addr(None, "user@host")]),
        (' "john doe"@example.com', [addr(None, '"john doe"@example.com')]),
        (" jane @ example.com", [addr(None, "jane@example.com")]),
        (" <user@[IPv6:2001:db8::1]>", [addr(None, "user@[IPv6:2001:db8::1]")]),
        # Invalid input: best effort, never an error.
        (" Jane Doe jane@example.com", [addr("Jane Doe", "jane@example.com")]),
        (" Broken <broken@example.com", [addr("Broken", "broken@example.com")]),
        (' "unterminated <x@y>', [addr(None, '"unterminated <x@y>')]),
        (" <>", [addr(None, "")]),
        (" just-a-name", [addr(None, "just-a-name")]),
        ("", []),
        (" ;;;:::,,,", []),
    ],
)
def test_addresses(value: str, expected: list[dict[str, Any]]) -> None:
    assert as_addresses(value) == expected


def test_grouped_addresses_spec_example() -> None:
    assert as_grouped_addresses(SPEC_EXAMPLE) == [
        {"name": None, "addresses": [addr("James Smythe", "james@example.com")]},
        {
            "name": "Friends",
            "addresses": [addr(None, "jane@example.com"), addr("John Smîth", "john@example.com")],
        },
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" undisclosed-recipients:;", [{"name": "undisclosed-recipients", "addresses": []}]),
        (
            " a@x, G: b@y;, c@z, d@z",
            [
                {"name": None, "addresses": [addr(None, "a@x")]},
                {"name": "G", "addresses": [addr(None, "b@y")]},
                {"name": None, "addresses": [addr(None, "c@z"), addr(None, "d@z")]},
            ],
        ),
        # An unterminated group runs to the end; a second one closes the first.
        (" G: a@x, b@y", [{"name": "G", "addresses": [addr(None, "a@x"), addr(None, "b@y")]}]),
        (
            " G: a@x, H: b@y;",
            [
                {"name": "G", "addresses": [addr(None, "a@x")]},
                {"name": "H", "addresses": [addr(None, "b@y")]},
            ],
        ),
        (
            ' "=?UTF-8?Q?=C3=89quipe?=": e@x;',
            [{"name": "Équipe", "addresses": [addr(None, "e@x")]}],
        ),
        ("", []),
    ],
)
def test_grouped_addresses(value: str, expected: list[dict[str, Any]]) -> None:
    assert as_grouped_addresses(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Hello", "Hello"),
        ("   Hello  ", "Hello  "),
        (" Hello\r\n world", "Hello world"),
        (" =?UTF-8?Q?caf=C3=A9?=", "café"),
        (" =?utf-8?b?Y2Fmw6k=?=", "café"),
        (" =?ISO-8859-1?Q?caf=E9?= au lait", "café au lait"),
        # White space between adjacent encoded-words disappears, elsewhere it stays.
        (" =?UTF-8?Q?a?= =?UTF-8?Q?b?=  c", "ab  c"),
        (" =?UTF-8?Q?a?=\r\n =?UTF-8?Q?_b?=", "a b"),
        # A character split over two encoded-words.
        (" =?UTF-8?B?4o?= =?UTF-8?B?gqw=?=", "€"),
        # Placement rules: not delimited by white space, so not decoded.
        (" x=?UTF-8?Q?a?=", "x=?UTF-8?Q?a?="),
        (" =?UTF-8?Q?a?=,", "=?UTF-8?Q?a?=,"),
        (" =?UTF-8?Q?a b?=", "=?UTF-8?Q?a b?="),
        (" =?x-unknown?Q?a?=", "=?x-unknown?Q?a?="),
        (" =?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        # Control characters and NULs in encoded-words are dropped.
        (" =?UTF-8?Q?a=00b=07c?=", "abc"),
        # Malformed octets become U+FFFD; language suffixes (RFC 2231) are accepted.
        (" =?UTF-8?Q?bad=FF?=", "bad\ufffd"),
        (" =?UTF-8*en?Q?hi?=", "hi"),
        # NFC: e + combining acute becomes é.
        (" =?UTF-8?Q?e=CC=81?=", "\u00e9"),
        ("", ""),
    ],
)
def test_text(value: str, expected: str) -> None:
    assert as_text(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" <a@b>", ["a@b"]),
        (" <a@b> <c@d>\r\n <e@f>", ["a@b", "c@d", "e@f"]),
        (" <a@b> (comment <x@y>) <c@d>", ["a@b", "c@d"]),
        (" Your message of Monday <a@b>", ["a@b"]),
        (" < a@b >", ["a@b"]),
        (" bare@id", ["bare@id"]),
        (" <>", None),
        (" nonsense", None),
        (" two words@x", None),
        ("", None),
    ],
)
def test_message_ids(value: str, expected: list[str] | None) -> None:
    assert as_message_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" Tue, 10 Jul 2018 11:03:11 +1000", "2018-07-10T11:03:11+10:00"),
        (" Tue, 10 Jul 2018 11:03:11 +1000 (AEST)", "2018-07-10T11:03:11+10:00"),
        (" 10 Jul 2018 11:03:11 -0230", "2018-07-10T11:03:11-02:30"),
        (" Tue, 10 Jul 2018 11:03:11 +0000", "2018-07-10T11:03:11Z"),
        (" Tue, 10 Jul 2018 11:03:11 -0000", "2018-07-10T11:03:11Z"),
        (" Tue, 10 Jul 2018 11:03 GMT", "2018-07-10T11:03:00Z"),
        (" Tue, 10 Jul 2018 11:03:11 EST", "2018-07-10T11:03:11-05:00"),
        (" Tue, 10 Jul 2018 11:03:11 PDT", "2018-07-10T11:03:11-07:00"),
        (" Tue, 10 Jul 2018 11:03:11", "2018-07-10T11:03:11Z"),
        (" Tue,\r\n 1 Jul 18 01:02:03 +0100", "2018-07-01T01:02:03+01:00"),
        (" 1 Jan 99 00:00:00 +0000", "1999-01-01T00:00:00Z"),
        (" Wednesday, 1 January 2020 10:00:00 +0100", "2020-01-01T10:00:00+01:00"),
        (" Tue, 31 Dec 2016 23:59:60 +0000", "2016-12-31T23:59:59Z"),
        (" Tue, 32 Jul 2018 11:03:11 +0000", None),
        (" Tue, 10 Foo 2018 11:03:11 +0000", None),
        (" Tue, 10 Jul 2018 11:03:11 +9999", None),
        (" yesterday", None),
        (" 2018-07-10T11:03:11Z", None),
        ("", None),
    ],
)
def test_date(value: str, expected: str | None) -> None:
    assert as_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" <mailto:list@example.com?subject=help>", ["mailto:list@example.com?subject=help"]),
        (
            " <mailto:leave@example.com>,\r\n <https://example.com/unsub>",
            ["mailto:leave@example.com", "https://example.com/unsub"],
        ),
        (" <https://example.com/a\r\n b> (comment)", ["https://example.com/ab"]),
        (" (comment <mailto:x@y>) <mailto:a@b>", ["mailto:a@b"]),
        (" NO (posting not allowed)", None),
        ("", None),
    ],
)
def test_urls(value: str, expected: list[str] | None) -> None:
    assert as_urls(value) == expected


def test_raw_replaces_invalid_utf8_and_drops_nul() -> None:
    headers, _ = parse_header_block(b"Subject: caf\xe9\x00!\r\nX-Utf8: \xc3\xa9\r\n\r\n")
    assert header_value(headers, "subject") == " caf\ufffd!"
    # The parsed forms read undeclared 8-bit as windows-1252 when it is not UTF-8.
    assert header_value(headers, "Subject", "Text") == "café!"
    assert header_value(headers, "X-Utf8") == " é"
    assert header_value(headers, "X-Utf8", "Text") == "é"


def test_header_value_last_all_and_absent() -> None:
    headers = [Header("Subject", b" one"), Header("X-A", b" a"), Header("SUBJECT", b" two")]
    assert header_value(headers, "subject") == " two"
    assert header_value(headers, "Subject", "Text", all_instances=True) == ["one", "two"]
    assert header_value(headers, "Missing") is None
    assert header_value(headers, "Missing", "Addresses", all_instances=True) == []


def test_header_block_folding_and_raw_offsets() -> None:
    block = b"To: a@x,\r\n\tb@y\r\nX-Empty:\r\nbad line\r\nSubject: no\r\n\r\nbody"
    headers, body_start = parse_header_block(block)
    assert [(h.name, h.value) for h in headers] == [("To", b" a@x,\r\n\tb@y"), ("X-Empty", b"")]
    assert block[body_start:].startswith(b"bad line")
