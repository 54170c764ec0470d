"""The MIME tree of a message, with byte offsets into the raw message.

Part ids are IMAP section numbers (RFC 3501 §6.4.5), so ``BODY.PEEK[<partId>]`` fetches a
part's (still transfer-encoded) body from the server:

- a message whose body is not multipart has one part, "1", its body;
- the children of a top-level multipart are "1", "2", ...; the children of a multipart at
  "2" are "2.1", "2.2", ...; a multipart itself has no part id (RFC 8621 §4.1.4);
- a message/rfc822 part at "3" is a leaf here, as in JMAP's bodyStructure, and its part id
  fetches the whole attached message. Parsing that with ``section_prefix="3"`` numbers its
  own parts as IMAP does: "3.1" for a non-multipart body, else "3.1", "3.2", ... for the
  children of its multipart body.

The splitting is done here on bytes rather than by ``email.parser`` so every part keeps its
exact offsets and attached messages are never re-serialised. Delimiter lines follow RFC 2046
§5.1.1: ``--boundary`` at the start of a line, optionally ``--``, then only white space. A
missing close delimiter ends the last part at the end of its parent; a multipart without a
boundary parameter is unusable and read as text/plain (RFC 2045 §5.2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from bridge.mime.headers import Header
from bridge.mime.params import MimeFields, mime_fields
from bridge.mime.source import BytesSource, MessageSource
from bridge.mime.transfer import KNOWN_ENCODINGS, decode_transfer, stream_decoder

# Deeper nesting is an attack, not mail; such a multipart is kept as one opaque leaf.
MAX_DEPTH = 40
# A part body up to this size is decoded whole, as it always was; a larger one is decoded
# chunk by chunk, and only as much of it is kept as the caller asks for.
WHOLE_PART_LIMIT = 1 << 20


@dataclass(eq=False, slots=True)
class MimePart:
    """One MIME entity. ``section`` is its IMAP section number, None only for the top-level
    multipart (which IMAP addresses as ``TEXT``)."""

    section: str | None
    headers: list[Header]
    fields: MimeFields
    header_start: int
    body_start: int
    end: int
    subparts: list[MimePart] = field(default_factory=list)

    @property
    def is_multipart(self) -> bool:
        return self.fields.type.startswith("multipart/")

    @property
    def part_id(self) -> str | None:
        return None if self.is_multipart else self.section

    @property
    def type(self) -> str:
        return self.fields.type

    @property
    def name(self) -> str | None:
        return self.fields.name

    @property
    def disposition(self) -> str | None:
        return self.fields.disposition

    @property
    def cid(self) -> str | None:
        return self.fields.cid


@dataclass(eq=False, slots=True)
class ParsedMessage:
    """A message parsed once: its header fields and the tree of its parts. Its octets stay
    in ``source`` (memory or a file), read again for each part's content."""

    source: MessageSource
    headers: list[Header]
    root: MimePart
    _by_id: dict[str, MimePart] = field(default_factory=dict)
    _decoded: dict[str, tuple[bytes, bool]] = field(default_factory=dict)
    _sizes: dict[str, int] = field(default_factory=dict)

    def walk(self) -> Iterator[MimePart]:
        """Every part, depth first, parents before children."""
        stack = [self.root]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.subparts))

    def part(self, part_id: str) -> MimePart | None:
        return self._by_id.get(part_id)

    @property
    def size(self) -> int:
        return self.source.size

    def raw_body(self, part: MimePart) -> bytes:
        """The part's body as it is in the message, still transfer-encoded."""
        return self.source.read(part.body_start, part.end)

    def is_small(self, part: MimePart) -> bool:
        """Whether the part's body is small enough to be decoded whole."""
        return part.end - part.body_start <= WHOLE_PART_LIMIT

    def content_chunks(self, part: MimePart) -> tuple[Iterator[bytes], Callable[[], bool]]:
        """The part's content, transfer-decoded a window at a time, and a function that
        tells, once the chunks are read, whether decoding hit a problem (as ``content``)."""
        decoder = stream_decoder(part.fields.transfer_encoding)

        def decoded() -> Iterator[bytes]:
            for chunk in self.source.chunks(part.body_start, part.end):
                if out := decoder.feed(chunk):
                    yield out
            if tail := decoder.finish():
                yield tail

        unknown = part.fields.transfer_encoding not in KNOWN_ENCODINGS
        return decoded(), lambda: unknown or decoder.problem

    def content_size(self, part: MimePart) -> int:
        """The length of the part's content, without holding a large one whole."""
        if part.part_id is None:
            return 0
        cached = self._sizes.get(part.part_id)
        if cached is None:
            if part.part_id in self._decoded:
                cached = len(self._decoded[part.part_id][0])
            elif self.is_small(part):
                # Not kept: an attachment's size is all a request may want of it.
                cached = len(self.decode(part)[0])
            else:
                cached = sum(len(chunk) for chunk in self.content_chunks(part)[0])
            self._sizes[part.part_id] = cached
        return cached

    def content(self, part: MimePart) -> tuple[bytes, bool]:
        """The part's body after transfer decoding, and whether that decoding hit a problem.
        Multiparts have no content of their own (they have no blob)."""
        if part.part_id is None:
            return b"", False
        cached = self._decoded.get(part.part_id)
        if cached is None:
            cached = self._decoded[part.part_id] = self.decode(part)
        return cached

    def decode(self, part: MimePart) -> tuple[bytes, bool]:
        """``content`` without keeping the result."""
        return decode_transfer(self.raw_body(part), part.fields.transfer_encoding)

    def part_content(self, part_id: str) -> bytes | None:
        """The octets a blob download of ``part_id`` returns, or None if there is no such
        part."""
        part = self._by_id.get(part_id)
        return None if part is None or part.part_id is None else self.content(part)[0]


@lru_cache(maxsize=256)
def _delimiter(boundary: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.MULTILINE)


def _split(buf: MessageSource, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The (start, end) of each body part between the delimiters in ``buf[start:end]``; the
    line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1)."""
    spans: list[tuple[int, int]] = []
    content_start: int | None = None
    for match in buf.delimiters(_delimiter(boundary), start, end):
        if content_start is not None:
            content_end = match.start()
            if content_end > content_start and buf.byte(content_end - 1) == 0x0A:
                content_end -= 1
                if content_end > content_start and buf.byte(content_end - 1) == 0x0D:
                    content_end -= 1
            spans.append((content_start, content_end))
        if match.group(1):
            return spans
        line_end = match.end()
        content_start = line_end + 1 if line_end < end else end
    if content_start is not None:
        spans.append((content_start, end))
    return spans


def _child_section(parent: str | None, prefix: str, index: int) -> str:
    base = parent if parent is not None else prefix
    return f"{base}.{index}" if base else str(index)


def _build(
    buf: MessageSource,
    headers: list[Header],
    span: tuple[int, int, int],
    section: str | None,
    prefix: str,
    default_type: str,
    depth: int,
) -> MimePart:
    header_start, body_start, end = span
    fields = mime_fields(headers, default_type)
    if fields.type.startswith("multipart/") and (not fields.boundary or depth >= MAX_DEPTH):
        fallback = "text/plain" if not fields.boundary else "application/octet-stream"
        charset = "us-ascii" if fallback == "text/plain" else None
        fields = dataclasses.replace(fields, type=fallback, charset=charset)
    if section is None and not fields.type.startswith("multipart/"):
        section = f"{prefix}.1" if prefix else "1"
    part = MimePart(section, headers, fields, header_start, body_start, end)
    if not part.is_multipart:
        return part
    boundary = (fields.boundary or "").encode("utf-8", "replace")
    child_default = "message/rfc822" if fields.type == "multipart/digest" else "text/plain"
    spans = _split(buf, body_start, end, boundary)
    for index, (child_start, child_end) in enumerate(spans, 1):
        child_headers, child_body = buf.header_block(child_start, child_end)
        part.subparts.append(
            _build(
                buf,
                child_headers,
                (child_start, child_body, child_end),
                _child_section(section, prefix, index),
                prefix,
                child_default,
                depth + 1,
            )
        )
    return part


def parse_message(raw: bytes | MessageSource, *, section_prefix: str = "") -> ParsedMessage:
    """Parse a message (RFC 5322 + MIME) once; never fails, whatever ``raw`` holds.

    ``raw`` is the message's octets, or a source to read them from (``bridge.mime.source``:
    a file source keeps a large message out of memory). ``section_prefix`` is the part id
    of this message inside an enclosing one, when ``raw`` is the content of a
    message/rfc822 part, so its part ids are the enclosing message's IMAP section numbers.
    """
    source = BytesSource(raw) if isinstance(raw, bytes) else raw
    start = 0
    if source.starts_with(b"From "):  # an mbox separator line, as left by some exporters
        newline = source.find(b"\n", 0)
        start = source.size if newline == -1 else newline + 1
    headers, body_start = source.header_block(start, source.size)
    root = _build(
        source, headers, (start, body_start, source.size), None, section_prefix, "text/plain", 0
    )
    message = ParsedMessage(source, headers, root)
    for part in message.walk():
        if part.part_id is not None:
            message._by_id[part.part_id] = part
    return message
