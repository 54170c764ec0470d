"""RFC 2047 encoded-word decoding for unstructured text, as RFC 8621's Text form asks.

Only encoded-words that stand alone between white space are decoded (RFC 2047 §5 (1)); the
one leniency is a run of encoded-words glued together without space, a common generator bug
whose decoding cannot be mistaken for anything else. Encoded-words in an unknown charset are
left as they are. Adjacent encoded-words are joined at the octet level before charset
decoding, because senders split multi-byte characters across them.
"""

from __future__ import annotations

import re

from bridge.mime.charset import decode_bytes, lookup_codec
from bridge.mime.transfer import decode_base64, decode_quoted_printable

_WORD = r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?="
_ONE_WORD = re.compile(_WORD)
_WORD_RUN = re.compile(f"(?:{_WORD})+")
_SPACE_SPLIT = re.compile(r"([ \t\r\n]+)")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")

# (codec, octets, malformed)
_Chunk = tuple[str, bytes, bool]


def _decode_run(token: str) -> list[_Chunk] | None:
    """The chunks of a token made only of encoded-words, or None if it is plain text."""
    if not _WORD_RUN.fullmatch(token):
        return None
    chunks: list[_Chunk] = []
    for match in _ONE_WORD.finditer(token):
        codec = lookup_codec(match.group(1))
        if codec is None:
            return None
        payload = match.group(3).encode("ascii", "replace")
        if match.group(2) in "Bb":
            octets, bad = decode_base64(payload)
        else:
            octets, bad = decode_quoted_printable(payload, header=True), False
        chunks.append((codec, octets, bad))
    return chunks


def _render(chunks: list[_Chunk]) -> str:
    out: list[str] = []
    index = 0
    while index < len(chunks):
        codec = chunks[index][0]
        octets = bytearray()
        bad = False
        while index < len(chunks) and chunks[index][0] == codec:
            octets += chunks[index][1]
            bad = bad or chunks[index][2]
            index += 1
        text, _ = decode_bytes(bytes(octets), codec)
        out.append(_CONTROLS.sub("", text) + ("\ufffd" if bad else ""))
    return "".join(out)


def decode_encoded_words(text: str) -> str:
    """Decode the encoded-words in ``text``; white space between two of them disappears."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: list[_Chunk] = []
    held_space = ""
    for index, piece in enumerate(_SPACE_SPLIT.split(text)):
        if index % 2:
            if pending:
                held_space += piece
            else:
                out.append(piece)
            continue
        if not piece:
            continue
        chunks = _decode_run(piece)
        if chunks is None:
            if pending:
                out.append(_render(pending))
                pending = []
            out.append(held_space)
            held_space = ""
            out.append(piece)
        else:
            held_space = ""
            pending.extend(chunks)
    if pending:
        out.append(_render(pending))
    out.append(held_space)
    return "".join(out)
