"""Gmail's labels as mailboxes: All Mail is read once, and every label folder is a view of it.

On Gmail a message is one message in ``[Gmail]/All Mail`` (\\All) with labels; each label
(INBOX among them) is listed as a folder showing the messages that carry it, and only
the Trash and Spam hold messages outside All Mail. Synced like other folders, each label
folder would cost a SELECT and a FETCH of every message it shows, for nothing All Mail's
``X-GM-LABELS`` does not say. So, on a session with Gmail's dialect (X-GM-EXT-1) and
CONDSTORE (Gmail has it: a label change moves the message's MODSEQ):

- every selectable folder but All Mail, the Trash and Spam is a *label view*: it keeps its
  own mailbox row (its id, name, role and counts stay as they were), but its locations
  are copies of All Mail's, under the All Mail UID, for the messages whose X-GM-LABELS
  name it. The sync never SELECTs it; All Mail's sync fills it (``LabelPass``).
- anything that reads or writes a message upstream through a view's location uses All
  Mail (``upstream_name``): the UID there is All Mail's.
- a view is in step when its sync state equals All Mail's (both are set in the one
  transaction that applies All Mail's delta); one that is not (new, or filled by an older
  bridge from its own folder) is filled again from a FETCH of every label in All Mail.
- writes: a label added or removed is ``UID STORE +X-GM-LABELS`` / ``-X-GM-LABELS`` on the
  All Mail UID (removing ``\\Inbox`` is how Gmail archives); into the Trash or Spam is a
  MOVE of the All Mail message (Gmail then drops its other labels), out of them a MOVE to
  INBOX or All Mail (Gmail's own rule for COPY/MOVE out of the bins).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.imap.connection import ImapConnection
from bridge.imap.quoting import decode_mailbox_name
from bridge.imap.responses import ObjectIds
from bridge.imap.responses import format_sequence_set as uid_set
from bridge.store.base import Store
from bridge.store.records import FolderState, MailboxRecord

LABELS_ITEM = "X-GM-LABELS"
# Roles whose folders hold messages of their own on Gmail, outside All Mail.
BIN_ROLES = frozenset({"trash", "junk"})
INBOX_LABEL = "\\Inbox"
# The system labels by the SPECIAL-USE attribute of the folder that shows them (Google's
# "IMAP Extensions" lists them), lower-cased. Gmail writes \Draft (the Gmail API's DRAFT).
SYSTEM_LABELS = {
    "\\sent": "\\Sent",
    "\\drafts": "\\Draft",
    "\\important": "\\Important",
    "\\flagged": "\\Starred",
}
# Other spellings read as these labels, lower-cased.
_READ_AS = {"\\drafts": "\\draft"}


def label_text(value: Any) -> str | None:
    """One X-GM-LABELS entry as imapclient parses it (bytes, or an int for a label of
    digits) as text: a system label as sent, a user label decoded from modified UTF-7."""
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, bytes):
        return None
    if value.startswith(b"\\"):
        return value.decode("ascii", "replace")
    try:
        return decode_mailbox_name(value)
    except ValueError:
        return None  # no folder can have this name: it shows in no mailbox


@dataclass(frozen=True)
class LabelViews:
    """All Mail and the label views of one account's cached folders."""

    all_mail: MailboxRecord
    views: dict[str, MailboxRecord]
    bins: dict[str, MailboxRecord]
    _by_label: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, all_mail: MailboxRecord, records: Iterable[MailboxRecord]) -> LabelViews:
        views: dict[str, MailboxRecord] = {}
        bins: dict[str, MailboxRecord] = {}
        for record in records:
            if not record.selectable or record.id == all_mail.id:
                continue
            (bins if record.role in BIN_ROLES else views)[record.id] = record
        by_label = {cls.label_of(record).lower(): record.id for record in views.values()}
        return cls(all_mail, views, bins, by_label)

    @staticmethod
    def label_of(record: MailboxRecord) -> str:
        """The view's label as X-GM-LABELS names it: a system label, or the folder name."""
        if record.name.upper() == "INBOX":
            return INBOX_LABEL
        return SYSTEM_LABELS.get((record.special_use or "").lower(), record.name)

    def shown_in(self, labels: Iterable[Any]) -> frozenset[str]:
        """The views that show a message with these X-GM-LABELS entries."""
        found: set[str] = set()
        for value in labels:
            text = label_text(value)
            if text is None:
                continue
            key = text.lower()
            key = _READ_AS.get(key, key)
            if key in self._by_label:
                found.add(self._by_label[key])
        return frozenset(found)

    def is_view(self, mailbox_id: str) -> bool:
        return mailbox_id in self.views

    def outside(self, locations: dict[str, list[int]]) -> dict[str, list[int]]:
        """An Email's locations where its messages really are: All Mail, the Trash, Spam."""
        return {m: uids for m, uids in locations.items() if m not in self.views}

    def upstream_name(self, record: MailboxRecord) -> str:
        """The folder where a location of ``record`` is read or written upstream."""
        return self.all_mail.name if record.id in self.views else record.name

    def behind(self) -> list[MailboxRecord]:
        """Views not in step with All Mail (never filled, or filled by an older bridge from
        their own folders): to fill from every message's labels. ``first_seen_empty`` are
        not. A view never filled is behind even while All Mail is not indexed either: an
        older bridge may have left a first page in it, under its own folder's UIDs."""
        synced = self.all_mail.synced
        empty = {record.id for record in self.first_seen_empty()}
        return [
            record
            for record in self.views.values()
            if (record.synced is None or record.synced != synced) and record.id not in empty
        ]

    def first_seen_empty(self) -> list[MailboxRecord]:
        """Views never filled that LIST showed empty: in step with All Mail as it is, since
        a label put on a message after that LIST moves the message's MODSEQ past All
        Mail's synced state, and the next delta brings it."""
        return [
            record
            for record in self.views.values()
            if record.synced is None and record.status is not None and not record.status.messages
        ]


def label_views(conn: ImapConnection, records: Iterable[MailboxRecord]) -> LabelViews | None:
    """The account's label views, on a Gmail session with CONDSTORE and an All Mail; None
    elsewhere (every folder is then synced as itself)."""
    if conn.object_ids is not ObjectIds.GMAIL or not conn.modseq:
        return None
    records = list(records)
    all_mail = next((r for r in records if r.role == "all" and r.selectable), None)
    if all_mail is None:
        return None
    return LabelViews.of(all_mail, records)


@dataclass
class LabelPass:
    """What All Mail's sync learnt of labels: the views showing each UID fetched (every
    UID when ``whole``), and the UIDs that left All Mail."""

    shown: dict[int, frozenset[str]]
    removed: list[int]
    whole: bool

    @classmethod
    def fetch(
        cls,
        conn: ImapConnection,
        views: LabelViews,
        uids: Sequence[int] | None,
        removed: list[int],
        exists: int,
    ) -> LabelPass:
        """FETCH the labels of ``uids`` (every message for None) in the selected All Mail,
        which holds ``exists`` messages."""
        if not exists or (uids is not None and not uids):
            return cls({}, removed, whole=uids is None)
        wanted = "1:*" if uids is None else uid_set(sorted(uids))
        fetched = conn.fetch_meta(wanted, extra=(LABELS_ITEM,)).messages
        shown = {
            uid: views.shown_in(meta.raw.get(LABELS_ITEM) or ()) for uid, meta in fetched.items()
        }
        return cls(shown, removed, whole=uids is None)

    def apply(self, cache: Store, views: LabelViews, state: FolderState) -> set[str]:
        """Bring every view level with this pass, inside the caller's transaction (after
        All Mail's own delta); returns the Emails whose mailboxes or keywords changed."""
        source = views.all_mail.id
        changed: set[str] = set()
        named = [*self.shown, *self.removed]
        for view in views.views.values():
            known = cache.locations(view.id) if self.whole else cache.locations(view.id, uids=named)
            gone = [
                uid
                for uid in known
                if uid in self.removed
                or (uid in self.shown and view.id not in self.shown[uid])
                or (self.whole and uid not in self.shown)
            ]
            changed |= cache.apply_folder_delta(view.id, removed=gone)
            here = [uid for uid, shown in self.shown.items() if view.id in shown]
            changed |= cache.mirror_locations(source, view.id, here)
            cache.set_synced(view.id, state)
        return changed


def upstream_folder(conn: ImapConnection, cache: Store, record: MailboxRecord) -> str:
    """Where ``record``'s locations are read upstream: All Mail for a label view (its
    locations carry All Mail UIDs), the folder itself anywhere else."""
    if conn.object_ids is not ObjectIds.GMAIL:
        return record.name
    views = label_views(conn, cache.mailboxes())
    return record.name if views is None else views.upstream_name(record)
