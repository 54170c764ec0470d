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
