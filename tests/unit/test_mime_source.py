"""A message parsed from a file, a window at a time and with every part decoded chunk by
chunk, renders exactly as the same message parsed in memory."""

from __future__ import annotations

import base64
import json
import quopri
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from bridge.mime import email_properties, parse_message, source, structure
from bridge.mime.charset import decode_bytes, decode_stream
from bridge.mime.email_object import BodyValuesTooLarge, ValueBudget
from bridge.mime.source import FileSource
from tests.unit.test_mime_golden import MESSAGES, PROPERTIES


def render(raw: bytes | FileSource, **options: object) -> dict:
    return email_properties(
        parse_message(raw), PROPERTIES, blob_id_for=lambda part_id: f"B{part_id}",
        fetch_all=True, **options,
    )  # fmt: skip


@contextmanager
def file_with(raw: bytes) -> Iterator[BinaryIO]:
    with tempfile.TemporaryFile() as handle:
        handle.write(raw)
        handle.flush()
        yield handle


@pytest.fixture
def tiny_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of a few octets and no part small enough to decode whole: every boundary
    case of the windowed scan and the streamed decoding comes up in the corpus."""
    monkeypatch.setattr(source, "WINDOW", 7)
    monkeypatch.setattr(structure, "WHOLE_PART_LIMIT", 0)


@pytest.mark.parametrize("path", MESSAGES, ids=[path.stem for path in MESSAGES])
def test_corpus_renders_the_same_from_a_file(path: Path, tiny_windows: None) -> None:
    raw = path.read_bytes()
    with file_with(raw) as handle:
        from_file = render(FileSource(handle))
    assert json.dumps(from_file, sort_keys=True) == json.dumps(render(raw), sort_keys=True)


def big_message(text: bytes, encoding: str = "base64", charset: str = "utf-8") -> bytes:
    # Quoted-printable line breaks are the text's own, CRLF on the wire.
    encoded = (
        base64.encodebytes(text)
        if encoding == "base64"
        else quopri.encodestring(text.replace(b"\r\n", b"\n"))
    ).replace(b"\n", b"\r\n")
    return (
        b"Subject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + encoded
        + b"\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>tail</p>\r\n--b--\r\n"
    )  # fmt: skip


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_large_text_part_truncates_as_in_memory(encoding: str) -> None:
    text = ("Grüße aus Köln,\r\n" * 200_000).encode()  # 3.6 MB, decoded chunk by chunk
    raw = big_message(text, encoding)
    for max_bytes in (0, 1, 100, 4097):
        with file_with(raw) as handle:
            from_file = render(FileSource(handle), max_body_value_bytes=max_bytes)
        assert from_file == render(raw, max_body_value_bytes=max_bytes)
    with file_with(raw) as handle:
        sizes = render(FileSource(handle))["bodyStructure"]["subParts"]
    assert sizes[0]["size"] == len(text)


def test_a_late_invalid_octet_changes_the_whole_value() -> None:
    # Labelled US-ASCII: valid UTF-8 until the last octet, so it is all windows-1252.
    text = "é".encode() * 1_000_000 + b"\xff"
    raw = big_message(text, charset="us-ascii")
    with file_with(raw) as handle:
        from_file = render(FileSource(handle), max_body_value_bytes=10)
    assert from_file["bodyValues"]["1"] == {
        "value": "Ã©Ã©Ã",
        "isEncodingProblem": True,
        "isTruncated": True,
    }
    assert from_file == render(raw, max_body_value_bytes=10)


def test_body_values_share_one_budget() -> None:
    raw = big_message(b"x" * 3_000_000)
    with file_with(raw) as handle:
        parsed = parse_message(FileSource(handle))
        budget = ValueBudget(3_000_100)
        email_properties(parsed, ["bodyValues"], blob_id_for=str, fetch_all=True,
                         value_budget=budget)  # fmt: skip
        assert budget.left == 3_000_100 - 3_000_000 - len("<p>tail</p>")
        with pytest.raises(BodyValuesTooLarge):
            email_properties(parsed, ["bodyValues"], blob_id_for=str, fetch_all=True,
                             value_budget=budget)  # fmt: skip
        # Truncated values fit where whole ones do not.
        email_properties(parsed, ["bodyValues"], blob_id_for=str, fetch_all=True,
                         max_body_value_bytes=10, value_budget=budget)  # fmt: skip


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (b"plain ascii\r\nline two\r\n", None),
        ("naïve\r\ncafé".encode(), "us-ascii"),
        (b"caf\xe9 \x80 \r\n", "us-ascii"),
        (b"caf\xe9 \x81\r\r\n", "iso-8859-1"),
        ("日本語のテキスト\r\n".encode("shift_jis"), "shift_jis"),
        ("日本語\r\n".encode("shift_jis")[:-3] + b"\xff", "shift_jis"),
        (b"unknown label", "x-no-such-charset"),
        (b"\xef\xbb\xbfwith BOM\x00 and NUL\r", "utf-8"),
        (b"+ZeVnLIqe-", "utf-7"),
        (b"\xc3", "utf-8"),
    ],
)
def test_stream_decoding_is_whole_decoding(data: bytes, charset: str | None) -> None:
    text, problem = decode_bytes(data, charset)
    whole = text.replace("\r\n", "\n")
    for size in (1, 2, 3, 64):
        for limit in (0, 1, 5, 1000):
            streamed = decode_stream(lambda size=size: pieces(data, size), charset, limit)
            assert streamed == (whole[:limit], problem), (size, limit)
