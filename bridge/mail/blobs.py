"""Blob ids for messages, uploads and their parts.

A blob id names an Email and, for a body part, its IMAP section: ``B<email id>`` is the
whole message, ``B<email id>_1-2`` its part 1.2. Email ids have a fixed length, so the
split is unambiguous, and a blob id resolves only through the cache of the user asking:
another user's blob id is simply not found.

Uploaded blobs (``bridge.store.uploads``) are ``U<upload id>``, and the parts of an upload
parsed as a message (Email/parse) ``U<upload id>_<section>`` alike: upload ids have a fixed
length too, and resolve only in the asking user's upload store.

A message's blob, or a part's, streams from the upstream by partial FETCH of its IMAP
section, decoded as it comes: no blob is ever whole in memory on its way to a client, into
a message being composed, or to SMTP. A section inside an attached message (``3.1`` of the
message/rfc822 part ``3``) is an IMAP section too; in an upload, it is found by parsing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from bridge.mail.gmail_labels import upstream_folder
from bridge.mime import ParsedMessage, parse_header_block, parse_message
from bridge.mime.params import MimeFields, mime_fields
from bridge.mime.source import FileSource
from bridge.mime.transfer import stream_decoder
from bridge.store.ids import derive_id
from bridge.store.uploads import ID_LENGTH as UPLOAD_ID_LENGTH
from bridge.store.uploads import is_upload_id

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.imap.connection import ImapConnection
    from bridge.store.base import Store
    from bridge.store.uploads import UploadStore

EMAIL_ID_LENGTH = len(derive_id("e", ""))
_MESSAGES = ("message/rfc822", "message/global")
_SECTION = re.compile(r"[0-9]+(\.[0-9]+)*")
_PART_SUFFIX = re.compile(r"(?:_([0-9]+(?:-[0-9]+)*))?")


class _UploadsHolder(Protocol):
    @property
    def uploads(self) -> UploadStore: ...


class BlobAccount(Protocol):
    """What reading a blob needs of the request's account (bridge.mail.account.Account,
    which reaches blobs through sync and summary: a Protocol keeps the two apart)."""

    @property
    def cache(self) -> Store: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def user(self) -> _UploadsHolder: ...

    @property
    def imap(self) -> ImapConnection: ...

    def folder(self, name: str, *, writable: bool = False) -> ImapConnection: ...


def blob_id(email_id: str, part_id: str | None = None) -> str:
    if part_id is None:
        return f"B{email_id}"
    return f"B{email_id}_{part_id.replace('.', '-')}"


def parse_blob_id(value: str) -> tuple[str, str | None] | None:
    """(Email id, IMAP section or None for the whole message), or None if malformed."""
    if not value.startswith("B") or len(value) < 1 + EMAIL_ID_LENGTH:
        return None
    email_id = value[1 : 1 + EMAIL_ID_LENGTH]
    rest = value[1 + EMAIL_ID_LENGTH :]
    if not rest:
        return email_id, None
    section = rest[1:].replace("-", ".")
    if rest[0] != "_" or not _SECTION.fullmatch(section):
        return None
    return email_id, section


def part_blob_id(whole: str, part_id: str) -> str:
    """The blob id of part ``part_id`` of the blob ``whole`` (a ``B...`` or ``U...`` id of a
    whole message)."""
    return f"{whole}_{part_id.replace('.', '-')}"


def split_blob_id(value: str) -> tuple[str, str | None] | None:
    """(blob id of the whole message or upload, section or None), or None if malformed."""
    if value.startswith("U"):
        whole, suffix = value[:UPLOAD_ID_LENGTH], _PART_SUFFIX.fullmatch(value[UPLOAD_ID_LENGTH:])
        if not is_upload_id(whole) or suffix is None:
            return None
        return whole, suffix.group(1).replace("-", ".") if suffix.group(1) else None
    parsed = parse_blob_id(value)
    return None if parsed is None else (blob_id(parsed[0]), parsed[1])


def part_content(message: ParsedMessage, section: str) -> bytes | None:
    """The decoded content of a part, descending into attached messages for sections the
    message itself does not list (its parse keeps a message/rfc822 part as a leaf)."""
    content = message.part_content(section)
    if content is not None:
        return content
    pieces = section.split(".")
    for length in range(len(pieces) - 1, 0, -1):
        prefix = ".".join(pieces[:length])
        part = message.part(prefix)
        if part is not None:
            if part.type not in _MESSAGES:
                return None
            inner = parse_message(message.content(part)[0], section_prefix=prefix)
            return part_content(inner, section)
    return None


def open_blob(account: BlobAccount, value: str) -> Iterator[bytes] | None:
    """The blob's octets, read from the upstream in chunks of ``blob_chunk_size``; None if
    this user has no such blob. A whole message streams by partial FETCH; so does a part,
    transfer-decoded chunk by chunk as it comes (RFC 8621 §4.1.4: a part's blob is its
    decoded content), so a download holds a chunk or two whatever the blob's size. An
    upload is read from the user's upload store, and its parts cut from it likewise."""
    if value.startswith("U"):
        return _upload_chunks(account, value)
    located = _located(account, value)
    if located is None:
        return None
    folder, uid, section = located
    source = _Source(account, folder, uid, account.settings.blob_chunk_size)
    if section is None:
        return source.chunks("")
    return _part_chunks(source, section)


def _located(account: BlobAccount, value: str) -> tuple[str, int, str | None] | None:
    """The folder, UID and section of a message blob of this user; or None."""
    parsed = parse_blob_id(value)
    if parsed is None:
        return None
    email_id, section = parsed
    ref = account.cache.message_refs([email_id]).get(email_id)
    record = account.cache.mailbox(ref.mailbox_id) if ref is not None else None
    if ref is None or record is None:
        return None
    return upstream_folder(account.imap, account.cache, record), ref.uid, section


class BlobVanished(Exception):
    """The message behind a blob went away while its octets were being read: what was
    read is not the blob, and whoever reads must not take it for one."""


class _Source:
    """One message upstream, read a section at a time in partial FETCHes. Its folder is
    opened before every FETCH: a request reading several blobs at once (a message composed
    of attachments from different folders) moves the connection between them."""

    def __init__(self, account: BlobAccount, folder: str, uid: int, chunk_size: int) -> None:
        self.account = account
        self.folder = folder
        self.uid = uid
        self.chunk_size = chunk_size

    def fetch(self, *items: str) -> dict[str, Any] | None:
        """``BODY.PEEK[...]`` items -> the answer keyed as the server names them; None if
        the message is gone."""
        folder = self.account.folder(self.folder)
        meta = folder.fetch_meta(str(self.uid), extra=items).messages.get(self.uid)
        return meta.raw if meta is not None else None

    def range_item(self, section: str, offset: int) -> tuple[str, str]:
        return (f"BODY.PEEK[{section}]<{offset}.{self.chunk_size}>", f"BODY[{section}]<{offset}>")

    def chunks(self, section: str, first: bytes | None = None) -> Iterator[bytes] | None:
        """The section's octets (as stored, transfer encoding and all), chunk by chunk;
        None if the message is gone. ``first`` is the chunk at offset 0, if already read."""
        if first is None:
            item, key = self.range_item(section, 0)
            found = self.fetch(item)
            first = found.get(key) if found is not None else None
            if not isinstance(first, bytes):
                return None
        return self._following(section, first)

    def _following(self, section: str, first: bytes) -> Iterator[bytes]:
        chunk, offset = first, 0
        while chunk:
            yield chunk
            if len(chunk) < self.chunk_size:
                return
            offset += len(chunk)
            item, key = self.range_item(section, offset)
            found = self.fetch(item)
            value = found.get(key) if found is not None else None
            if not isinstance(value, bytes):
                # Only an empty string past the end ends a section (RFC 3501 §6.4.5); a
                # message expunged meanwhile must not pass for a shorter one.
                raise BlobVanished(f"the message went away after {offset} octets")
            chunk = value


def _part_chunks(source: _Source, section: str) -> Iterator[bytes] | None:
    """A part's decoded content, by its IMAP section: its MIME header says how it is
    encoded (for the body of an attached message, that message's header does), and the
    body is decoded as its chunks arrive. A section that does not exist has an empty MIME
    header; a multipart has no blob; nor has "2.1" under a leaf "2", which IMAP would
    answer with "2" itself (RFC 3501 §6.4.5) but no part id of bridge's names."""
    parent = section.rpartition(".")[0]
    items = [f"BODY.PEEK[{section}.MIME]", *([f"BODY.PEEK[{parent}.MIME]"] if parent else [])]
    item, key = source.range_item(section, 0)
    found = source.fetch(*items, item)
    if found is None:
        return None
    fields = _fields(found.get(f"BODY[{section}.MIME]"))
    if fields is None or _is_multipart(fields):
        return None
    if parent:
        container = _fields(found.get(f"BODY[{parent}.MIME]"))
        if container is None or not (_is_multipart(container) or container.type in _MESSAGES):
            return None
    first = found.get(key)
    encoded = source.chunks(section, first if isinstance(first, bytes) else b"")
    return None if encoded is None else decoded(encoded, fields.transfer_encoding)


def _fields(header: Any) -> MimeFields | None:
    """What a MIME header says; None for an empty one (a section that is not there)."""
    if not header or not isinstance(header, bytes):
        return None
    return mime_fields(parse_header_block(header)[0])


def _is_multipart(fields: MimeFields) -> bool:
    """A multipart bridge's parser splits (without a boundary it is read as text)."""
    return fields.type.startswith("multipart/") and bool(fields.boundary)


def decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """Transfer-decode a stream chunk by chunk."""
    decoder = stream_decoder(encoding)
    for chunk in chunks:
        if out := decoder.feed(chunk):
            yield out
    if tail := decoder.finish():
        yield tail


def _upload_chunks(account: BlobAccount, value: str) -> Iterator[bytes] | None:
    split = split_blob_id(value)
    stored = account.user.uploads.open(split[0]) if split is not None else None
    if split is None or stored is None:
        return None
    try:
        # Opened now: a sweep that deletes the upload meanwhile leaves this handle readable.
        handle = stored.path.open("rb")
    except FileNotFoundError:
        return None
    if split[1] is None:
        return _file_chunks(handle, account.settings.blob_chunk_size)
    # A part of an upload parsed as a message: parsed from the file a window at a time and
    # decoded as it streams. A part inside an attached message is found by parsing that
    # message in memory (an upload is at most maxSizeUpload).
    message = parse_message(FileSource(handle))
    part = message.part(split[1])
    if part is not None:
        return _closing(handle, message.content_chunks(part)[0])
    with handle:
        content = part_content(message, split[1])
    return iter((content,)) if content is not None else None


def _closing(handle: BinaryIO, chunks: Iterator[bytes]) -> Iterator[bytes]:
    with handle:
        yield from chunks


def _file_chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk
