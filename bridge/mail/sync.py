"""The sync core: bring one user's cache level with the upstream, doing as little as it can.

One LIST (with LIST-STATUS where offered) tells which folders changed since the cache last
looked; only those are SELECTed. Inside a folder the delta comes from QRESYNC (VANISHED and
changed FETCHes in the SELECT itself), else CONDSTORE (CHANGEDSINCE plus a UID SEARCH when
the message count says something was expunged), else what ``flag_scan`` plans: the open
INBOX's view of other sessions' changes, new mail and expunges from STATUS, and full scans
of UIDs and flags only where nothing cheaper is exact. Every
folder's delta, and the sync state that goes with it, lands in one cache transaction, so a
crash half way leaves the cache at the older, consistent state.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from bridge.imap.connection import ImapConnection
from bridge.imap.errors import CommandFailed
from bridge.imap.flags import flags_to_keywords
from bridge.imap.flagview import FolderView
from bridge.imap.models import MailboxListing, MessageMeta, QresyncParams, SelectResult
from bridge.imap.pool import KEPT_OPEN
from bridge.imap.quoting import header_fields_item
from bridge.imap.responses import ObjectIds
from bridge.imap.responses import format_sequence_set as uid_set
from bridge.mail.attachments import has_attachment_from_bodystructure
from bridge.mail.flag_scan import FlagScans, Plan, plan_folder
from bridge.mail.folder_faults import (
    NO_RIGHTS,
    log_unreadable,
    mark_unreadable,
    readable,
    refuses_folder,
    unreadable,
    without_contents,
)
from bridge.mail.folder_ids import SERVER_ID_PREFIX, has_server_id, minted_key, renamed_pairs
from bridge.mail.gmail_labels import LabelPass, LabelViews, label_views
from bridge.mail.header_text import FETCHED as INDEXED_HEADERS
from bridge.mail.header_text import header_text
from bridge.mail.roles import assign_roles
from bridge.mail.sort_keys import keys_from_summary
from bridge.mail.summary import (
    SUMMARY_ITEMS,
    encode_summary,
    has_summary_items,
    header_block,
    summary_from_fetch,
)
from bridge.mail.threading import base_subject, field_lines, header_fields, message_ids
from bridge.mail.written import Written
from bridge.store.base import Store
from bridge.store.journal import MAILBOX
from bridge.store.records import FlagUpdate, FolderState, Location, MailboxRecord, NewMessage

log = logging.getLogger("bridge.sync")

# What a first sight of a message needs: its size and date for the Email, the headers
# that place it in a thread when the upstream has no THREADID, and those the header index
# keeps (bridge.mail.header_text).
_THREADING = ("MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "SUBJECT")
HEADER_FIELDS = header_fields_item(
    (*_THREADING, *(name for name in INDEXED_HEADERS if name not in _THREADING))
)
# No BODYSTRUCTURE (hasAttachment): Dovecot answers it for 50,000 messages in 2.5 s, but
# indexing them took twice as long with it (29.5 -> 58.9 s, bridge parsing it), so an
# Email gets hasAttachment with its summary (with PREVIEW, which carries BODYSTRUCTURE,
# or when a hasAttachment query or Email/get first needs it).
NEW_MESSAGE_ITEMS = ("RFC822.SIZE", "INTERNALDATE", HEADER_FIELDS)
# With PREVIEW: the whole header block instead, so that the list-view summary comes along.
_NEW_MESSAGE_SUMMARY_ITEMS = ("RFC822.SIZE", "INTERNALDATE", *SUMMARY_ITEMS)

# How far back /changes can reach: older tombstones are forgotten.
KEEP_CHANGES = 500_000
# With mod-sequences, other folders are read on another session while an INBOX this big is
# open (keeps_inbox).
SIDE_FROM = 10_000
# The most new mail the sync after a request's writes reads back in a folder the indexer has
# not finished (Syncer.read_back).
READ_BACK_LIMIT = 1000
# Folders never indexed are indexed during the request while they hold this many messages
# in all; beyond that a background indexer does it, and queries ask the server meanwhile.
FOREGROUND_LIMIT = 500
# Where a folder first seen sits among its siblings until a client sets sortOrder.
DEFAULT_SORT_ORDER = {"inbox": 1, "drafts": 2, "sent": 3, "archive": 4, "junk": 5, "trash": 6}


@dataclass
class SyncReport:
    folders_listed: int = 0
    # Whether the folder list changed so that other folders' counts move (``_counts_moved``).
    folders_changed: bool = False
    # Whether the folders were counted as they were listed (a new cache's: ``_list``).
    folders_counted: bool = False
    folders_synced: list[str] = field(default_factory=list)
    emails_changed: int = 0
    # Folders left to the background indexer.
    unindexed: list[str] = field(default_factory=list)
    # Folders whose flags are due a full scan in the background (no mod-sequences).
    flag_scans_due: list[str] = field(default_factory=list)

    @property
    def recount_due(self) -> bool:
        """Whether every folder is to be counted afresh: the folder list changed so
        that counts move (a folder destroyed with its Emails, or the trash moved: RFC 8621
        §2's unreadThreads), unless it was counted as listed and no folder synced since."""
        return self.folders_changed and not (self.folders_counted and not self.folders_synced)


def _counts_moved(before: Sequence[MailboxRecord], after: Sequence[MailboxRecord]) -> bool:
    """Whether a change of the folder list moves other folders' counts: a folder that held
    mail gone or no longer readable (its Emails leave their threads), or the trash moved
    (RFC 8621 §2: unreadThreads leaves the trash's Emails out of other folders' counts, and
    theirs out of the trash's). A folder created (its mail is counted as it lands), renamed,
    (un)subscribed, or destroyed empty moves none: a recount of a big account's every
    folder is dear."""

    def shape(records: Sequence[MailboxRecord]) -> tuple[set[str], set[str]]:
        readable = {record.id for record in records if record.selectable}
        return readable, {record.id for record in records if record.role == "trash"}

    (readable_before, trash_before), (readable_after, trash_after) = shape(before), shape(after)
    gone = {record.id for record in before} - {record.id for record in after}
    holding = {record.id for record in before if record.counts.total_emails}
    return bool((gone | readable_before - readable_after) & holding) or trash_before != trash_after


def upstream_key(listing: MailboxListing) -> str | None:
    """The folder's own stable id when the server has one (MAILBOXID, Dovecot's X-GUID)."""
    if listing.status is not None and listing.status.guid:
        return f"{SERVER_ID_PREFIX}{listing.status.guid}"
    return None


def _status_state(listing: MailboxListing) -> FolderState | None:
    status = listing.status
    if status is None:
        return None
    return FolderState(
        status.uidvalidity, status.uidnext, status.messages, status.unseen, status.highestmodseq
    )


def _still_empty(status: FolderState, synced: FolderState) -> bool:
    """Empty when synced and still empty, no UID handed out since (nothing came and went)."""
    return (
        status.messages == synced.messages == 0
        and status.uidvalidity == synced.uidvalidity
        and status.uidnext == synced.uidnext
    )


def _flag_updates(fetched: dict[int, MessageMeta], known: dict[int, Location]) -> list[FlagUpdate]:
    """The fetched flags of known messages that differ from the cache's."""
    return [
        FlagUpdate(uid, keywords, meta.modseq)
        for uid, meta in fetched.items()
        if uid in known and (keywords := flags_to_keywords(meta.flags)) != known[uid].keywords
    ]


def new_message_items(conn: ImapConnection) -> tuple[str, ...]:
    """What to FETCH of mail seen for the first time; with PREVIEW, the whole header block
    instead of its threading fields, so that the list-view summary comes along."""
    if conn.has("PREVIEW"):
        return _NEW_MESSAGE_SUMMARY_ITEMS
    return NEW_MESSAGE_ITEMS


def fetch_new(conn: ImapConnection, uids: str) -> dict[int, MessageMeta]:
    """FETCH mail seen for the first time (``new_message_items``); PREVIEW refused, without
    the summary."""
    return conn.with_extension(
        "PREVIEW",
        lambda: conn.fetch_meta(uids, extra=_NEW_MESSAGE_SUMMARY_ITEMS),
        lambda: conn.fetch_meta(uids, extra=NEW_MESSAGE_ITEMS),
        no_refuses=True,
    ).messages


def _received_at(meta: MessageMeta) -> int:
    value = meta.raw.get("INTERNALDATE")
    timestamp = getattr(value, "timestamp", None)
    return int(timestamp()) if timestamp else 0


def new_message(
    mailbox: MailboxRecord, uidvalidity: int, meta: MessageMeta, *, page: bool = False
) -> NewMessage:
    """The cache's record of a message seen for the first time. ``page``: for a page that
    a client waits for (a folder not indexed yet), without what the answer does not need:
    the header index's words (the indexer fills them in after, as for a cache older than
    the index) and the cross-folder sort keys (made by the first query that needs them).
    They cost more than the rest of the record together."""
    fetched_block = header_block(meta.raw)
    block = fetched_block or b""
    fields = header_fields(block)
    own = message_ids(fields.get("message-id", []))
    referenced = message_ids(fields.get("in-reply-to", []) + fields.get("references", []))
    size = meta.raw.get("RFC822.SIZE")
    if meta.object_id:
        email_key = f"oid:{meta.object_id}"
    elif own:
        # No server id: the same headers and size in another folder are the same Email,
        # so a MOVE or COPY by another client keeps its id.
        # Over the threading fields alone, as HEADER_FIELDS brings them: the same key
        # whichever FETCH (indexing, a first page, a sync) saw the message.
        digest = hashlib.sha256(field_lines(block, _THREADING) + str(size).encode()).hexdigest()
        email_key = f"dedupe:{digest}"
    else:
        email_key = f"uid:{mailbox.upstream_key}:{uidvalidity}:{meta.uid}"
    subject = b" ".join(fields.get("subject", [])[-1:]).decode("utf-8", "replace")
    summary = summary_from_fetch(meta.raw) if has_summary_items(meta.raw) else None
    structure = meta.raw.get("BODYSTRUCTURE")
    if summary is not None:
        has_attachment: bool | None = summary["hasAttachment"]  # from the same structure
    else:
        has_attachment = None if structure is None else has_attachment_from_bodystructure(structure)
    return NewMessage(
        uid=meta.uid,
        email_key=email_key,
        keywords=flags_to_keywords(meta.flags),
        modseq=meta.modseq,
        size=int(size) if isinstance(size, int) else 0,
        received_at=_received_at(meta),
        thread_key=f"tid:{meta.thread_object_id}" if meta.thread_object_id else None,
        message_ids=own,
        referenced_ids=referenced,
        base_subject=base_subject(subject),
        summary=None if summary is None else encode_summary(summary),
        sort_keys=None if summary is None or page else keys_from_summary(summary),
        header_text=None if fetched_block is None or page else header_text(block, fields),
        has_attachment=has_attachment,
    )


class Syncer:
    """Syncs one user's cache over one borrowed connection."""

    def __init__(
        self,
        cache: Store,
        conn: ImapConnection,
        flag_scans: FlagScans | None = None,
        flag_scan_interval: float = 0.0,
        written: Written | None = None,
        side: Callable[[], ImapConnection] | None = None,
    ) -> None:
        self.cache = cache
        self.conn = conn
        # Without mod-sequences, where other folders are synced while ``conn`` follows INBOX
        # (flag_scan.SideConnection).
        self.side = side
        self._side_syncer: Syncer | None = None
        # Without mod-sequences: who scans flags in the background, and how often. None
        # scans every folder in full on every sync (exact, and dear).
        self.flag_scans = flag_scans
        self.flag_scan_interval = flag_scan_interval
        # What this request wrote, to read back where no STATUS item shows it.
        self.written = written or Written()
        # Emails that left a folder during this sync: destroyed at its end unless another
        # folder turned out to hold them (a MOVE by another client).
        self.orphans: set[str] = set()
        self.modseq = conn.modseq
        self.qresync = conn.has("QRESYNC")
        # On Gmail: All Mail and the label folders its sync fills (see gmail_labels).
        self.labels: LabelViews | None = None
        # Folders whose STATUS alone moved since the cache's last LIST: written by this
        # sync's next write transaction (``_list``).
        self._statuses_due: list[MailboxRecord] = []
        self._listed: Sequence[MailboxRecord] = ()  # the folders as this sync listed them

    def sync(self, foreground_limit: int = FOREGROUND_LIMIT) -> SyncReport:
        report, listed = self._list(defer_statuses=True)
        # A changed folder list calls for a whole recount (``recount_due``); mail changes
        # keep counts right as they land.
        records = [r for r in listed if r.selectable]
        self.labels = label_views(self.conn, records)
        self._listed = records
        if self.labels is not None:
            # Never SELECTed: All Mail's sync fills them.
            records = [r for r in records if not self.labels.is_view(r.id)]
            self._settle_views(self.labels)
        new = [r for r in records if not r.indexed]
        waiting = sum(r.status.messages for r in new if r.status is not None)
        if waiting > foreground_limit:
            report.unindexed = [r.name for r in new]
            # Of those, what this request wrote is read back (not on Gmail, whose folders
            # All Mail's sync fills).
            records = [
                r for r in records
                if r.indexed or (self.labels is None and self.written.touches(r.name))
            ]  # fmt: skip
            if KEPT_OPEN in report.unindexed and self.conn.selected is None:
                # Its first page will need it open (on Dovecot _list opened it already).
                self.conn.select(KEPT_OPEN)
        # INBOX last: the connection goes back to the pool with it open, and the next sync
        # asks the open folder what changed (ImapConnection.select) instead of a new SELECT.
        records.sort(key=lambda record: record.name == KEPT_OPEN)
        skipped: set[str] = set()  # folders found unreadable on the way
        empty: list[MailboxRecord] = []  # new folders STATUS says are empty
        for record in records:
            if record.name in report.unindexed:
                self._read_back_written(record)
                continue
            if not self.needs_sync(record) and not self._labels_behind(record):
                continue
            if self._empty_at_first(record):
                empty.append(record)
                continue
            try:
                self._syncer_for(record).sync_folder(record, report)
            except CommandFailed as exc:
                # Gone since LIST, or refused: the other folders sync on.
                self.skip_refused(record, exc)
                skipped.add(record.id)
                continue
            report.folders_synced.append(record.name)
        if empty:
            with self.cache.transaction():
                self._write_statuses()
                for record in empty:
                    assert record.status is not None
                    self.cache.set_synced(record.id, record.status)
            report.folders_synced.extend(record.name for record in empty)
        if self.flag_scans is not None and not self.modseq:
            kept = [record for record in records if record.id not in skipped]
            due = self.flag_scans.due(kept, self.flag_scan_interval)
            report.flag_scans_due = [record.name for record in due]
        # Folders left to the indexer keep STATUS's counts; ``listed`` holds them as they
        # are now, since their syncs wait for the indexer.
        whole = report.recount_due
        if self.orphans or whole or self.cache.server_counts_due(listed):
            with self.cache.transaction():
                self._write_statuses()
                self.cache.purge_orphans(self.orphans)
                self.cache.recount(None if whole else ())
        elif self._statuses_due:  # no folder's delta was written to take them
            with self.cache.transaction():
                self._write_statuses()
        self.orphans.clear()
        self.cache.prune(KEEP_CHANGES)
        return report

    # -- the folder list ----------------------------------------------------------------

    def sync_list(self) -> SyncReport:
        """Only the folder list: names, hierarchy, roles, subscriptions, STATUS."""
        report, _ = self._list()
        with self.cache.transaction():
            self.cache.purge_orphans(self.orphans)
            if report.recount_due:  # as the full sync's
                self.cache.recount(None)
        self.orphans.clear()
        return report

    def _list(self, *, defer_statuses: bool = False) -> tuple[SyncReport, list[MailboxRecord]]:
        """LIST-STATUS into the cache; the report, and the cached folders after it.
        ``defer_statuses``: where only the STATUS of indexed folders moved (new mail, a
        flag changed: most syncs that find anything), it is left to the sync's next write
        transaction, which the folders' deltas open anyway: one transaction, not two
        (on a store across a network, its lock and round trips)."""
        # Dovecot answers STATUS of the selected folder from the session's own, possibly
        # stale, view. INBOX, kept open between requests (see the pool), is brought up to
        # date by a NOOP. Not open, Dovecot's INBOX is opened first: from the open view its
        # STATUS costs next to nothing, read with nothing selected it is the dearest part
        # of the LIST-STATUS (10,000 messages: EXAMINE + LIST-STATUS 3.7 ms, 11 ms the
        # other way round). Other servers' costs are not known: anything open is closed.
        if self.conn.selected == KEPT_OPEN:
            self.conn.noop()
        elif self.conn.object_ids is ObjectIds.DOVECOT:
            try:
                self.conn.select(KEPT_OPEN)
            except CommandFailed:
                self.conn.unselect()
        else:
            self.conn.unselect()
        listings = self.conn.list_mailboxes()
        report = SyncReport(folders_listed=len(listings))
        records = self.cache.mailboxes()
        moved = self._moved_statuses(records, listings)
        if moved is not None and (not moved or defer_statuses):
            # The usual case, decided without a write transaction (and its lock and round
            # trips): nothing would be written, or only what the deltas' write will take.
            # (Read outside one: a concurrent writer's change is its own sync's to log.)
            self._statuses_due[:] = moved
            fresh = {record.id: record for record in moved}
            return report, [fresh.get(record.id, record) for record in records]
        with self.cache.transaction() as reconciled:
            self.reconcile_mailboxes(listings)
            if not records:
                # A new cache: nothing is indexed, every count is the server's STATUS.
                # Given now, a first login's folder list is one transaction, not two.
                self.cache.recount(None)
                report.folders_counted = True
        after = self.cache.mailboxes()
        report.folders_changed = MAILBOX in reconciled.logged and _counts_moved(records, after)
        return report, after

    def _moved_statuses(
        self, records: Sequence[MailboxRecord], listings: Sequence[MailboxListing]
    ) -> list[MailboxRecord] | None:
        """If ``records`` are these folders as listed but for the STATUS of indexed ones,
        those folders as listed now (none: exactly as listed); else None."""
        paired, unmatched = self._paired(records, listings)
        ids = {old.id for old, _ in paired}
        if unmatched or len(paired) != len(records) or len(ids) != len(records):
            return None
        moved: list[MailboxRecord] = []
        for old, new in paired:
            if old == new:
                continue
            status_only = msgspec.structs.replace(old, status=new.status) == new
            if not (status_only and old.indexed and old.selectable and new.status is not None):
                return None
            moved.append(new)
        return moved

    def _write_statuses(self) -> None:
        """Inside a write transaction: the STATUS ``_list`` left to it. Lost if it rolls
        back, as the sync fails then: the next one lists again."""
        due = list(self._statuses_due)
        self._statuses_due.clear()  # in place: a side syncer shares the list
        for record in due:
            self.cache.set_status(record.id, record.status)

    def reconcile_mailboxes(self, listings: Sequence[MailboxListing]) -> None:
        """Match listed folders to cached mailboxes: by server id where there is one, else
        by the rules of ``folder_ids``; update, remove and add accordingly."""
        records = self.cache.mailboxes()
        roles = assign_roles(listings)
        paired, unmatched = self._paired(records, listings, roles)
        for old, new in paired:
            self._update(old, new)
        seen = {old.id for old, _ in paired}
        gone = [r for r in records if r.id not in seen]
        renamed = renamed_pairs([u for u in unmatched if not upstream_key(u)], gone)
        for listing in unmatched:
            if (old := renamed.get(listing.name)) is not None:
                gone.remove(old)
                self._update(old, self._record(old, listing, roles.get(listing.name)))
        for record in gone:
            self.orphans |= self.cache.remove_mailbox(record.id)
        taken = {r.upstream_key for r in records}
        added: list[MailboxRecord] = []
        for listing in unmatched:
            if listing.name in renamed:
                continue
            role = roles.get(listing.name)
            key = upstream_key(listing) or minted_key(listing, taken)
            taken.add(key)
            new = MailboxRecord(
                id=self.cache.mailbox_id_for(key),
                upstream_key=key,
                name="",
                sort_order=DEFAULT_SORT_ORDER.get(role or "", 10),
            )
            record = self._record(new, listing, role)
            if readable(listing):
                record = msgspec.structs.replace(record, rights=self._rights(listing.name))
            elif unreadable(record):
                log_unreadable(record.id, "no STATUS")
            added.append(record)
        self.cache.add_mailboxes(added)

    def _paired(
        self,
        records: Sequence[MailboxRecord],
        listings: Sequence[MailboxListing],
        roles: dict[str, str] | None = None,
    ) -> tuple[list[tuple[MailboxRecord, MailboxRecord]], list[MailboxListing]]:
        """(cached record, its record as listed now) for each listed folder the cache
        knows, and the listings it does not."""
        by_key = {r.upstream_key: r for r in records}
        by_name = {r.name: r for r in records if not has_server_id(r)}
        # A folder listed without STATUS (unreadable) has nothing but its name to go by,
        # server id or not.
        by_name_only = {r.name: r for r in records}
        if roles is None:
            roles = assign_roles(listings)
        paired: list[tuple[MailboxRecord, MailboxRecord]] = []
        unmatched: list[MailboxListing] = []
        for listing in listings:
            key = upstream_key(listing)
            if key:
                old = by_key.get(key)
            elif listing.selectable and listing.status is None:
                old = by_name_only.get(listing.name)
            else:
                old = by_name.get(listing.name)
            if old is None:
                unmatched.append(listing)
            else:
                paired.append((old, self._record(old, listing, roles.get(listing.name))))
        return paired, unmatched

    def _update(self, old: MailboxRecord, new: MailboxRecord) -> None:
        """Store a listed folder's new record; log once when it turns (un)readable."""
        if unreadable(new) and not unreadable(old):
            log_unreadable(old.id, "no STATUS")
            self.orphans |= without_contents(self.cache, old.id)
        elif unreadable(old) and not unreadable(new):
            log.info("folder %s can be read again", old.id)
            new = msgspec.structs.replace(new, rights=self._rights(new.name))
        self.cache.update_mailbox(old, new)

    def _rights(self, name: str) -> str | None:
        """The user's ACL letters on a folder; None (all rights) without the ACL extension."""
        if not self.conn.has("ACL"):
            return None
        try:
            return self.conn.myrights(name)
        except CommandFailed:
            return NO_RIGHTS

    @staticmethod
    def _record(old: MailboxRecord, listing: MailboxListing, role: str | None) -> MailboxRecord:
        """``old`` with what the listing says; what only bridge knows (sortOrder) stays. A
        folder whose SELECT was refused stays unreadable while its STATUS holds still."""
        status = _status_state(listing)
        refused = unreadable(old) and old.status is not None and old.status == status
        cannot_read = listing.selectable and (status is None or refused)
        return msgspec.structs.replace(
            old,
            name=listing.name,
            delimiter=listing.delimiter,
            role=role,
            subscribed=listing.subscribed,
            selectable=listing.selectable and not cannot_read,
            rights=NO_RIGHTS if cannot_read else old.rights,
            status=status,
            special_use=listing.special_use,
        )

    # -- one folder ---------------------------------------------------------------------

    def needs_sync(self, record: MailboxRecord) -> bool:
        if record.synced is None or record.status is None:
            return True
        if record.name != KEPT_OPEN and _still_empty(record.status, record.synced):
            # No message, so no flag to change: exact without mod-sequences. (INBOX is
            # opened all the same, to go back to the pool open.)
            return False
        if not self.modseq:
            return self._plan(record) is not Plan.SKIP
        if record.status.modseq is None:
            return True  # without mod-sequences a flag change shows in no STATUS item
        return record.status != record.synced

    def _labels_behind(self, record: MailboxRecord) -> bool:
        """Whether ``record`` is All Mail, indexed, with label views to fill."""
        views = self.labels
        return (
            views is not None
            and record.id == views.all_mail.id
            and record.indexed
            and bool(views.behind())
        )

    def _settle_views(self, views: LabelViews) -> None:
        """What All Mail's sync cannot do for the views: a view first seen empty is in step
        as it is; while All Mail waits for the indexer, a view behind it is emptied (an
        older bridge filled it from its own folder, under that folder's UIDs)."""
        with self.cache.transaction():
            if views.all_mail.indexed:
                for view in views.first_seen_empty():
                    self.cache.set_synced(view.id, views.all_mail.synced)
                return
            for view in views.behind():
                if self.cache.location_count(view.id):
                    self.orphans |= without_contents(self.cache, view.id)

    def _label_pass(
        self, record: MailboxRecord, selected: SelectResult, delta: _Delta
    ) -> LabelPass | None:
        """On Gmail, after All Mail's delta: the labels of what it names (of every
        message while a view is behind)."""
        views = self.labels
        if views is None or record.id != views.all_mail.id:
            return None
        if views.behind():
            return LabelPass.fetch(self.conn, views, None, delta.removed, selected.exists)
        named = sorted({*delta.new, *delta.changed})
        return LabelPass.fetch(self.conn, views, named, delta.removed, selected.exists)

    def _read_back_written(self, record: MailboxRecord) -> None:
        """A folder left to the indexer that this request wrote to: what it wrote, read
        back, so that its answers and its next writes see it before the indexer is done."""
        try:
            self.read_back(record, self.written.named(record.name),
                           self.written.arrived.get(record.name))  # fmt: skip
        except CommandFailed as exc:
            self.skip_refused(record, exc)

    def read_back(
        self, record: MailboxRecord, uids: Iterable[int], lowest: int | None = None
    ) -> None:
        """Read again the messages ``uids`` of a folder, and add its mail from UID
        ``lowest`` on: for a folder the indexer has not finished, whose cache holds only
        what its first pages and the chunks indexed so far saw (what others changed in it
        meanwhile shows once the indexer is done: its sync state is from its start, and the
        next delta replays the rest); for any folder, an Email's copies there checked
        before a write trusts them."""
        named = sorted(set(uids))
        selected = self.conn.select(record.name, fresh=True)
        if record.synced is not None and record.synced.uidvalidity != selected.uidvalidity:
            return  # every UID is new: its next sync reads it afresh
        fetched: dict[int, MessageMeta] = {}
        if named and selected.exists:
            fetched = self.conn.fetch_meta(uid_set(named)).messages
        arrived: dict[int, MessageMeta] = {}
        if lowest is not None and selected.exists and selected.uidnext > lowest:
            # At most the newest READ_BACK_LIMIT: more new mail than that is the indexer's
            # (its sync state predates it, so the delta after it fetches the rest).
            lowest = max(lowest, selected.uidnext - READ_BACK_LIMIT)
            # "n:*" always includes the highest UID, even below n: filter by ``lowest``.
            found = fetch_new(self.conn, f"{lowest}:*")
            arrived = {uid: meta for uid, meta in found.items() if uid >= lowest}
        with self.cache.transaction():
            self._write_statuses()
            if record.synced is None:
                self.orphans |= self.cache.set_index_uidvalidity(record.id, selected.uidvalidity)
            known = self.cache.locations(record.id, uids=[*named, *arrived])
            removed = [uid for uid in named if uid in known and uid not in fetched]
            flag_updates = _flag_updates(fetched, known)
            added = [
                new_message(record, selected.uidvalidity, meta, page=True)
                for uid, meta in arrived.items()
                if uid not in known
            ]
            self.cache.apply_folder_delta(record.id, removed, flag_updates, added)
        self.orphans.update(known[uid].email_id for uid in removed)

    def settle(self) -> None:
        """After a folder's sync outside ``sync``: Emails left in no folder go, and the
        folders' counts follow."""
        with self.cache.transaction():
            self.cache.purge_orphans(self.orphans)
            self.cache.recount(())
        self.orphans.clear()

    def _empty_at_first(self, record: MailboxRecord) -> bool:
        """A folder's first sync where STATUS says it is empty and the cache holds nothing
        of it (no first page): its state is its STATUS, recorded without opening it. A new
        folder (a Mailbox/set create) then costs no SELECT, nor one of INBOX after it to
        leave the connection with INBOX open for the pool. With mod-sequences only: GNU
        imap4d's UIDVALIDITY and UIDNEXT of an empty folder move when it is opened."""
        status = record.status
        return (
            self.modseq
            and record.synced is None
            and status is not None
            and status.messages == 0
            and bool(status.uidvalidity and status.uidnext)
            and record.index_uidvalidity is None
            and record.name != KEPT_OPEN
            and self.labels is None
        )

    def _syncer_for(self, record: MailboxRecord) -> Syncer:
        """This syncer, or for a folder other than INBOX while this connection has an INBOX
        open worth keeping open, one on the side connection (sharing the orphans and the
        STATUS left to the next write transaction)."""
        if self.side is None or record.name == KEPT_OPEN:
            return self
        if not keeps_inbox(self.conn, lambda: self._listed):
            return self
        if self._side_syncer is None:
            self._side_syncer = Syncer(
                self.cache, self.side(), self.flag_scans, self.flag_scan_interval,
                self.written,
            )  # fmt: skip
            self._side_syncer.orphans = self.orphans
            self._side_syncer._statuses_due = self._statuses_due
        return self._side_syncer

    def _plan(self, record: MailboxRecord) -> Plan:
        if self.flag_scans is None:
            return Plan.FULL
        plan = plan_folder(record, self.conn.view)
        if plan is Plan.SKIP and self.written.flags.get(record.name):
            return Plan.COUNTS  # which reads the flags written, too
        return plan

    def rescan(self, record: MailboxRecord) -> None:
        """A full scan of one folder's flags (the background's), as a sync of its own."""
        try:
            self.sync_folder(record, SyncReport(), full=True)
        except CommandFailed as exc:
            self.skip_refused(record, exc)  # the round goes on with the other folders
        self.settle()

    def skip_refused(self, record: MailboxRecord, exc: CommandFailed) -> None:
        """A folder whose SELECT was refused (gone since LIST, no permission) is kept as one
        that cannot be read, and the caller goes on with the others; anything else raises."""
        if not refuses_folder(exc):
            raise exc
        with self.cache.transaction():
            self.orphans |= mark_unreadable(self.cache, record, exc)

    def sync_folder(self, record: MailboxRecord, report: SyncReport, *, full: bool = False) -> None:
        synced = record.synced
        resumable = synced is not None and synced.modseq is not None and self.modseq
        plan = Plan.FULL if full or self.modseq else self._plan(record)
        view = self.conn.view  # an open folder's view: kept by a SELECT of the same folder
        started = time.monotonic()
        selected = self._select(record)
        same = synced is not None and synced.uidvalidity == selected.uidvalidity
        if same and resumable:
            # A delta: only the locations it names are read from the cache.
            assert synced is not None
            if self.qresync:
                delta = self._qresync_delta(selected, record.id, synced)
            else:
                delta = self._condstore_delta(selected, record.id, synced)
            known = delta.known
        elif same and plan is Plan.VIEW and view is not None and self.conn.view is view:
            delta = self._view_delta(record.id, view)
            # A STORE of this request's, on this session (.SILENT: the view heard nothing).
            self._read_written(delta, record)
            known = delta.known
        elif same and plan is Plan.COUNTS:
            assert synced is not None
            delta = self._condstore_delta(selected, record.id, synced)  # counts only
            self._read_written(delta, record)
            known = delta.known
        else:
            known = self.cache.locations(record.id)
            if synced is None and record.index_uidvalidity == selected.uidvalidity:
                # Indexed for the first time, with a first page already in the cache.
                delta = self._full_scan(selected, known)
            elif synced is None or synced.uidvalidity != selected.uidvalidity:
                # Seen for the first time, or its UIDVALIDITY changed: every old UID is
                # gone and every present one is new (X-GUID keeps the Email ids).
                delta = self._full_scan(selected, {})
                delta.removed = sorted(known)
            else:
                delta = self._full_scan(selected, known)
        added = [new_message(record, selected.uidvalidity, meta) for meta in delta.new.values()]
        flag_updates = _flag_updates(delta.changed, known)
        state = FolderState(
            selected.uidvalidity,
            selected.uidnext,
            selected.exists,
            record.status.unseen if record.status else None,
            selected.highestmodseq if self.modseq else None,
        )
        self.orphans.update(known[uid].email_id for uid in delta.removed if uid in known)
        labels = self._label_pass(record, selected, delta)
        with self.cache.transaction():
            self._write_statuses()
            changed = self.cache.apply_folder_delta(record.id, delta.removed, flag_updates, added)
            self.cache.set_synced(record.id, state)
            if labels is not None and self.labels is not None:
                changed |= labels.apply(self.cache, self.labels, state)
        report.emails_changed += len(changed)
        log.debug(
            "synced %s: -%d ~%d +%d", record.name, len(delta.removed), len(flag_updates), len(added)
        )
        if delta.scanned is not None and not self.modseq:
            self._scanned(record, delta.scanned, started)
        elif plan is Plan.VIEW and not self._view_agrees(record.id):
            log.info("%s: the open view disagrees with the cache; scanning it", record.name)
            self.sync_folder(msgspec.structs.replace(record, synced=state), report, full=True)

    def _scanned(self, record: MailboxRecord, scan: _Scan, started: float) -> None:
        """After a full scan the cache holds: follow the folder from here, if the scan's
        reply carried nothing but its own answers (else the next sync scans again)."""
        if self.flag_scans is not None:
            self.flag_scans.scanned(record.id, started)
        view = self.conn.view
        if view is not None and view is scan.view and view.events == scan.events:
            view.rebase(scan.uids)

    def _view_agrees(self, mailbox_id: str) -> bool:
        view = self.conn.view
        return (
            view is not None
            and view.based
            and view.mapped == view.exists
            and self.cache.location_count(mailbox_id) == view.mapped
        )

    def _select(self, record: MailboxRecord) -> SelectResult:
        synced = record.synced
        if self.qresync and synced is not None and synced.modseq is not None:
            params = QresyncParams(synced.uidvalidity, synced.modseq, None)
            return self.conn.select(record.name, qresync=params)
        return self.conn.select(record.name)

    def _full_scan(self, selected: SelectResult, known: dict[int, Location]) -> _Delta:
        view = self.conn.view
        # Each FETCH answer is one response the view counts: any more came unasked.
        events = view.events if view is not None else 0
        if not selected.exists:
            return _Delta(removed=sorted(known), scanned=_Scan(view, events, []))
        if not known:
            new = fetch_new(self.conn, "1:*")
            return _Delta(new=new, scanned=_Scan(view, events + len(new), list(new)))
        present = self.conn.fetch_meta("1:*").messages
        new_uids = [uid for uid in present if uid not in known]
        new = {}
        if new_uids:
            new = fetch_new(self.conn, uid_set(new_uids))
        return _Delta(
            removed=sorted(uid for uid in known if uid not in present),
            changed={uid: meta for uid, meta in present.items() if uid in known},
            new=new,
            scanned=_Scan(view, events + len(present) + len(new), list(present)),
        )

    def _read_written(self, delta: _Delta, record: MailboxRecord) -> None:
        """Add the flags of the messages this request stored flags on to ``delta``."""
        written = self.written.flags.get(record.name)
        if not written:
            return
        fetched = self.conn.fetch_meta(uid_set(sorted(written))).messages
        known = self.cache.locations(record.id, uids=fetched)
        delta.known.update(known)
        gone = set(delta.removed)
        delta.changed.update(
            (uid, meta) for uid, meta in fetched.items() if uid in known and uid not in gone
        )

    def _view_delta(self, mailbox_id: str, view: FolderView) -> _Delta:
        """What the open folder's view was told since the last sync (see imap.flagview);
        the NOOP that reopening the folder sent brought it up to date."""
        start = view.known_up_to + 1
        new: dict[int, MessageMeta] = {}
        if view.exists > view.mapped or view.last_uid >= start:
            # Fetched before the drain: the view maps the new numbers as the answers come.
            fetched = fetch_new(self.conn, f"{start}:*")
            new = {uid: meta for uid, meta in fetched.items() if uid >= start}
        changes = view.drain()
        named = set(changes.flags) | changes.expunged
        known = self.cache.locations(mailbox_id, uids=named, from_uid=start)
        return _Delta(
            removed=sorted(uid for uid in changes.expunged if uid in known),
            changed={
                uid: MessageMeta(uid=uid, flags=flags)
                for uid, flags in changes.flags.items()
                if uid in known
            },
            new={
                uid: msgspec.structs.replace(meta, flags=changes.flags.get(uid, meta.flags))
                for uid, meta in new.items()
                if uid not in known and uid not in changes.expunged
            },
            known=known,
        )

    def _qresync_delta(
        self, selected: SelectResult, mailbox_id: str, synced: FolderState
    ) -> _Delta:
        # The SELECT's FETCHes cover new messages too, but with flags only.
        named = set(selected.vanished) | set(selected.changed)
        known = self.cache.locations(mailbox_id, uids=named, from_uid=synced.uidnext)
        return _Delta(
            removed=sorted(uid for uid in selected.vanished if uid in known),
            changed={uid: meta for uid, meta in selected.changed.items() if uid in known},
            new=self._fetch_new(selected, known, synced.uidnext),
            known=known,
        )

    def _condstore_delta(
        self, selected: SelectResult, mailbox_id: str, synced: FolderState
    ) -> _Delta:
        fetched: dict[int, MessageMeta] = {}
        if synced.uidnext > 1 and self.modseq:  # without, only new mail and expunges
            found = self.conn.fetch_meta(f"1:{synced.uidnext - 1}", changedsince=synced.modseq)
            fetched = found.messages
        known = self.cache.locations(mailbox_id, uids=fetched, from_uid=synced.uidnext)
        changed = {uid: meta for uid, meta in fetched.items() if uid in known}
        new = self._fetch_new(selected, known, synced.uidnext)
        removed: list[int] = []
        if selected.exists != self.cache.location_count(mailbox_id) + len(new):
            # The count says something was expunged: one UID SEARCH tells what.
            known = self.cache.locations(mailbox_id)
            present = set(self.conn.search_all_uids()) if selected.exists else set()
            removed = sorted(uid for uid in known if uid not in present)
            changed = {uid: meta for uid, meta in changed.items() if uid in present}
        return _Delta(removed=removed, changed=changed, new=new, known=known)

    def _fetch_new(
        self, selected: SelectResult, known: dict[int, Location], start: int
    ) -> dict[int, MessageMeta]:
        if not selected.exists or selected.uidnext <= start:
            return {}
        # "n:*" always includes the highest UID, even below n: filter by start.
        fetched = fetch_new(self.conn, f"{start}:*")
        return {uid: meta for uid, meta in fetched.items() if uid >= start and uid not in known}


def keeps_inbox(conn: ImapConnection, records: Callable[[], Iterable[MailboxRecord]]) -> bool:
    """Whether ``conn`` has an INBOX open that is worth keeping open while other folders
    are read (on another connection): without mod-sequences, one its view follows, which
    spares a full flag scan of it; with them, a big one (its size from ``records``, read
    only then), whose SELECT costs Dovecot a scan of its Maildir (~100 ms at 50,000
    messages) where another session costs a LOGIN."""
    if conn.selected != KEPT_OPEN:
        return False
    if not conn.modseq:
        view = conn.view
        return view is not None and view.name == KEPT_OPEN and view.based
    inbox = next((r for r in records() if r.name == KEPT_OPEN), None)
    return inbox is not None and inbox.status is not None and inbox.status.messages >= SIDE_FROM


@dataclass
class _Scan:
    """A full scan: the view it ran under, the count of responses that view should have
    seen by its end, and every UID present."""

    view: FolderView | None
    events: int
    uids: list[int]


@dataclass
class _Delta:
    removed: list[int] = field(default_factory=list)
    changed: dict[int, MessageMeta] = field(default_factory=dict)
    new: dict[int, MessageMeta] = field(default_factory=dict)
    # The cache's locations for the UIDs the delta names.
    known: dict[int, Location] = field(default_factory=dict)
    scanned: _Scan | None = None
