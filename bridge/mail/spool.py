"""Messages on their way upstream, held in a temporary file rather than in memory.

An Email/set create is composed into a spool, an Email/import copied into one, and
EmailSubmission reads one: then the message goes on (APPEND, SMTP DATA) in chunks. The file
lives in the user's upload directory (mode 0700, on the data disk rather than a tmpfs) and has
no name: it is gone when closed, or when the process dies.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from bridge.mail.account import Account
from bridge.mime.envelope import for_transport

# The header block is read from a spool up to this size: enough for any real one.
MAX_HEADER_BLOCK = 1 << 20
_LINE_END = re.compile(rb"\r?\n")


def open_spool(account: Account) -> BinaryIO:
    directory = account.user.uploads.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return tempfile.TemporaryFile(dir=directory)


def to_crlf(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` with every bare LF made CRLF (strict servers, Cyrus, refuse anything
    else); a CR that ends one chunk waits to see whether an LF starts the next."""
    held_cr = b""
    for chunk in chunks:
        data = held_cr + chunk
        held_cr = b"\r" if data.endswith(b"\r") else b""
        data = data[: len(data) - len(held_cr)]
        if data:
            yield _LINE_END.sub(b"\r\n", data)
    if held_cr:
        yield held_cr


def write_for_transport(chunks: Iterable[bytes], out: BinaryIO) -> bytes:
    """Write the message as SMTP carries it (``for_transport``: CRLF line ends, no Bcc
    field) to ``out``; its header block as it was, for the envelope. Only the header block
    is held, and only up to MAX_HEADER_BLOCK (beyond, the rest counts as body)."""
    head = bytearray()
    header: bytes | None = None
    for chunk in to_crlf(chunks):
        if header is not None:
            out.write(chunk)
            continue
        head += chunk
        end = head.find(b"\r\n\r\n")
        if end == -1 and len(head) <= MAX_HEADER_BLOCK:
            continue
        cut = end + 4 if end != -1 else len(head)
        header = bytes(head[:cut])
        out.write(for_transport(header))
        out.write(head[cut:])
    if header is None:
        header = bytes(head)
        out.write(for_transport(header))
    return header


def header_block(spool: BinaryIO) -> bytes:
    """The spooled message's header block (without the blank line), or its first
    MAX_HEADER_BLOCK octets; the spool is left at its start."""
    spool.seek(0)
    head = spool.read(MAX_HEADER_BLOCK)
    spool.seek(0)
    return head.split(b"\r\n\r\n", 1)[0]


def header_section_within(spool: BinaryIO, limit: int) -> bool:
    """Whether the spooled message's header section (up to the blank line) is at most
    ``limit`` octets: each field may pass the per-value check and the whole section still
    be more than a list view should serve or mail servers take. The spool is left at its
    start."""
    spool.seek(0)
    head = spool.read(limit + 4)
    spool.seek(0)
    return b"\r\n\r\n" in head or len(head) <= limit


def size_of(spool: BinaryIO) -> int:
    size = spool.seek(0, 2)
    spool.seek(0)
    return size
