"""What threading needs from a header block: Message-IDs and the base subject.

Two messages share a thread when one names the other's Message-ID (in Message-ID,
In-Reply-To or References) and their base subjects match (RFC 8621 §3's suggestion); the
base subject is RFC 5256 §2.1's, with RFC 2047 encoded words decoded first.
"""

from __future__ import annotations

import email.header
import re
from email.errors import HeaderParseError

_MESSAGE_ID = re.compile(rb"<([^<>\s]+)>")
# Leading "Re:", "Fwd:", "Fw:" (with an optional [tag] or count), and "[tag]" blobs.
_REFWD = re.compile(r"^(?:re|fwd?)\s*(?:\[[^\]]*\])?\s*:\s*", re.IGNORECASE)
_BLOB = re.compile(r"^\[[^\]]*\]\s*")
_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_FORWARD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def decode_words(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (HeaderParseError, LookupError, ValueError, UnicodeDecodeError):
        return value


def base_subject(subject: str) -> str:
    return uncased_base_subject(subject).casefold()


def uncased_base_subject(subject: str) -> str:
    """RFC 5256 §2.1's base subject, its case as it was (sorts map case their own way)."""
    text = _SPACE.sub(" ", decode_words(subject)).strip()
    while True:
        before = text
        text = _TRAILER.sub("", text)
        wrapped = _FORWARD_WRAP.match(text)
        if wrapped:
            text = wrapped.group(1).strip()
        while True:
            stripped = _REFWD.sub("", text, count=1)
            blobless = _BLOB.sub("", stripped, count=1)
            # A "[blob]" goes unless it is all there is (RFC 5256 §2.1).
            stripped = blobless or stripped
            if stripped == text:
                break
            text = stripped
        if text == before:
            return text


def header_fields(raw: bytes) -> dict[str, list[bytes]]:
    """Unfolded header fields of a header block, lower-cased names, in order."""
    fields: dict[str, list[bytes]] = {}
    name = ""
    for line in raw.splitlines():
        if line[:1] in (b" ", b"\t") and name:
            fields[name][-1] += b" " + line.strip()
            continue
        key, sep, value = line.partition(b":")
        if not sep:
            name = ""
            continue
        name = key.strip().decode("ascii", "replace").lower()
        fields.setdefault(name, []).append(value.strip())
    return fields


def message_ids(values: list[bytes]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        found.extend(m.decode("utf-8", "replace") for m in _MESSAGE_ID.findall(value))
    return tuple(dict.fromkeys(found))


def field_lines(block: bytes, names: tuple[str, ...]) -> bytes:
    """The lines of ``block`` that hold the fields ``names`` (upper case), continuations
    included, in order, and the empty line: what ``BODY[HEADER.FIELDS (names)]`` returns."""
    wanted = {name.encode("ascii") for name in names}
    kept: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line)
            continue
        name, colon, _ = line.partition(b":")
        keep = bool(colon) and name.strip().upper() in wanted
        if keep:
            kept.append(line)
    return b"".join(kept) + b"\r\n"
