"""Bytes to text in a declared charset, never failing.

Mail in the wild mislabels its charset all the time, so decoding follows the practice of the
WHATWG Encoding Standard where it differs from Python's codecs: Latin-1 labels mean
windows-1252 and the Chinese and Korean labels mean their Microsoft supersets. Each decoder
reports whether it had to guess or replace anything, which becomes ``isEncodingProblem``.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable, Iterable

# Labels Python does not know, or knows as a strict subset of what senders actually use.
_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "windows-874": "cp874",
    "x-gbk": "gbk",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "x-mac-roman": "mac-roman",
    "x-sjis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
}

# Python codecs that decode without error but are no charset a message could mean.
_NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "charmap"}
)

_ASCII_NAMES = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us", "us"})

# windows-1252 leaves five bytes undefined; those decode as their Latin-1 code points, so the
# decoder is total.
_CP1252_TABLE = {
    byte: bytes([byte]).decode("cp1252")
    for byte in range(0x80, 0xA0)
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Drop NULs and replace lone surrogates (UTF-7 can produce them), which JSON cannot carry."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text)


def decode_cp1252(data: bytes) -> str:
    return data.decode("latin-1").translate(_CP1252_TABLE)


def decode_utf8_or_cp1252(data: bytes) -> str:
    """For unlabelled 8-bit text: UTF-8 if it is valid UTF-8, else the legacy default."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_cp1252(data)


@functools.lru_cache(maxsize=256)  # a list view looks up the same few labels over and over
def lookup_codec(charset: str) -> str | None:
    """The Python codec name for a MIME charset label, or None if unknown."""
    label = charset.strip().strip('"').lower()
    label = _ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode ``data`` in ``charset``; returns (text, problem).

    ``charset`` None means none was declared (implicitly US-ASCII). 8-bit data labelled
    US-ASCII or unlabelled is taken as UTF-8 when it is valid UTF-8, which is what such mail
    almost always is, and only counts as a problem when that guess fails too.
    """
    label = (charset or "us-ascii").strip().strip('"').lower()
    if label in _ASCII_NAMES:
        if data.isascii():
            return clean_text(data.decode("ascii")), False
        try:
            return clean_text(data.decode("utf-8")), False
        except UnicodeDecodeError:
            return clean_text(decode_cp1252(data)), True
    codec = lookup_codec(label)
    if codec is None:
        return clean_text(data.decode("utf-8", "replace")), True
    if codec == "cp1252":
        return clean_text(decode_cp1252(data)), False
    try:
        return clean_text(data.decode(codec)), False
    except (UnicodeError, LookupError, ValueError):
        pass
    try:
        text = data.decode(codec, "replace")
    except (UnicodeError, LookupError, ValueError):
        text = data.decode("utf-8", "replace")
    return clean_text(text), True


class _TextPrefix:
    """Decoded text collected up to ``limit`` characters, cleaned as ``clean_text`` does and
    with CRLF made LF; a CR that ends one piece waits for the next."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.length = 0
        self._held_cr = False

    def add(self, text: str) -> None:
        if self.length > self.limit or not text:
            return
        text = clean_text(text)
        if self._held_cr:
            text = "\r" + text
        self._held_cr = text.endswith("\r")
        if self._held_cr:
            text = text[:-1]
        text = text.replace("\r\n", "\n")
        self.pieces.append(text)
        self.length += len(text)

    def text(self) -> str:
        tail = "\r" if self._held_cr else ""
        return ("".join(self.pieces) + tail)[: self.limit]


def _decode_prefix(
    chunks: Iterable[bytes], codec: str, errors: str, limit: int
) -> tuple[str, bool]:
    """(The first ``limit`` characters, whether decoding failed). The chunks are read to
    the end even once the prefix is full: a late invalid octet changes the whole answer
    (strict mode), and so does a late transfer-encoding problem (the caller's flag)."""
    prefix = _TextPrefix(limit)
    if codec == "cp1252":
        for chunk in chunks:
            prefix.add(decode_cp1252(chunk))
        return prefix.text(), False
    decoder = codecs.getincrementaldecoder(codec)(errors)
    try:
        for chunk in chunks:
            prefix.add(decoder.decode(chunk))
        prefix.add(decoder.decode(b"", final=True))
    except (UnicodeError, LookupError, ValueError):
        return "", True
    return prefix.text(), False


def decode_stream(
    chunks: Callable[[], Iterable[bytes]], charset: str | None, limit: int
) -> tuple[str, bool]:
    """``decode_bytes`` over a stream, keeping only the first ``limit`` characters of the
    text (with CRLF made LF, as body values have it): the same characters and the same
    problem flag as decoding the whole, without holding the whole. ``chunks`` gives the
    octets afresh on each call: a late invalid octet means decoding again from the start."""
    label = (charset or "us-ascii").strip().strip('"').lower()
    if label in _ASCII_NAMES:
        text, failed = _decode_prefix(chunks(), "utf-8", "strict", limit)
        if not failed:
            return text, False
        return _decode_prefix(chunks(), "cp1252", "strict", limit)[0], True
    codec = lookup_codec(label)
    if codec is None:
        return _decode_prefix(chunks(), "utf-8", "replace", limit)[0], True
    if codec == "cp1252":
        return _decode_prefix(chunks(), "cp1252", "strict", limit)[0], False
    text, failed = _decode_prefix(chunks(), codec, "strict", limit)
    if not failed:
        return text, False
    text, failed = _decode_prefix(chunks(), codec, "replace", limit)
    if failed:
        text = _decode_prefix(chunks(), "utf-8", "replace", limit)[0]
    return text, True
