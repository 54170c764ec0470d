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
