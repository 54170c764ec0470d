from __future__ import annotations

import pytest

from bridge.mime import HeaderProperty, form_allowed, parse_header_property


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ("header:Subject", HeaderProperty("Subject")),
        ("header:subject:all", HeaderProperty("subject", "Raw", True)),
        ("header:Subject:asText", HeaderProperty("Subject", "Text")),
        ("header:From:asAddresses:all", HeaderProperty("From", "Addresses", True)),
        ("header:Resent-To:asGroupedAddresses", HeaderProperty("Resent-To", "GroupedAddresses")),
        ("header:References:asMessageIds", HeaderProperty("References", "MessageIds")),
        ("header:Resent-Date:asDate:all", HeaderProperty("Resent-Date", "Date", True)),
        ("header:List-Post:asURLs", HeaderProperty("List-Post", "URLs")),
        ("header:List-Id:asText", HeaderProperty("List-Id", "Text")),
        ("header:Received:asRaw:all", HeaderProperty("Received", "Raw", True)),
        # Fields outside RFC 5322 and RFC 2369 take every form.
        ("header:X-Foo:asDate", HeaderProperty("X-Foo", "Date")),
        ("header:X-Foo:asURLs", HeaderProperty("X-Foo", "URLs")),
        ("header:List-Id:asAddresses", HeaderProperty("List-Id", "Addresses")),
        ("header:!#~", HeaderProperty("!#~")),
    ],
)
def test_valid(prop: str, expected: HeaderProperty) -> None:
    assert parse_header_property(prop) == expected


@pytest.mark.parametrize(
    "prop",
    [
        "header:",
        "header",
        "Header:Subject",
        "subject",
        "header:From:asDate",
        "header:Subject:asAddresses",
        "header:Date:asText",
        "header:FROM:asText",
        "header:Received:asText",
        "header:List-Unsubscribe:asText",
        "header:Message-ID:asAddresses",
        "header:X-Foo:asUnknown",
        "header:X-Foo:astext",
        "header:X-Foo:as",
        "header:X-Foo:Text",
        "header:X-Foo:all:asText",
        "header:X-Foo:asText:all:all",
        "header:X-Foo:ALL",
        "header:X Foo",
        "header:X-Föo",
    ],
)
def test_invalid(prop: str) -> None:
    assert parse_header_property(prop) is None


def test_form_allowed_is_case_insensitive_in_the_name() -> None:
    assert form_allowed("REPLY-TO", "GroupedAddresses")
    assert not form_allowed("reply-to", "Text")
    assert form_allowed("reply-to", "Raw")
