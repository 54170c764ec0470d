"""Content-Transfer-Encoding decoding (RFC 2045 §6) that never fails.

Broken encodings decode as far as they can; the caller learns that something was wrong.
"""

from __future__ import annotations

import binascii
import re

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(sorted(set(range(256)) - set(_B64_ALPHABET)))
_WHITESPACE = b" \t\r\n\x0b\x0c"
# RFC 2045 §6.7 (3): trailing white space was possibly added in transport and is not content.
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")

IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
KNOWN_ENCODINGS = IDENTITY_ENCODINGS | {"base64", "quoted-printable"}


def decode_base64(data: bytes) -> tuple[bytes, bool]:
    """Decode base64, skipping junk and repairing padding; returns (octets, problem)."""
    compact = data.translate(None, _WHITESPACE)
    problem = bool(compact.translate(None, _B64_ALPHABET + b"="))
    pad = compact.find(b"=")
    if pad != -1:
        # Anything but more padding after the first "=" is a second, unreachable stream.
        problem = problem or bool(compact[pad:].strip(b"="))
        compact = compact[:pad]
    core = compact.translate(None, _NOT_B64)
    remainder = len(core) % 4
    if remainder == 1:
        core = core[:-1]
        problem = True
    elif remainder:
        core += b"=" * (4 - remainder)
    try:
        return binascii.a2b_base64(core), problem
    except binascii.Error:
        return b"", True


def decode_quoted_printable(data: bytes, *, header: bool = False) -> bytes:
    """Decode quoted-printable; malformed ``=`` sequences stay as they are (RFC 2045 §6.7)."""
    if not header:
        data = _QP_TRAILING_SPACE.sub(b"", data)
    return binascii.a2b_qp(data, header=header)


def decode_transfer(data: bytes, encoding: str) -> tuple[bytes, bool]:
    """Undo a Content-Transfer-Encoding; an unknown one is treated as none (RFC 8621 §4.1.4)."""
    if encoding == "base64":
        return decode_base64(data)
    if encoding == "quoted-printable":
        return decode_quoted_printable(data), False
    return data, encoding not in IDENTITY_ENCODINGS


class Base64Decoder:
    """``decode_base64`` over a stream: the same octets, given the input in any pieces.

    Input is kept back only to the end of its last full 4-character group, so the state
    between chunks is at most three characters."""

    def __init__(self) -> None:
        self._held = b""
        self._ended = False  # past the first "=": the rest is not content
        self.problem = False

    def feed(self, data: bytes) -> bytes:
        if self._ended:
            self.problem = self.problem or bool(data.translate(None, _WHITESPACE + b"="))
            return b""
        compact = data.translate(None, _WHITESPACE)
        self.problem = self.problem or bool(compact.translate(None, _B64_ALPHABET + b"="))
        pad = compact.find(b"=")
        if pad != -1:
            self.problem = self.problem or bool(compact[pad:].strip(b"="))
            compact = compact[:pad]
            self._ended = True
        core = self._held + compact.translate(None, _NOT_B64)
        whole = len(core) - len(core) % 4
        self._held = core[whole:]
        return binascii.a2b_base64(core[:whole]) if whole else b""

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        if len(held) == 1:
            self.problem = True
            return b""
        return binascii.a2b_base64(held + b"=" * (4 - len(held))) if held else b""


class QuotedPrintableDecoder:
    """``decode_quoted_printable`` over a stream: the same octets, given the input in any
    pieces. Complete lines are decoded as they come, so a soft line break or an ``=XX``
    split between chunks waits for its end; a line longer than ``hold_limit`` is cut where
    no escape or trailing white space can straddle the cut, so the state stays small.

    A line that offers no such place for ``force_limit`` octets (white space and ``=``,
    which no encoder writes) is cut anyway between two escapes, after white space only if
    it is all white space: that white space then counts as content even if the line ends
    with it, the one way this can differ from decoding whole."""

    problem = False  # quoted-printable decoding keeps what it cannot read; nothing is lost

    def __init__(self, hold_limit: int = 1 << 16, force_limit: int = 1 << 20) -> None:
        self._held = b""
        self._hold_limit = hold_limit
        self._force_limit = force_limit

    def feed(self, data: bytes) -> bytes:
        held = self._held + data
        cut = held.rfind(b"\n") + 1
        if not cut and len(held) > self._hold_limit:
            cut = _safe_qp_cut(held)
            if not cut and len(held) > self._force_limit:
                cut = _forced_qp_cut(held)
                self._held = held[cut:]
                return binascii.a2b_qp(held[:cut])
        self._held = held[cut:]
        return decode_quoted_printable(held[:cut]) if cut else b""

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return decode_quoted_printable(held) if held else b""


def _safe_qp_cut(data: bytes) -> int:
    """An offset at which a line can be cut without changing how it decodes: not inside an
    ``=XX`` and not after white space (which is trailing, and dropped, only at a line end)."""
    cut = len(data) - 2
    while cut > 0 and (data[cut - 1] in b" \t" or b"=" in data[max(cut - 2, 0) : cut]):
        cut -= 1
    return max(cut, 0)


# How binascii.a2b_qp reads a line: "==" is one "=", "=XX" an octet, any other "=" itself.
_QP_TOKEN = re.compile(rb"==|=[0-9A-Fa-f]{2}|.", re.DOTALL)


def _forced_qp_cut(data: bytes) -> int:
    """An offset near the end of ``data`` (a line cut nowhere yet) between two of its
    escapes, preferably not after white space or a lone "=" (which a2b_qp reads as a soft
    line break when it ends the input); the escapes are read from the line's start."""
    near = len(data) - 2
    best = anywhere = 0
    for match in _QP_TOKEN.finditer(data):
        if match.end() > near:
            break
        token = match.group()
        if token != b"=":
            anywhere = match.end()
            if token not in (b" ", b"\t"):
                best = match.end()
    return best or anywhere


class IdentityDecoder:
    """No transfer encoding: the octets as they are."""

    problem = False

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


StreamDecoder = Base64Decoder | QuotedPrintableDecoder | IdentityDecoder


def stream_decoder(encoding: str) -> StreamDecoder:
    """The chunk-by-chunk ``decode_transfer`` for ``encoding``."""
    if encoding == "base64":
        return Base64Decoder()
    if encoding == "quoted-printable":
        return QuotedPrintableDecoder()
    return IdentityDecoder()
