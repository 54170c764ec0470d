"""Blob ids for messages and their parts.

A blob id names an Email and, for a body part, its IMAP section: ``B<email id>`` is the
whole message, ``B<email id>_1-2`` its part 1.2. Email ids have a fixed length, so the
split is unambiguous, and a blob id resolves only through the cache of the user asking:
another user's blob id is simply not found.
"""

from __future__ import annotations

import re

from bridge.store.ids import derive_id

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
