"""Splitting a header block into fields, keeping every octet of each value.

A header block ends at the first empty line, or at the first line that can be neither a
field nor a continuation: such a line is taken as the start of the body, as Python's
feedparser does, so a part that lacks its blank line loses nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.mime.charset import decode_utf8_or_cp1252

# RFC 5322 §3.6.8 field name, plus the obsolete white space before the colon (§4.5).
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n\Z")
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


@dataclass(frozen=True, slots=True)
class Header:
    """One header field: its name as written and its value's octets after the colon."""

    name: str
    value: bytes

    @property
    def raw(self) -> str:
        """RFC 8621 Raw form: invalid UTF-8 becomes U+FFFD and NULs are dropped."""
        return self.value.decode("utf-8", "replace").replace("\x00", "")

    @property
    def text(self) -> str:
        """The value as text for the parsed forms: unfolded, with undeclared 8-bit octets
        read as UTF-8 or else windows-1252, since real senders use one or the other."""
        return unfold(decode_utf8_or_cp1252(self.value).replace("\x00", ""))


def unfold(value: str) -> str:
    """RFC 5322 §2.2.3 unfolding: every CRLF followed by white space goes."""
    if "\n" not in value:
        return value
    return _FOLD.sub("", value)


def strip_comments(value: str) -> str:
    """Replace RFC 5322 comments by a space, innermost first so nested ones go too; nesting
    deeper than a few levels is left alone rather than costing a pass per level."""
    for _ in range(8):
        if "(" not in value:
            break
        value, count = _COMMENT.subn(" ", value)
        if not count:
            break
    return value


def parse_header_block(
    buf: bytes, start: int = 0, end: int | None = None
) -> tuple[list[Header], int]:
    """The fields in ``buf[start:end]`` and the offset where the body begins."""
    if end is None:
        end = len(buf)
    headers: list[Header] = []
    name: str | None = None
    value_start = value_end = 0
    pos = start
    body_start = end
    while pos < end:
        newline = buf.find(b"\n", pos, end)
        line_end = end if newline == -1 else newline + 1
        content_end = line_end
        if newline != -1:
            content_end = newline - 1 if newline > pos and buf[newline - 1] == 0x0D else newline
        if content_end == pos:
            body_start = line_end
            break
        if buf[pos] in b" \t":
            if name is None:
                body_start = pos
                break
            value_end = content_end
            pos = line_end
            continue
        match = _FIELD.match(buf, pos, content_end)
        if match is None:
            body_start = pos
            break
        if name is not None:
            headers.append(Header(name, buf[value_start:value_end]))
        name = match.group(1).decode("ascii")
        value_start, value_end = match.end(), content_end
        pos = line_end
    if name is not None:
        headers.append(Header(name, buf[value_start:value_end]))
    return headers, body_start


def find_all(headers: Iterable[Header], name: str) -> list[Header]:
    lowered = name.lower()
    return [header for header in headers if header.name.lower() == lowered]


def find_last(headers: Sequence[Header], name: str) -> Header | None:
    lowered = name.lower()
    for header in reversed(headers):
        if header.name.lower() == lowered:
            return header
    return None
