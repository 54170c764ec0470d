"""A user's account: their cache, and per request one upstream connection and one sync.

``UserData`` lives as long as the process and is shared by the user's requests;
``Account`` lives for one JMAP request. The request borrows a single IMAP connection on
first use and gives it back at the end, so a request of ten method calls costs one
checkout, and syncs the cache at most once.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bridge import deadline, inline
from bridge.config import Settings
from bridge.coordination import Coordinator, LocalCoordinator, UserLock
from bridge.coordination.base import INDEXER, Lease
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import (
    CommandFailed,
    DeadlinePassed,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bridge.imap.pool import KEPT_OPEN, ConnectionPool
from bridge.imap.responses import ObjectIds
from bridge.mail.flag_scan import FlagScans, Round
from bridge.mail.folder_faults import mark_unreadable, refuses_folder
from bridge.mail.freshness import Freshness
from bridge.mail.gmail_labels import label_views
from bridge.mail.indexer import BackgroundIndexer, unindexed
from bridge.mail.sync import Syncer, SyncReport, keeps_inbox
from bridge.mail.written import Written
from bridge.store.base import Store, Stores
from bridge.store.health import CacheDamaged
from bridge.store.ids import derive_id
from bridge.store.journal import EMAIL_DELIVERY, LOGGED_TYPES
from bridge.store.records import MailboxRecord
from bridge.store.stores import SqliteStores
from bridge.store.uploads import UploadStore

log = logging.getLogger("bridge.mail")

PUSHED_TYPES = (*LOGGED_TYPES, EMAIL_DELIVERY)


def account_id_for(username: str) -> str:
    return derive_id("a", f"user:{username}")


@dataclass
class UserData:
    username: str
    cache: Store
    uploads: UploadStore
    # One sync at a time per user, across processes (bridge.coordination); a request that
    # waited for another's sync uses its result. Also held while Mailbox/set changes the
    # folder list and while a watcher starts its NOTIFY: Dovecot answers a CREATE that runs
    # beside another session's NOTIFY SET with "Mailbox already exists", having made the
    # mailbox.
    sync_lock: UserLock = field(default_factory=UserLock)
    # What the processes serving this user agree on (one watcher, one indexer).
    coordinator: Coordinator = field(default_factory=LocalCoordinator)
    sync_generation: int = 0
    # When (time.monotonic()) a sync last found the upstream silent (a timeout): requests
    # that waited for that sync fail at once rather than time out again one after another.
    silent_at: float | None = None
    indexer: BackgroundIndexer = field(init=False)
    # Full flag scans of folders not kept open, on servers without CONDSTORE.
    flag_scans: FlagScans = field(init=False)
    # VacationResponse lives on the ManageSieve server, which push must not poll: its
    # state is what this process last saw there (None until a /set), and one /set of
    # the user's runs at a time.
    vacation_state: str | None = None
    vacation_lock: threading.Lock = field(default_factory=threading.Lock)
    rebuild_lock: threading.Lock = field(default_factory=threading.Lock)
    # Whether a watcher vouches for the cache, so that a request need not sync.
    freshness: Freshness = field(default_factory=Freshness)

    def __post_init__(self) -> None:
        self.indexer = self._new_indexer()
        self.flag_scans = FlagScans(self.sync_lock)

    @property
    def account_id(self) -> str:
        return account_id_for(self.username)

    @contextmanager
    def syncing(self) -> Iterator[None]:
        """The sync lock, waited for no longer than the request's time allows (a sync stuck
        on a silent upstream must not hold every later request of the user)."""
        if not deadline.acquire(self.sync_lock):
            raise DeadlinePassed("the user's sync did not finish in time")
        try:
            yield
        finally:
            self.sync_lock.release()

    def rebuild_cache(self) -> None:
        """Replace a damaged cache by an empty one, which the next sync fills from the
        upstream: no sync or indexing chunk runs meanwhile."""
        inline.refuse("a cache rebuild")
        with self.rebuild_lock:
            if not self.cache.damaged:
                return  # another request rebuilt it first
            self.indexer.stop()
            with self.sync_lock:
                self.cache.rebuild()
                # An empty cache: requests sync it themselves until the watcher has.
                self.freshness.heard()
                self.indexer = self._new_indexer()

    def _new_indexer(self) -> BackgroundIndexer:
        lease = Lease(self.coordinator, self.username, INDEXER)
        return BackgroundIndexer(self.cache, self.sync_lock, lease)

    def change_mark(self) -> tuple[str, int, str | None]:
        """What moves whenever this process changes the user's data: the same before and
        after a request, and the request changed nothing push reports."""
        return self.cache.epoch, self.cache.counter_seen, self.vacation_state

    def states(self) -> dict[str, str]:
        """The state of each data type push reports (RFC 8620 §7.1), from the cache; none
        while a damaged cache waits for its rebuild (push then has nothing new to say)."""
        try:
            values = self.cache.states(PUSHED_TYPES)
        except CacheDamaged:
            return {}
        states = {name: self.cache.encode_state(value) for name, value in values.items()}
        if self.vacation_state is not None:
            states["VacationResponse"] = self.vacation_state
        return states


class UserRegistry:
    """Opens each user's cache once, keyed by a hash of the username: a directory under
    the data directory (SQLite, and every store's uploads) and a database schema
    (PostgreSQL)."""

    def __init__(
        self, data_dir: Path, stores: Stores | None = None, coordinator: Coordinator | None = None
    ) -> None:
        self.data_dir = data_dir
        self.stores = stores or SqliteStores(data_dir)
        self.coordinator = coordinator or LocalCoordinator()
        self._users: dict[str, UserData] = {}
        self._lock = inline.GuardedLock()

    def get(self, username: str) -> UserData:
        """The user's data, with a cache found damaged since the last request rebuilt."""
        with self._lock:
            user = self._users.get(username)
            if user is None:
                inline.refuse("opening a cache")
                digest = hashlib.sha256(username.encode()).hexdigest()[:32]
                cache = self.stores.open(digest)
                # Other processes write the same file: the cache reads its counter anew.
                cache.shared = cache.shared or self.coordinator.shared
                uploads = UploadStore(self.data_dir / "users" / digest / "uploads")
                user = self._users[username] = self._user_data(username, cache, uploads)
        if user.cache.damaged:
            user.rebuild_cache()
        return user

    def find(self, username: str) -> UserData | None:
        """The user's data if their cache is open. Never waits, so the event loop may ask:
        without the lock, which a thread opening another user's cache can hold for long
        (a check, a migration, a checkpoint waiting on another process); a dict read is
        atomic, and an entry is added only once its cache is open."""
        return self._users.get(username)

    def _user_data(self, username: str, cache: Store, uploads: UploadStore) -> UserData:
        coordinator = self.coordinator
        freshness = Freshness(
            functools.partial(coordinator.vouch, username),
            functools.partial(coordinator.vouched, username),
            functools.partial(coordinator.vouched_at_once, username),
        )
        lock = UserLock(coordinator.user_lock(username))
        return UserData(username, cache, uploads, sync_lock=lock, coordinator=coordinator,
                        freshness=freshness)  # fmt: skip

    def opened(self) -> list[UserData]:
        """The users whose cache is open now."""
        with self._lock:
            return list(self._users.values())

    def close(self) -> None:
        with self._lock:
            for user in self._users.values():
                user.indexer.stop()
                user.flag_scans.stop()
                user.cache.close()
            self._users.clear()
            self.stores.close()


class _Borrowed:
    """A pooled connection a request holds until it gives it back."""

    def __init__(self, pool: ConnectionPool, username: str, password: str, *, for_inbox: bool):
        self._pool = pool
        self._username = username
        self._password = password
        self._for_inbox = for_inbox
        self._stack = ExitStack()
        self.conn: ImapConnection | None = None

    @property
    def broken(self) -> bool:
        return self.conn is not None and getattr(self.conn, "broken", False)

    def get(self) -> ImapConnection:
        if self.broken:
            self.release()
        if self.conn is None:
            borrowed: AbstractContextManager[ImapConnection] = self._pool.connection(
                self._username, self._password, for_inbox=self._for_inbox
            )
            self.conn = self._stack.enter_context(borrowed)
        return self.conn

    def release(self) -> None:
        self.conn = None
        stack, self._stack = self._stack, ExitStack()
        try:
            stack.close()
        except UpstreamUnavailable:
            log.debug("connection of %s was already gone", self._username)


class Account:
    """What a method handler works with during one request."""

    def __init__(
        self,
        user: UserData,
        pool: ConnectionPool,
        password: str,
        settings: Settings | None = None,
    ) -> None:
        self.user = user
        self.cache = user.cache
        self.settings = settings or Settings()
        self._pool = pool
        self._password = password
        self._first = _Borrowed(pool, user.username, password, for_inbox=True)
        # A second pooled connection, for other folders while the first keeps INBOX open
        # (``folder``): returned on its own when a folder it has open may go away.
        self._second = _Borrowed(pool, user.username, password, for_inbox=False)
        self._synced_generation: int | None = None
        # The sync was skipped on the watcher's word (bridge.mail.freshness): a pooled
        # connection's open INBOX is brought up to date when the request first opens it.
        self._trusted_watcher = False
        # What this request wrote upstream, for its syncs to read back (bridge.mail.written).
        self.written = Written()

    @property
    def account_id(self) -> str:
        return self.user.account_id

    @property
    def login(self) -> tuple[str, str]:
        """Username and password of this request, for the user's other upstream services
        (SMTP submission, ManageSieve). Held in memory only: never log it."""
        return self.user.username, self._password

    @property
    def imap(self) -> ImapConnection:
        inline.refuse("the upstream")
        if self._first.broken:
            self._release()
        return self._first.get()

    @property
    def on_gmail(self) -> bool:
        """Whether the upstream is Gmail: known without a connection once the pool opened
        one, so that a request which only reads the cache need not borrow one."""
        gmail = self._pool.gmail if self._first.conn is None else None
        return gmail if gmail is not None else self.imap.object_ids is ObjectIds.GMAIL

    def connection_for(self, name: str) -> ImapConnection:
        """The connection to work in folder ``name`` on: this request's pooled connection,
        but for another folder while that one has an INBOX open that the syncs keep open
        (bridge.mail.sync.keeps_inbox: a big one, or one followed by a view without
        mod-sequences), a second pooled connection, so that the next sync finds INBOX as it
        left it. Every UID command for the folder goes to the connection returned."""
        imap = self.imap
        if name != KEPT_OPEN and keeps_inbox(imap, self.cache.mailboxes):
            return self._second.get()
        return imap

    def folder(self, name: str, *, writable: bool = False) -> ImapConnection:
        """``connection_for(name)`` with the folder open (read-write if asked), SELECTed
        unless open already as needed (a SELECT of a big Maildir costs Dovecot a directory
        scan)."""
        imap = self.connection_for(name)
        if self._trusted_watcher and imap.selected == name == KEPT_OPEN:
            # What the skipped sync's NOOP would have done: the pooled session's view of
            # INBOX may predate mail the watcher has synced since.
            self._trusted_watcher = False
            imap.noop()
        if imap.selected != name or (writable and not imap.selected_writable):
            try:
                imap.select(name, readonly=not writable)
            except CommandFailed as exc:
                # Gone since the sync, or refused: this call fails, and the next request
                # sees the folder unreadable rather than failing on it again.
                if refuses_folder(exc):
                    self._forget_folder(name, exc)
                raise
        return imap

    def release_second(self) -> None:
        """Give the second connection back (before a RENAME or DELETE: Dovecot ends a
        session whose open folder another session renames or deletes)."""
        self._second.release()

    def _forget_folder(self, name: str, exc: CommandFailed) -> None:
        with self.user.sync_lock, self.cache.transaction():
            for record in self.cache.mailboxes():
                if record.name == name and record.selectable:
                    self.cache.purge_orphans(mark_unreadable(self.cache, record, exc))

    def reconnect(self) -> None:
        """Drop this request's connection (the upstream dropped it); the next use of
        ``imap`` borrows a fresh one."""
        self._release()

    def _release(self) -> None:
        self._second.release()
        self._first.release()

    def sync(self, *, force: bool = False, writing: bool = False) -> SyncReport | None:
        """Bring the cache level with the upstream once per request (again if forced).
        ``writing``: before a write, which decides on what the cache holds (which copies of
        an Email exist, whether a folder is empty), never on a watcher's word alone: its
        news may still be on its way (bridge.mail.freshness)."""
        trusted_only = writing and self._trusted_watcher
        if self._synced_generation is not None and not force and not trusted_only:
            return None
        if not force and not writing and self.user.freshness.level():
            self._synced_generation = self.user.sync_generation
            self._trusted_watcher = True
            return None
        inline.refuse("a sync")
        waited_for = self.user.sync_generation
        waiting_since = time.monotonic()
        with self.user.syncing():
            if not force and self.user.sync_generation > waited_for + 1:
                # Another request ran a whole sync after this one started waiting.
                self._synced_generation = self.user.sync_generation
                return None
            silent_at = self.user.silent_at
            if silent_at is not None and silent_at >= waiting_since:
                raise UpstreamTimeout("the upstream went silent for a sync this request "
                                      "waited for")  # fmt: skip
            try:
                report = self._sync_once()
            except UpstreamUnavailable as exc:
                if exc.timed_out or isinstance(exc, DeadlinePassed):
                    # Silent, not gone: another connection would wait as long again. Or
                    # the request's time is up, and a fresh connection would not help.
                    raise
                # A pooled connection the server dropped while idle: one fresh try. Sync
                # is safe to repeat, since each folder's delta lands in one transaction.
                log.info("upstream connection of %s was lost; reconnecting", self.user.username)
                self._release()
                report = self._sync_once()
            self.user.sync_generation += 1
            self._synced_generation = self.user.sync_generation
            self._trusted_watcher = False
            self.written.clear()
        if report.unindexed or self.cache.header_backfill_due():
            self.user.indexer.start(self._pool, self.user.username, self._password)
        if report.flag_scans_due:
            self.user.flag_scans.start(Round(
                self._pool, self.user.username, self._password, self.cache.mailboxes,
                self.settings.flag_scan_interval, self._rescan,
            ))  # fmt: skip
        return report

    def sync_after_writes(self) -> None:
        """Bring the cache level with writes this request made and the upstream confirmed.
        If the upstream went away since, the writes still stand and the answers that say so
        are true: the next request's sync finds them, so the failure is not the method's."""
        try:
            self.sync(force=True)
        except UpstreamUnavailable as exc:
            log.info("sync after the writes of %s failed (%s); the next request catches up",
                     self.user.username, exc)  # fmt: skip

    def _sync_once(self) -> SyncReport:
        try:
            return self._syncer(self.imap).sync()
        except UpstreamUnavailable as exc:
            if exc.timed_out:
                self.user.silent_at = time.monotonic()
            raise

    def _rescan(self, conn: ImapConnection, record: MailboxRecord) -> None:
        self._syncer(conn, side=False).rescan(record)

    def _syncer(self, conn: ImapConnection, *, side: bool = True) -> Syncer:
        return Syncer(
            self.cache, conn, self.user.flag_scans, self.settings.flag_scan_interval,
            self.written, self._side if side else None,
        )  # fmt: skip

    def _side(self) -> ImapConnection:
        """Where a sync reads folders other than a kept INBOX: this request's second
        connection if it has one, which did the request's work in them (GNU imap4d numbers
        new mail per session), else the user's side connection."""
        second = self._second.conn
        if second is not None and not self._second.broken:
            return second
        return self.user.flag_scans.side.get(self._pool, self.user.username, self._password)

    def email_locations(
        self, email_id: str, *, everywhere: bool = False
    ) -> tuple[dict[str, list[int]], bool]:
        """mailbox id -> the UIDs of this Email there, read again upstream where they are
        in a folder the indexer has not finished (``everywhere``: in every folder); and
        whether any were (the Email's record may have changed then). Until the indexer is
        done, the cache of such a folder does not follow moves and expunges (this request's
        earlier ones or another client's), and a write that trusted a copy there could
        remove the last real one."""
        locations = self.cache.email_locations(email_id)
        records = {record.id: record for record in self.cache.mailboxes()}
        stale = [
            (records[mailbox_id], uids)
            for mailbox_id, uids in locations.items()
            if mailbox_id in records and (everywhere or not records[mailbox_id].indexed)
        ]
        if not stale or self.on_gmail:
            return locations, False
        for record, uids in stale:
            syncer = self._syncer(self.connection_for(record.name), side=False)
            with self.user.syncing():
                try:
                    syncer.read_back(record, uids)
                finally:
                    syncer.settle()
        return self.cache.email_locations(email_id), True

    def ensure_indexed(self) -> None:
        """Every folder indexed whole, now: what a query over the cache needs."""
        self.sync()
        if unindexed(self.cache, self.imap):
            if not self.user.indexer.wait(deadline.remaining()):
                raise DeadlinePassed("indexing did not finish in time")
            self.user.indexer.index_all(self.imap)
        views = label_views(self.imap, self.cache.mailboxes())
        if views is not None and views.behind():
            self.sync(force=True)  # Gmail: All Mail indexed, its labels fill the views

    def sync_list(self) -> None:
        """Re-read only the folder list, after this request changed it upstream."""
        with self.user.syncing():
            self._syncer(self.imap).sync_list()

    def close(self) -> None:
        self._release()

    def __enter__(self) -> Account:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
