"""The typed results of IMAP commands. Immutable; they carry no connection state."""

from __future__ import annotations

from typing import Any

import msgspec


class MailboxStatus(msgspec.Struct, frozen=True):
    messages: int
    unseen: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None = None
    # The server's own stable id of the folder: MAILBOXID (RFC 8474) or Dovecot's X-GUID.
    # Both survive RENAME, so they tell a renamed folder from a new one.
    guid: str | None = None


class MailboxListing(msgspec.Struct, frozen=True):
    name: str
    delimiter: str | None
    attributes: frozenset[str]  # lower-case, e.g. "\\haschildren"
    special_use: str | None  # canonical case, e.g. "\\Drafts"
    subscribed: bool
    # False for \NoSelect and \NonExistent entries: listed because they still shape the tree.
    selectable: bool
    status: MailboxStatus | None


class MessageMeta(msgspec.Struct, frozen=True):
    uid: int
    flags: tuple[str, ...]
    modseq: int | None = None
    # EMAILID (RFC 8474), Dovecot's X-GUID or Gmail's X-GM-MSGID: the same for a message
    # and its copies in other folders, so it survives COPY and MOVE.
    object_id: str | None = None
    thread_object_id: str | None = None
    # The other FETCH items asked for, keyed by their upper-case response name
    # ("RFC822.SIZE", "INTERNALDATE", "BODY[HEADER.FIELDS (...)]"), values as imapclient
    # parses them (int, bytes, tz-aware datetime, tuples).
    raw: dict[str, Any] = msgspec.field(default_factory=dict)


class FetchResult(msgspec.Struct, frozen=True):
    messages: dict[int, MessageMeta]
    vanished: frozenset[int] = frozenset()


class QresyncParams(msgspec.Struct, frozen=True):
    uidvalidity: int
    modseq: int
    known_uids: str | None = None


class SelectResult(msgspec.Struct, frozen=True):
    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None
    permanent_flags: frozenset[str]
    readonly: bool
    vanished: frozenset[int] = frozenset()
    changed: dict[int, MessageMeta] = msgspec.field(default_factory=dict)


class QuotaResource(msgspec.Struct, frozen=True):
    """One resource of a quota root (RFC 9208 §5): name upper-case ("STORAGE" in KiB,
    "MESSAGE" in messages), usage and limit in the server's units."""

    name: str
    usage: int
    limit: int


class QuotaRoot(msgspec.Struct, frozen=True):
    """A quota root a mailbox is subject to, with its resources ("" is a valid root name)."""

    name: str
    resources: tuple[QuotaResource, ...] = ()
