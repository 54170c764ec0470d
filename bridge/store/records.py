"""Plain records the cache hands out and takes in."""

from __future__ import annotations

import msgspec


class FolderState(msgspec.Struct, frozen=True):
    """What STATUS says of a folder; equal states mean nothing changed inside it."""

    uidvalidity: int
    uidnext: int
    messages: int
    unseen: int | None = None
    modseq: int | None = None


class Counts(msgspec.Struct, frozen=True):
    total_emails: int = 0
    unread_emails: int = 0
    total_threads: int = 0
    unread_threads: int = 0


class MailboxRecord(msgspec.Struct, frozen=True):
    id: str
    upstream_key: str
    name: str
    delimiter: str | None = None
    role: str | None = None
    subscribed: bool = False
    selectable: bool = True
    sort_order: int = 0
    rights: str | None = None
    status: FolderState | None = None
    synced: FolderState | None = None
    counts: Counts = Counts()
    # While a folder is not indexed whole (synced is None), the UIDVALIDITY of the
    # locations it already holds.
    index_uidvalidity: int | None = None
    # Its SPECIAL-USE attribute as LIST gave it ("\\Flagged"); None without one.
    special_use: str | None = None

    @property
    def indexed(self) -> bool:
        return self.synced is not None

    @property
    def parent_name(self) -> str | None:
        if not self.delimiter or self.delimiter not in self.name:
            return None
        return self.name.rsplit(self.delimiter, 1)[0]

    @property
    def leaf_name(self) -> str:
        if not self.delimiter:
            return self.name
        return self.name.rsplit(self.delimiter, 1)[-1]


class Location(msgspec.Struct, frozen=True):
    """One IMAP message: a UID in a folder, and the Email it is."""

    uid: int
    email_id: str
    keywords: frozenset[str]
    modseq: int | None = None


class SortKeys(msgspec.Struct, frozen=True):
    """What Email/query reads of an Email's summary: its keys for the header sorts
    answered across folders, each text already in the form that compares as the
    upstream's SORT does (see bridge.mail.sort_keys); ``sent_at`` in Unix seconds, None
    without a usable Date; and hasAttachment, None when what it was made from does not
    say."""

    from_: str
    to: str
    subject: str
    sent_at: int | None
    has_attachment: bool | None = None


class HeaderText(msgspec.Struct, frozen=True):
    """A message's From, To, Cc, Bcc and Subject as the header index keeps them
    (bridge.mail.header_text)."""

    from_: str
    to: str
    cc: str
    bcc: str
    subject: str
    # One bit a field, in that order: set where the words may not be what the server
    # searches, so the index only narrows.
    inexact: int = 0


class NewMessage(msgspec.Struct, frozen=True):
    """A message seen for the first time in a folder, as the sync core fetched it."""

    uid: int
    email_key: str
    keywords: frozenset[str]
    modseq: int | None = None
    size: int = 0
    received_at: int = 0
    thread_key: str | None = None
    message_ids: tuple[str, ...] = ()
    referenced_ids: tuple[str, ...] = ()
    base_subject: str = ""
    # The encoded list-view summary, when the FETCH that found the message carried it.
    summary: bytes | None = None
    # Made from the summary, with it.
    sort_keys: SortKeys | None = None
    # The header index's keys; None when the FETCH did not bring the fields.
    header_text: HeaderText | None = None
    # From BODYSTRUCTURE; None when the FETCH did not bring it.
    has_attachment: bool | None = None


class FlagUpdate(msgspec.Struct, frozen=True):
    uid: int
    keywords: frozenset[str]
    modseq: int | None = None


class ChangeSet(msgspec.Struct, frozen=True):
    created: list[str]
    updated: list[str]
    destroyed: list[str]
    new_modseq: int
    has_more: bool
    # True when every update in the window changed only Mailbox counts.
    counts_only: bool


class EmailRecord(msgspec.Struct, frozen=True):
    """What the cache knows of an Email: everything but its content."""

    id: str
    thread_id: str
    keywords: frozenset[str]
    size: int
    received_at: int
    mailbox_ids: tuple[str, ...]
    summary: bytes | None = None


class MessageRef(msgspec.Struct, frozen=True):
    """Where an Email can be read upstream: a folder and a UID."""

    mailbox_id: str
    uid: int


class Committed:
    """What a transaction logged changes of (types), once it has committed."""

    __slots__ = ("logged",)

    def __init__(self) -> None:
        self.logged: frozenset[str] = frozenset()
