"""Blob ids for messages, uploads and their parts.

A blob id names an Email and, for a body part, its IMAP section: ``B<email id>`` is the
whole message, ``B<email id>_1-2`` its part 1.2. Email ids have a fixed length, so the
split is unambiguous, and a blob id resolves only through the cache of the user asking:
another user's blob id is simply not found.

Uploaded blobs (``bridge.store.uploads``) are ``U<upload id>``, and the parts of an upload
parsed as a message (Email/parse) ``U<upload id>_<section>`` alike: upload ids have a fixed
length too, and resolve only in the asking user's upload store. A section inside an
attached message (``3.1`` of the message/rfc822 part ``3``) is found by parsing that part.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from bridge.mime import ParsedMessage, parse_message
from bridge.store.ids import derive_id
from bridge.store.uploads import ID_LENGTH as UPLOAD_ID_LENGTH
from bridge.store.uploads import is_upload_id

if TYPE_CHECKING:
    from bridge.mail.account import Account

EMAIL_ID_LENGTH = len(derive_id("e", ""))
_SECTION = re.compile(r"[0-9]+(\.[0-9]+)*")
_PART_SUFFIX = re.compile(r"(?:_([0-9]+(?:-[0-9]+)*))?")


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
            if part.type not in ("message/rfc822", "message/global"):
                return None
            inner = parse_message(message.content(part)[0], section_prefix=prefix)
            return part_content(inner, section)
    return None


CHUNK = 1 << 20


def open_blob(account: Account, value: str) -> Iterator[bytes] | None:
    """The blob's octets, read from the upstream in chunks; None if this user has no such
    blob. A whole message streams by partial FETCH; a part is cut from its message and
    transfer-decoded (RFC 8621 §4.1.4: a part's blob is its decoded content). An upload
    is read from the user's upload store, and its parts cut from it likewise."""
    if value.startswith("U"):
        return _upload_chunks(account, value)
    located = _located(account, value)
    if located is None:
        return None
    uid, section = located
    if section is None:
        return _message_chunks(account, uid)
    content = _part(account, uid, section)
    return iter((content,)) if content is not None else None


def read_blob(account: Account, value: str) -> bytes | None:
    """The whole blob in memory, to compose, import or send it: a message comes in one
    FETCH rather than in chunks."""
    if value.startswith("U"):
        chunks = _upload_chunks(account, value)
        return b"".join(chunks) if chunks is not None else None
    located = _located(account, value)
    if located is None:
        return None
    uid, section = located
    if section is None:
        return _fetch(account, uid, "BODY.PEEK[]", "BODY[]")
    return _part(account, uid, section)


def _located(account: Account, value: str) -> tuple[int, str | None] | None:
    """The UID and section of a message blob of this user, its folder open; or None."""
    parsed = parse_blob_id(value)
    if parsed is None:
        return None
    email_id, section = parsed
    ref = account.cache.message_refs([email_id]).get(email_id)
    record = account.cache.mailbox(ref.mailbox_id) if ref is not None else None
    if ref is None or record is None:
        return None
    account.open_folder(record.name)
    return ref.uid, section


def _part(account: Account, uid: int, section: str) -> bytes | None:
    raw = _fetch(account, uid, "BODY.PEEK[]", "BODY[]")
    return part_content(parse_message(raw), section) if raw is not None else None


def _upload_chunks(account: Account, value: str) -> Iterator[bytes] | None:
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
        return _file_chunks(handle)
    with handle:
        content = part_content(parse_message(handle.read()), split[1])
    return iter((content,)) if content is not None else None


def _file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _fetch(account: Account, uid: int, item: str, key: str) -> bytes | None:
    meta = account.imap.fetch_meta(str(uid), extra=(item,)).messages.get(uid)
    value = meta.raw.get(key) if meta is not None else None
    return value if isinstance(value, bytes) else None


def _message_chunks(account: Account, uid: int) -> Iterator[bytes] | None:
    first = _fetch(account, uid, f"BODY.PEEK[]<0.{CHUNK}>", "BODY[]<0>")
    if first is None:
        return None

    def chunks() -> Iterator[bytes]:
        chunk, offset = first, 0
        while True:
            yield chunk
            if len(chunk) < CHUNK:
                break
            offset += len(chunk)
            chunk = _fetch(account, uid, f"BODY.PEEK[]<{offset}.{CHUNK}>", f"BODY[]<{offset}>")
            if not chunk:
                break

    return chunks()
