"""Indexing folders never seen before: in the background for a big account, so its first
page does not wait for the whole mailbox.

A folder is indexed newest messages first, in chunks, each chunk in a transaction of its
own; the sync state recorded at the end is the one seen at the start, so the next delta
sync replays whatever changed meanwhile. Until a folder is indexed, its list view comes
from the server's SORT (``first_page``) and its counts from STATUS.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from bridge.coordination import UserLock
from bridge.coordination.base import Lease
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import CommandFailed, UpstreamError
from bridge.imap.flags import flags_to_keywords
from bridge.imap.pool import KEPT_OPEN, ConnectionPool
from bridge.imap.quoting import header_fields_item
from bridge.mail.background import BackgroundThread
from bridge.mail.folder_faults import mark_unreadable, refuses_folder
from bridge.mail.gmail_labels import label_views
from bridge.mail.header_text import FETCHED as HEADER_INDEX_FIELDS
from bridge.mail.header_text import header_text
from bridge.mail.summary import header_block
from bridge.mail.sync import NEW_MESSAGE_ITEMS, new_message, uid_set
from bridge.store.base import Store
from bridge.store.records import FlagUpdate, FolderState, MailboxRecord

log = logging.getLogger("bridge.index")

CHUNK = 1000
HEADER_INDEX_ITEMS = header_fields_item(HEADER_INDEX_FIELDS)
# The background indexer waits this long after the request that started it, so the
# request's own first page does not share the CPU with it.
START_DELAY = 1.0


@dataclass
class Progress:
    indexed: int = 0
    total: int = 0


@dataclass
class IndexState:
    """What a user's indexing has done so far: for logs and the status page."""

    folders: dict[str, Progress] = field(default_factory=dict)
    running: bool = False


def index_folder(
    cache: Store,
    conn: ImapConnection,
    record: MailboxRecord,
    lock: UserLock,
    progress: Progress | None = None,
    stopping: threading.Event | None = None,
) -> None:
    """Index one folder whole, newest first; ``stopping`` set ends it between chunks (the
    folder stays unindexed, and indexing resumes from the cache on a later request)."""
    progress = progress or Progress()
    selected = conn.select(record.name)
    present = conn.search_all_uids() if selected.exists else []
    with lock, cache.transaction():
        orphans = cache.set_index_uidvalidity(record.id, selected.uidvalidity)
        cache.purge_orphans(orphans)
    known = cache.locations(record.id)
    todo = sorted((uid for uid in present if uid not in known), reverse=True)
    progress.total, progress.indexed = len(present), len(present) - len(todo)
    for start in range(0, len(todo), CHUNK):
        if stopping is not None and stopping.is_set():
            return
        chunk = todo[start : start + CHUNK]
        fetched = conn.fetch_meta(uid_set(chunk), extra=NEW_MESSAGE_ITEMS).messages
        added = [new_message(record, selected.uidvalidity, meta) for meta in fetched.values()]
        with lock, cache.transaction():
            cache.apply_folder_delta(record.id, added=added)
        progress.indexed += len(chunk)
        log.info("indexing %s: %d of %d", record.name, progress.indexed, progress.total)
    # The first page was fetched before this started: bring its flags up to date too.
    still = set(present)
    early = [uid for uid in known if uid in still]
    updates: list[FlagUpdate] = []
    if early:
        for uid, meta in conn.fetch_meta(uid_set(early)).messages.items():
            keywords = flags_to_keywords(meta.flags)
            if keywords != known[uid].keywords:
                updates.append(FlagUpdate(uid, keywords, meta.modseq))
    state = FolderState(
        selected.uidvalidity,
        selected.uidnext,
        selected.exists,
        record.status.unseen if record.status else None,
        selected.highestmodseq,
    )
    with lock, cache.transaction():
        gone = [uid for uid in known if uid not in still]
        cache.apply_folder_delta(record.id, removed=gone, flag_updates=updates)
        cache.purge_orphans(known[uid].email_id for uid in gone)
        cache.set_synced(record.id, state)


def fill_header_index(
    cache: Store, conn: ImapConnection, lock: UserLock, stopping: threading.Event
) -> None:
    """Give the header index the Emails of a cache made before it (migration 7 leaves
    their rows empty, and queries ask the upstream for them meanwhile): each folder's
    From/To/Cc/Bcc/Subject fetched in chunks, newest first."""
    every = cache.mailboxes()
    views = label_views(conn, every)
    for record in every:
        if not record.selectable or not record.indexed:
            continue
        if views is not None and views.is_view(record.id):
            continue  # a Gmail label view: its Emails are All Mail's
        try:
            selected = conn.select(record.name)
        except CommandFailed as exc:
            if not refuses_folder(exc):
                raise
            continue
        if record.synced is None or selected.uidvalidity != record.synced.uidvalidity:
            continue  # the next sync indexes it afresh, with the fields
        below: int | None = None
        while uids := cache.without_header_text(record.id, CHUNK, below):
            if stopping.is_set():
                return
            fetched = conn.fetch_meta(uid_set(uids), extra=(HEADER_INDEX_ITEMS,)).messages
            texts = {
                uid: header_text(header_block(meta.raw) or b"") for uid, meta in fetched.items()
            }
            with lock:
                cache.set_header_texts(record.id, texts)
            below = min(uids)
    cache.header_backfill_done()


def unindexed(cache: Store, conn: ImapConnection) -> list[MailboxRecord]:
    """Folders still to index, INBOX first; never Gmail's label views, which All Mail's
    sync fills (bridge.mail.gmail_labels)."""
    every = cache.mailboxes()
    views = label_views(conn, every)
    records = [
        r for r in every
        if r.selectable and not r.indexed and (views is None or not views.is_view(r.id))
    ]  # fmt: skip
    return sorted(records, key=lambda r: (r.role != "inbox", r.name))


class BackgroundIndexer(BackgroundThread):
    """One thread per user, started by a request that found folders to index; stopped at
    the next chunk before the cache closes. Of several processes serving the user, the
    one holding the user's indexer lease indexes; the others' threads end at once."""

    def __init__(self, cache: Store, lock: UserLock, lease: Lease | None = None) -> None:
        super().__init__()
        self.cache = cache
        self.lock = lock
        self.lease = lease
        self.state = IndexState()

    def start(self, pool: ConnectionPool, username: str, password: str) -> None:
        self._launch(f"index-{username}", self._run, pool, username, password)

    def _starting(self) -> None:
        self.state.running = True

    def _run(self, pool: ConnectionPool, username: str, password: str) -> None:
        if self._stopping.wait(START_DELAY) or (self.lease and not self.lease.take()):
            self.state.running = False
            return
        try:
            with pool.connection(username, password) as conn:
                self.index_all(conn)
                if self.cache.header_backfill_due():
                    fill_header_index(self.cache, conn, self.lock, self._stopping)
            log.info("indexing of %s done", username)
        except UpstreamError as exc:
            log.warning("indexing of %s stopped: %s; it resumes on the next request",
                        username, exc)  # fmt: skip
        finally:
            self.state.running = False
            if self.lease is not None:
                self.lease.release()

    def index_all(self, conn: ImapConnection) -> None:
        records = unindexed(self.cache, conn)
        # On Gmail INBOX is a label view, never opened (bridge.mail.gmail_labels).
        keep_open = label_views(conn, self.cache.mailboxes()) is None
        for record in records:
            if self._stopping.is_set():
                return
            progress = self.state.folders.setdefault(record.name, Progress())
            try:
                index_folder(self.cache, conn, record, self.lock, progress, self._stopping)
            except CommandFailed as exc:
                # Gone since the sync listed it, or refused: the other folders go on.
                if not refuses_folder(exc):
                    raise
                with self.lock, self.cache.transaction():
                    self.cache.purge_orphans(mark_unreadable(self.cache, record, exc))
        if records and keep_open and conn.selected != KEPT_OPEN:
            # Back in the pool with INBOX open, a request's STATUS of it costs Dovecot next
            # to nothing; closed, a scan of the folder (4 ms for 10,000 messages).
            conn.select(KEPT_OPEN)
