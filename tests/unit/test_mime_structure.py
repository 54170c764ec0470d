from __future__ import annotations

from pathlib import Path

from bridge.mime import parse_message
from bridge.mime.structure import MAX_DEPTH

CORPUS = Path(__file__).parent / "mime_corpus"


def sections(raw: bytes, prefix: str = "") -> list[tuple[str | None, str]]:
    return [(part.section, part.type) for part in parse_message(raw, section_prefix=prefix).walk()]


def test_single_part_message_is_part_1() -> None:
    raw = b"Subject: x\r\n\r\nhello\r\n"
    parsed = parse_message(raw)
    assert sections(raw) == [("1", "text/plain")]
    assert parsed.root.part_id == "1"
    assert parsed.part_content("1") == b"hello\r\n"
    # The root part's headers are the message's.
    assert parsed.root.headers == parsed.headers


def test_nested_sections_follow_imap() -> None:
    raw = (CORPUS / "list-footer.eml").read_bytes()
    assert sections(raw) == [
        (None, "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "multipart/mixed"),
        ("2.1", "multipart/alternative"),
        ("2.1.1", "multipart/mixed"),
        ("2.1.1.1", "text/plain"),
        ("2.1.1.2", "image/jpeg"),
        ("2.1.1.3", "text/plain"),
        ("2.1.2", "multipart/related"),
        ("2.1.2.1", "text/html"),
        ("2.1.2.2", "image/jpeg"),
        ("2.2", "image/jpeg"),
        ("2.3", "application/x-excel"),
        ("2.4", "message/rfc822"),
        ("3", "text/plain"),
    ]
    parsed = parse_message(raw)
    assert parsed.part("2.1") is None  # a multipart has no part id
    assert parsed.part_content("2.1.2.1") == b"<p>E: the HTML version</p>"
    assert parsed.part_content("2.1.1.2") == b"\xff\xd8\xff"
    assert parsed.part_content("9") is None


def test_attached_message_parses_with_its_section_prefix() -> None:
    outer = parse_message((CORPUS / "attached-message.eml").read_bytes())
    attached = outer.part_content("2")
    assert attached is not None and attached.startswith(b"Message-ID: <alt-2@example.com>")
    inner = parse_message(attached, section_prefix="2")
    assert sections(attached, "2") == [
        (None, "multipart/alternative"),
        ("2.1", "text/plain"),
        ("2.2", "text/html"),
    ]
    assert inner.part_content("2.2") == b"<p>Sure, 12:30 works.</p>"
    # A non-multipart attached message has its body at <n>.1.
    assert sections(b"Subject: x\r\n\r\nbody", "4") == [("4.1", "text/plain")]


def test_offsets_address_the_raw_message() -> None:
    raw = (CORPUS / "related-attachment.eml").read_bytes()
    parsed = parse_message(raw)
    pdf = parsed.part("2")
    assert pdf is not None
    assert raw[pdf.header_start :].startswith(b"Content-Type: application/pdf")
    assert parsed.raw_body(pdf) == raw[pdf.body_start : pdf.end]
    assert parsed.raw_body(pdf).startswith(b"JVBERi0xLjQK") and parsed.raw_body(pdf).endswith(b"K")
    assert parsed.part_content("2").startswith(b"%PDF-1.4")  # type: ignore[union-attr]


def test_bare_lf_and_transport_padding_on_delimiters() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=x\n\n--x  \nContent-Type: text/html\n\n"
        b"<p>a</p>\n--x\t\n\nplain\n--x-- \nepilogue\n--x\nignored\n"
    )
    parsed = parse_message(raw)
    assert sections(raw) == [(None, "multipart/mixed"), ("1", "text/html"), ("2", "text/plain")]
    assert parsed.part_content("1") == b"<p>a</p>"
    assert parsed.part_content("2") == b"plain"


def test_boundary_prefix_lines_are_content() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--bb\r\n--b-x\r\n--b--\r\n"
    assert parse_message(raw).part_content("1") == b"--bb\r\n--b-x"


def test_missing_close_delimiter_ends_at_end_of_parent() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n"
    parsed = parse_message(raw)
    assert parsed.part_content("1") == b"one"
    assert parsed.part_content("2") == b"two\r\n"


def test_multipart_without_boundary_is_text() -> None:
    assert sections(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n") == [("1", "text/plain")]


def test_multipart_without_delimiters_has_no_parts() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno delimiter here\r\n"
    assert sections(raw) == [(None, "multipart/mixed")]


def test_digest_children_default_to_message() -> None:
    raw = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: a\r\n\r\nA\r\n"
        b"--d\r\nContent-Type: text/plain\r\n\r\nB\r\n--d--\r\n"
    )
    assert sections(raw) == [
        (None, "multipart/digest"),
        ("1", "message/rfc822"),
        ("2", "text/plain"),
    ]


def test_part_without_headers_or_blank_line() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nno headers\r\n--b--\r\n"
    assert parse_message(raw).part_content("1") == b"no headers"


def test_mbox_from_line_is_skipped() -> None:
    parsed = parse_message(b"From someone Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n")
    assert [header.name for header in parsed.headers] == ["Subject"]


def test_nesting_is_bounded() -> None:
    raw = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
        for level in range(200)
    )
    parts = list(parse_message(raw).walk())
    assert len(parts) == MAX_DEPTH + 1
    assert parts[-1].type == "application/octet-stream"
    assert parts[-1].part_id is not None


def test_empty_input() -> None:
    parsed = parse_message(b"")
    assert parsed.headers == []
    assert parsed.part_content("1") == b""
