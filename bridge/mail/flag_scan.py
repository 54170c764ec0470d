"""Keeping flags exact enough without CONDSTORE, without reading every flag per request.

A server without mod-sequences says nothing of flag changes outside a folder a session has
open, short of ``UID FETCH 1:* (FLAGS)`` of each folder (150-250 ms for 10,000 messages on
Dovecot). So, per folder and per sync (``plan_folder``):

- INBOX, kept open on the pooled connections (``pool.KEPT_OPEN``): a connection that has
  held it open since its last full scan follows it exactly (``imap.flagview``). The sync
  drains that view (VIEW), or does nothing when it heard nothing (SKIP). Any other
  connection, or one whose view broke (the session dropped, INBOX opened read-write for a
  write, another folder opened on it by a query or a write there), scans INBOX in full
  once and follows it from then on (FULL). INBOX is exact at every request.
- Any other folder is synced on the user's side connection (``SideConnection``) while the
  pooled one follows INBOX, so that INBOX stays followed; the side connection keeps the
  last folder it synced open, and follows that one the same way. What STATUS shows is
  read at once, exactly: new mail and expunges (MESSAGES, UIDNEXT) by fetching only the
  new UIDs and, when the count says something went, one UID SEARCH (COUNTS); a change of
  UNSEEN alone is a \\Seen change, and the folder is scanned in full (FULL). Flags bridge
  itself stored are read back by UID.
- What may be stale, outside INBOX: other clients' changes to other flags (\\Flagged,
  \\Answered, keywords), and \\Seen changes that arrive together with new mail or an
  expunge in the same folder. A full scan in the background (``FlagScans``, on the side
  connection) finds them once the folder's last full scan is ``flag_scan_interval``
  seconds old: the first sync after that (a request's, or a push watcher's, which syncs
  when a scan falls due) starts a round, which begins START_DELAY later. So with a push
  listener such a change shows within the interval plus START_DELAY, the round's scans and
  up to two seconds of the watcher's polling; without one, at the first request after the
  round that follows the first request past the interval. When bridge starts, every
  folder is due: its first sync starts a round.

A folder's first sight and a UIDVALIDITY change are full scans as always.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bridge.coordination import UserLock
from bridge.imap.connection import ImapConnection
from bridge.imap.errors import UpstreamError
from bridge.imap.flagview import FolderView
from bridge.imap.pool import KEPT_OPEN, ConnectionPool
from bridge.mail.background import BackgroundThread
from bridge.store.records import MailboxRecord

log = logging.getLogger("bridge.sync")

# The default of Settings.flag_scan_interval, in seconds.
FLAG_SCAN_INTERVAL = 60.0
# A background round waits this long after the request that started it, so the request's
# own work does not share the CPU with it.
START_DELAY = 1.0
# A side session idle longer than this is replaced before use: servers drop quiet sessions
# (Dovecot after 30 minutes), and a LOGIN costs less than a sync failed half way.
SIDE_IDLE = 300.0


class Plan(enum.Enum):
    SKIP = "skip"  # nothing STATUS shows changed; flags wait for the background scan
    COUNTS = "counts"  # new mail and expunges only
    VIEW = "view"  # the open folder's view says what changed
    FULL = "full"  # every UID and flag


def plan_folder(record: MailboxRecord, view: FolderView | None) -> Plan:
    """What a sync without mod-sequences does to one folder; ``view`` is the connection's
    view of the folder it has open, if any."""
    synced, status = record.synced, record.status
    if synced is None or status is None or synced.uidvalidity != status.uidvalidity:
        return Plan.FULL
    if (
        view is not None
        and view.name == record.name
        and view.based
        and view.uidvalidity == synced.uidvalidity
    ):
        # The NOOP before the folder list brought the view up to date.
        return Plan.SKIP if view.quiet and status == synced else Plan.VIEW
    if record.name == KEPT_OPEN:
        return Plan.FULL  # then followed by the view this scan starts
    counts_moved = (status.messages, status.uidnext) != (synced.messages, synced.uidnext)
    if counts_moved:
        return Plan.COUNTS
    if status.unseen != synced.unseen:
        return Plan.FULL
    return Plan.SKIP


@dataclass(frozen=True)
class Round:
    """What one background round needs: a connection of its own, the folders, and how to
    scan one (a Syncer's, which this module does not import)."""

    pool: ConnectionPool
    username: str
    password: str = field(repr=False)
    records: Callable[[], list[MailboxRecord]]
    interval: float
    rescan: Callable[[ImapConnection, MailboxRecord], None]


class SideConnection:
    """One user's IMAP session, outside the pool, for syncing folders other than INBOX:
    opening them on a pooled connection would close its INBOX, and with it the view that
    spares a full scan of INBOX. It keeps the last folder it synced open, and with it a
    view of that folder. Used under the user's sync lock only."""

    def __init__(self) -> None:
        self._conn: ImapConnection | None = None
        self._used = 0.0

    def get(self, pool: ConnectionPool, username: str, password: str) -> ImapConnection:
        conn = self._conn
        # A NOOP first: Dovecot ends a session whose open folder another session deleted
        # or renamed, and says so only when the next command comes.
        stale = conn is not None and time.monotonic() - self._used > SIDE_IDLE
        if conn is not None and (stale or not conn.is_alive(probe=True)):
            conn.close()
            conn = self._conn = None
        if conn is None:
            conn = self._conn = pool.open_dedicated(username, password)
        self._used = time.monotonic()
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class FlagScans(BackgroundThread):
    """One user's full flag scans of the folders not kept open: when each ran last, and
    the thread that runs those due, on the side connection (so that the pooled ones keep
    INBOX open, and their views of it, undisturbed)."""

    def __init__(self, lock: UserLock) -> None:
        super().__init__()
        self.lock = lock  # the user's sync lock: a scan is a sync of one folder
        self.side = SideConnection()
        # Background rounds finished: a watcher reports states again when this moves.
        self.rounds = 0
        self._scanned: dict[str, float] = {}  # mailbox id -> time.monotonic() of its last

    def scanned(self, mailbox_id: str, at: float) -> None:
        """Record a full scan of the folder that started at ``at`` (time.monotonic())."""
        self._scanned[mailbox_id] = at

    def due(self, records: Iterable[MailboxRecord], interval: float) -> list[MailboxRecord]:
        """Folders, synced before and not kept open, whose last full scan (in this process)
        is ``interval`` seconds old or more."""
        now = time.monotonic()
        return [
            record
            for record in records
            if record.selectable
            and record.synced is not None
            and record.name != KEPT_OPEN
            and now - self._scanned.get(record.id, -interval) >= interval
        ]

    def next_due(self, interval: float) -> float:
        """When (time.monotonic()) the earliest recorded scan falls due; inf if none is."""
        return min(self._scanned.values(), default=float("inf")) + interval

    def start(self, round_: Round) -> None:
        """Scan the folders due, in a thread, unless one runs already."""
        self._launch(f"flag-scan-{round_.username}", self._run, round_)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        with self.lock:
            self.side.close()

    def _run(self, round_: Round) -> None:
        if self._stopping.wait(START_DELAY):
            return
        try:
            with self.lock:
                due = self.due(round_.records(), round_.interval)
            if not due:
                return
            for record in due:
                if self._stopping.is_set():
                    return
                with self.lock:
                    # The record as it stands now: a request may have synced it since.
                    current = next((r for r in round_.records() if r.id == record.id), None)
                    if current is not None and self.due([current], round_.interval):
                        conn = self.side.get(round_.pool, round_.username, round_.password)
                        round_.rescan(conn, current)
            log.debug("flag scan of %s: %d folders", round_.username, len(due))
        except UpstreamError as exc:
            log.info("flag scan of %s stopped: %s; the next request resumes it",
                     round_.username, exc)  # fmt: skip
        finally:
            self.rounds += 1
