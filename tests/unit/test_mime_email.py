from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.mime import (
    email_properties,
    has_attachment,
    html_to_text,
    parse_message,
    preview_from_text,
    split_body,
    summary_from_headers,
    truncate_value,
)
from bridge.mime.charset import decode_bytes
from bridge.mime.transfer import decode_base64, decode_quoted_printable, decode_transfer

CORPUS = Path(__file__).parent / "mime_corpus"


def blob(part_id: str) -> str:
    return f"B{part_id}"


def props(raw: bytes, properties: list[str], **kwargs: Any) -> dict[str, Any]:
    return email_properties(parse_message(raw), properties, blob_id_for=blob, **kwargs)


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


# --- truncation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("héllo", 0, ("héllo", False)),
        ("héllo", 6, ("héllo", False)),
        ("héllo", 5, ("héll", True)),
        ("héllo", 2, ("h", True)),  # "é" is two octets: never cut in half
        ("h€", 3, ("h", True)),
        ("h€", 4, ("h€", False)),
        ("😀😀", 7, ("😀", True)),
        ("😀", 3, ("", True)),
    ],
)
def test_truncate_on_character_boundary(value: str, limit: int, expected: tuple[str, bool]) -> None:
    assert truncate_value(value, limit) == expected
    assert len(truncate_value(value, limit)[0].encode()) <= (limit or len(value.encode()))


def test_truncate_html_not_inside_a_tag() -> None:
    html = '<p>Hi <a href="https://example.com">there</a></p>'
    assert truncate_value(html, 20, is_html=True) == ("<p>Hi ", True)
    assert truncate_value(html, 20, is_html=False) == ('<p>Hi <a href="https', True)
    assert truncate_value(html, 40, is_html=True) == (
        '<p>Hi <a href="https://example.com">ther',
        True,
    )
    assert truncate_value(html, 43, is_html=True) == (
        '<p>Hi <a href="https://example.com">there',
        True,
    )


def test_body_values_truncated_on_multibyte_boundary() -> None:
    raw = "Content-Type: text/plain; charset=utf-8\r\n\r\naéé".encode()
    values = props(raw, ["bodyValues"], fetch_all=True, max_body_value_bytes=4)["bodyValues"]
    assert values == {"1": {"value": "aé", "isEncodingProblem": False, "isTruncated": True}}


# --- bodyValues selection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, []),
        ({"fetch_text": True}, ["1.1"]),
        ({"fetch_html": True}, ["1.2"]),
        ({"fetch_text": True, "fetch_html": True}, ["1.1", "1.2"]),
        ({"fetch_all": True}, ["1.1", "1.2", "1.3"]),  # text/calendar too, never the .ics
    ],
)
def test_body_value_flags(flags: dict[str, bool], expected: list[str]) -> None:
    values = props(corpus("calendar.eml"), ["bodyValues"], **flags)["bodyValues"]
    assert sorted(values) == expected


def test_html_in_text_body_is_fetched_by_fetch_text() -> None:
    values = props(corpus("list-headers.eml"), ["bodyValues"], fetch_text=True)["bodyValues"]
    assert list(values) == ["1"]


def test_text_parts_of_an_attached_message_are_not_body_values() -> None:
    values = props(corpus("attached-message.eml"), ["bodyValues"], fetch_all=True)["bodyValues"]
    assert list(values) == ["1"]


# --- body part properties --------------------------------------------------------------------


def test_body_properties_select_exactly() -> None:
    result = props(
        corpus("related-attachment.eml"),
        ["attachments", "bodyStructure"],
        body_properties=["partId", "headers", "header:Content-ID:asMessageIds", "subParts"],
    )
    logo = result["attachments"][0]
    assert logo["partId"] == "1.2.2"
    assert logo["header:Content-ID:asMessageIds"] == ["logo@example.net"]
    assert logo["headers"][0] == {"name": "Content-Type", "value": ' image/png; name="logo.png"'}
    assert logo["subParts"] is None
    assert set(logo) == {"partId", "headers", "header:Content-ID:asMessageIds", "subParts"}
    root = result["bodyStructure"]
    assert root["partId"] is None and len(root["subParts"]) == 2


def test_default_body_properties_keep_the_tree() -> None:
    root = props(corpus("alternative.eml"), ["bodyStructure"])["bodyStructure"]
    assert root["type"] == "multipart/alternative"
    assert root["blobId"] is None and root["size"] == 0
    assert [child["partId"] for child in root["subParts"]] == ["1", "2"]
    assert "subParts" not in root["subParts"][0]


def test_only_requested_properties_and_no_metadata() -> None:
    result = props(corpus("plain.eml"), ["id", "subject", "header:From:asDate", "blobId"])
    assert result == {"subject": "Lunch on Friday?"}


def test_header_property_keeps_requested_capitalisation() -> None:
    result = props(corpus("duplicate-headers.eml"), ["header:SUBJECT:asText:all"])
    assert result == {"header:SUBJECT:asText:all": ["First subject", "Second subject"]}


# --- decomposition and hasAttachment ---------------------------------------------------------


@dataclass(eq=False)
class Part:
    """A stand-in for a BODYSTRUCTURE node: split_body needs only these attributes."""

    label: str
    type: str
    disposition: str | None = None
    name: str | None = None
    cid: str | None = None
    subparts: list[Part] = field(default_factory=list)


def labels(parts: list[Part]) -> list[str]:
    return [part.label for part in parts]


def test_split_body_spec_example_on_any_tree() -> None:
    def leaf(label: str, mime_type: str, disposition: str | None = None) -> Part:
        return Part(label, mime_type, disposition)

    root = Part(
        "root",
        "multipart/mixed",
        subparts=[
            leaf("A", "text/plain", "inline"),
            Part(
                "m2",
                "multipart/mixed",
                subparts=[
                    Part(
                        "alt",
                        "multipart/alternative",
                        subparts=[
                            Part(
                                "m3",
                                "multipart/mixed",
                                subparts=[
                                    leaf("B", "text/plain", "inline"),
                                    leaf("C", "image/jpeg", "inline"),
                                    leaf("D", "text/plain", "inline"),
                                ],
                            ),
                            Part(
                                "rel",
                                "multipart/related",
                                subparts=[leaf("E", "text/html"), leaf("F", "image/jpeg")],
                            ),
                        ],
                    ),
                    leaf("G", "image/jpeg", "attachment"),
                    leaf("H", "application/x-excel"),
                    leaf("J", "message/rfc822"),
                ],
            ),
            leaf("K", "text/plain", "inline"),
        ],
    )
    text, html, attachments = split_body(root)
    assert labels(text) == ["A", "B", "C", "D", "K"]
    assert labels(html) == ["A", "E", "K"]
    assert labels(attachments) == ["C", "F", "G", "H", "J"]


def test_split_body_alternative_with_html_only_fills_text_body() -> None:
    root = Part("alt", "multipart/alternative", subparts=[Part("H", "text/html")])
    text, html, attachments = split_body(root)
    assert labels(text) == ["H"] and labels(html) == ["H"] and attachments == []


def test_split_body_alternative_nested_where_javascript_would_throw() -> None:
    # alternative > mixed(text/plain, alternative(text/plain, text/html)): the inner
    # alternative sees htmlBody already null; its HTML part stays reachable.
    inner = Part(
        "alt2",
        "multipart/alternative",
        subparts=[Part("P2", "text/plain"), Part("H2", "text/html")],
    )
    mixed = Part("mix", "multipart/mixed", subparts=[Part("P1", "text/plain"), inner])
    root = Part("alt", "multipart/alternative", subparts=[mixed])
    text, html, attachments = split_body(root)
    assert labels(text) == ["P1", "P2"]
    assert labels(html) == ["P1", "P2"]
    assert labels(attachments) == ["H2"]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], False),
        ([Part("a", "application/pdf", "attachment")], True),
        ([Part("a", "application/pdf")], True),
        ([Part("a", "image/png", "inline")], False),
        ([Part("a", "image/png", None, cid="logo@x")], False),  # embedded in the HTML
        ([Part("a", "image/png", "attachment", cid="logo@x")], True),
        ([Part("a", "image/png", "inline"), Part("b", "text/calendar")], True),
    ],
)
def test_has_attachment(parts: list[Part], expected: bool) -> None:
    assert has_attachment(parts) is expected


# --- preview ------------------------------------------------------------------------------


def test_preview_collapses_and_caps_at_256() -> None:
    assert preview_from_text("  a\r\n\r\n\tb   c ") == "a b c"
    long = ("word " * 100).strip()
    preview = preview_from_text(long)
    assert len(preview) == 256 and long.startswith(preview)
    assert preview_from_text(" " * 10_000_000 + "x") == "x"


def test_preview_is_the_text_with_white_space_collapsed_then_cut() -> None:
    rng = random.Random(8621)
    for _ in range(5_000):
        text = "".join(
            rng.choice("ab c\t\n\u00a0\u2003\u3000é") for _ in range(rng.randint(0, 700))
        )
        limit = rng.choice([0, 1, 2, 3, 10, 256])
        assert preview_from_text(text, limit) == " ".join(text.split())[:limit], (text, limit)


def test_html_to_text() -> None:
    markup = (
        "<html><head><title>T</title><style>p{}</style></head><body><!-- c -->"
        "<p>A&amp;B&nbsp;C</p><script>x()</script><br/>D</body></html>"
    )
    assert preview_from_text(html_to_text(markup)) == "A&B C D"
    assert preview_from_text(html_to_text("1 < 2 and 3 > 2")) == "1 < 2 and 3 > 2"


def test_preview_joins_text_body_parts() -> None:
    assert props(corpus("list-footer.eml"), ["preview"])["preview"] == (
        "A: list header B: text before the image D: text after the image K: list footer"
    )


# --- list views -------------------------------------------------------------------------------


def test_summary_from_headers() -> None:
    header_bytes = (
        b"From: =?UTF-8?Q?J=C3=B6rg?= <j@example.de>\r\nTo: a@x, b@y\r\nCc: c@z\r\n"
        b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
        b"Message-ID: <m@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <o@x> <p@x>\r\n\r\n"
    )
    summary = summary_from_headers(header_bytes)
    assert summary == {
        "messageId": ["m@x"],
        "inReplyTo": ["p@x"],
        "references": ["o@x", "p@x"],
        "sender": None,
        "from": [{"name": "Jörg", "email": "j@example.de"}],
        "to": [{"name": None, "email": "a@x"}, {"name": None, "email": "b@y"}],
        "cc": [{"name": None, "email": "c@z"}],
        "bcc": None,
        "replyTo": None,
        "subject": "Grüße",
        "sentAt": "2024-01-01T10:00:00+01:00",
    }
    assert summary_from_headers(header_bytes, ["subject", "header:Cc:asGroupedAddresses"]) == {
        "subject": "Grüße",
        "header:Cc:asGroupedAddresses": [
            {"name": None, "addresses": [{"name": None, "email": "c@z"}]}
        ],
    }


def test_summary_matches_full_parse() -> None:
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        full = email_properties(parse_message(raw), ["from", "subject", "sentAt"], blob_id_for=blob)
        header_end = raw.find(b"\r\n\r\n")
        header_bytes = raw if header_end == -1 else raw[: header_end + 4]
        assert summary_from_headers(header_bytes, ["from", "subject", "sentAt"]) == full, path.name


# --- charsets and transfer encodings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"plain", None, ("plain", False)),
        ("Grüße".encode(), None, ("Grüße", False)),  # unlabelled 8-bit that is UTF-8
        (b"caf\xe9", None, ("café", True)),  # unlabelled 8-bit that is not
        (b"caf\xe9", "ISO-8859-1", ("café", False)),
        (b"\x93quoted\x94", "iso-8859-1", ("\u201cquoted\u201d", False)),  # read as cp1252
        (b"\x81", "windows-1252", ("\x81", False)),
        ("naïve".encode(), "x-unknown", ("naïve", True)),
        (b"caf\xe9", "utf-8", ("caf\ufffd", True)),
        (b"abc", "hex", ("abc", True)),  # a Python codec, but no charset
        (b"\\u0041", "unicode_escape", ("\\u0041", True)),
        ("€".encode("utf-16"), "utf-16", ("€", False)),
        (b"+2D0-", "utf-7", ("\ufffd", False)),  # a lone surrogate cannot reach JSON
        (b"a\x00b", "utf-8", ("ab", False)),
        ("한".encode("cp949"), "ks_c_5601-1987", ("한", False)),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, expected: tuple[str, bool]) -> None:
    assert decode_bytes(data, charset) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"QUJD", (b"ABC", False)),
        (b"QU\r\nJD\r\n", (b"ABC", False)),
        (b"QQ", (b"A", False)),  # missing padding is repaired silently
        (b"QQ==", (b"A", False)),
        (b"QQ==QQ==", (b"A", True)),
        (b"QU!JD", (b"ABC", True)),
        (b"QUJDR", (b"ABC", True)),
        (b"", (b"", False)),
    ],
)
def test_decode_base64(data: bytes, expected: tuple[bytes, bool]) -> None:
    assert decode_base64(data) == expected


def test_decode_quoted_printable() -> None:
    data = b"soft=\r\nbreak =C3=A9 =3D x  \r\nkept=20\r\nbad =ZZ"
    assert decode_quoted_printable(data) == "softbreak é = x\r\nkept \r\nbad =ZZ".encode()


def test_unknown_transfer_encoding_is_identity_with_a_problem() -> None:
    assert decode_transfer(b"data", "x-uuencode") == (b"data", True)
    assert decode_transfer(b"data", "8bit") == (b"data", False)
