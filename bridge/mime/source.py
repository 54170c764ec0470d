"""Where a parsed message's octets live: in memory, or in a local file read a window at a
time.

The parser (``bridge.mime.structure``) asks a source for three things: a part's header
block, the delimiter lines between two offsets, and a span of octets, whole or in chunks.
``BytesSource`` answers from a ``bytes`` exactly as the parser always has; ``FileSource``
answers from a file (a spooled upstream message, an upload) reading at most a window of
``WINDOW`` octets at once, so parsing a 50 MB message holds a megabyte or two of it.

A file source gives the same answers as the bytes would, except on input no mail program
writes: a header block longer than ``MAX_HEADER_BLOCK`` ends there (the rest is body), and
a line longer than ``MAX_LINE`` can be cut, so a delimiter line that long is not seen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import BinaryIO

from bridge.mime.headers import Header, parse_header_block

WINDOW = 1 << 20
MAX_HEADER_BLOCK = 4 << 20
# A window that holds no line break grows by up to this much to reach one.
MAX_LINE = 1 << 16


class BytesSource:
    """A message held in memory."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.size = len(raw)

    def starts_with(self, prefix: bytes) -> bool:
        return self.raw.startswith(prefix)

    def find(self, needle: bytes, start: int) -> int:
        return self.raw.find(needle, start)

    def header_block(self, start: int, end: int) -> tuple[list[Header], int]:
        return parse_header_block(self.raw, start, end)

    def delimiters(self, pattern: re.Pattern[bytes], start: int, end: int) -> Iterator[re.Match]:
        return pattern.finditer(self.raw, start, end)

    def byte(self, offset: int) -> int:
        return self.raw[offset]

    def read(self, start: int, end: int) -> bytes:
        return self.raw[start:end]

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        if end > start:
            yield self.raw[start:end]


class _Shifted:
    """A match in a window, with its offsets in the whole message."""

    __slots__ = ("_match", "_shift")

    def __init__(self, match: re.Match[bytes], shift: int) -> None:
        self._match = match
        self._shift = shift

    def start(self) -> int:
        return self._match.start() + self._shift

    def end(self) -> int:
        return self._match.end() + self._shift

    def group(self, index: int) -> bytes | None:
        return self._match.group(index)


class FileSource:
    """A message in a file, read with ``os.pread`` (so the file's position is no state of
    ours, and other readers of the handle are not disturbed)."""

    def __init__(self, handle: BinaryIO, size: int | None = None) -> None:
        self.handle = handle
        self._fd = handle.fileno()
        self.size = os.fstat(self._fd).st_size if size is None else size

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if end <= start:
            return b""
        pieces: list[bytes] = []
        while start < end:
            piece = os.pread(self._fd, end - start, start)
            if not piece:
                break
            pieces.append(piece)
            start += len(piece)
        return b"".join(pieces)

    def starts_with(self, prefix: bytes) -> bool:
        return self.read(0, len(prefix)) == prefix

    def find(self, needle: bytes, start: int) -> int:
        """Like ``bytes.find`` for a short ``needle``, a window at a time."""
        while start < self.size:
            window = self.read(start, start + WINDOW + len(needle))
            found = window.find(needle)
            if found != -1:
                return start + found
            start += WINDOW
        return -1

    def header_block(self, start: int, end: int) -> tuple[list[Header], int]:
        block = self.read(start, min(end, start + MAX_HEADER_BLOCK))
        headers, body_start = parse_header_block(block)
        return headers, start + body_start

    def delimiters(
        self, pattern: re.Pattern[bytes], start: int, end: int
    ) -> Iterator[re.Match | _Shifted]:
        """``pattern.finditer`` over ``[start, end)``, a window at a time. Each window ends
        just after a line break (or at ``end``) and carries the octet before its start, so
        ``^`` and ``$`` see what they would see in the whole message."""
        position = start
        while position < end:
            limit = min(end, position + WINDOW)
            lead = 1 if position > 0 else 0
            window = self.read(position - lead, limit)
            if limit < end:
                newline = window.rfind(b"\n")
                if newline >= lead:
                    window = window[: newline + 1]
                else:
                    more = self.read(limit, min(end, limit + MAX_LINE))
                    newline = more.find(b"\n")
                    window += more if newline == -1 else more[: newline + 1]
            for match in pattern.finditer(window, lead):
                yield _Shifted(match, position - lead)
            position += len(window) - lead

    def byte(self, offset: int) -> int:
        return self.read(offset, offset + 1)[0]

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        while start < end:
            piece = self.read(start, min(end, start + WINDOW))
            if not piece:
                return
            yield piece
            start += len(piece)


MessageSource = BytesSource | FileSource
