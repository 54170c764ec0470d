"""Messages on their way upstream, held in a temporary file rather than in memory.

An Email/set create is composed into a spool, an Email/import copied into one, and
EmailSubmission reads one: then the message goes on (APPEND, SMTP DATA) in chunks. The file
lives in the user's upload directory (mode 0700, on the data disk rather than a tmpfs) and has
no name: it is gone when closed, or when the process dies.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from typing import BinaryIO

from bridge.mail.account import Account

# The header block is read from a spool up to this size: enough for any real one.
MAX_HEADER_BLOCK = 1 << 20
_LINE_END = re.compile(rb"\r?\n")


def open_spool(account: Account) -> BinaryIO:
    directory = account.user.uploads.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return tempfile.TemporaryFile(dir=directory)


def write_all(chunks: Iterable[bytes], out: BinaryIO) -> None:
    for chunk in chunks:
        out.write(chunk)


def write_with_crlf(chunks: Iterable[bytes], out: BinaryIO) -> bool:
    """Copy ``chunks`` with every bare LF made CRLF (strict servers, Cyrus, refuse anything
    else), a CR that ends one chunk waiting to see if an LF starts the next; whether any
    NUL was seen."""
    nul = False
    held_cr = b""
    for chunk in chunks:
        data = held_cr + chunk
        held_cr = b"\r" if data.endswith(b"\r") else b""
        data = data[: len(data) - len(held_cr)]
        nul = nul or b"\x00" in data
        out.write(_LINE_END.sub(b"\r\n", data))
    out.write(held_cr)
    return nul


def header_block(spool: BinaryIO) -> bytes:
    """The spooled message's header block (without the blank line), or its first
    MAX_HEADER_BLOCK octets; the spool is left at its start."""
    spool.seek(0)
    head = spool.read(MAX_HEADER_BLOCK)
    spool.seek(0)
    return head.split(b"\r\n\r\n", 1)[0]


def size_of(spool: BinaryIO) -> int:
    size = spool.seek(0, 2)
    spool.seek(0)
    return size
