"""Blob ids for messages and their parts.

A blob id names an Email and, for a body part, its IMAP section: ``B<email id>`` is the
whole message, ``B<email id>_1-2`` its part 1.2. Email ids have a fixed length, so the
split is unambiguous, and a blob id resolves only through the cache of the user asking:
another user's blob id is simply not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bridge.mime import parse_message
from bridge.store.ids import derive_id

if TYPE_CHECKING:
    from bridge.mail.account import Account

EMAIL_ID_LENGTH = len(derive_id("e", ""))
_SECTION = re.compile(r"[0-9]+(\.[0-9]+)*")


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


CHUNK = 1 << 20


def open_blob(account: Account, value: str) -> Iterator[bytes] | None:
    """The blob's octets, read from the upstream in chunks; None if this user has no such
    blob. A whole message streams by partial FETCH; a part is cut from its message and
    transfer-decoded (RFC 8621 §4.1.4: a part's blob is its decoded content)."""
    parsed = parse_blob_id(value)
    if parsed is None:
        return None
    email_id, section = parsed
    ref = account.cache.message_refs([email_id]).get(email_id)
    record = account.cache.mailbox(ref.mailbox_id) if ref is not None else None
    if ref is None or record is None:
        return None
    account.open_folder(record.name)
    if section is None:
        return _message_chunks(account, ref.uid)
    raw = _fetch(account, ref.uid, "BODY.PEEK[]", "BODY[]")
    content = parse_message(raw).part_content(section) if raw is not None else None
    return iter((content,)) if content is not None else None


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
