"""Watching the upstream for a user while someone listens for push.

One watcher per user, not per listener. It keeps an IMAP session of its own idling
upstream: with NOTIFY (RFC 5465) and CONDSTORE the server reports every change in every
folder. Otherwise the session IDLEs on INBOX (RFC 2177), where other sessions' new mail,
expunges and flag changes arrive unasked, and every second it reads the other folders'
STATUS (one LIST-STATUS) and compares it with the last: NOTIFY without CONDSTORE would not
report flag changes outside the selected folder (RFC 5465 §5.2) either. Only news, a
STATUS that moved, or a flag scan falling due (``flag_scan``) runs the sync core (through
the pool, like any request), and the states it ends at are reported; a background flag
scan that finishes has its states reported too. The watcher stops with its last listener,
and after an upstream failure reconnects with a growing pause.

Of several processes serving the user (bridge.coordination), only the holder of the user's
watcher lease watches; another process's watcher waits, trying for the lease every tenth
of the lease time, and its listeners hear the holder's reports through the coordinator. A
holder that dies loses the lease when it runs out, and a waiting watcher takes over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from bridge.config import Settings
from bridge.coordination.base import WATCHER, Lease
from bridge.imap.connection import ImapConnection, MailboxStatus
from bridge.imap.errors import AuthFailed, UpstreamError
from bridge.imap.pool import ConnectionPool
from bridge.imap.wire import Untagged
from bridge.mail.account import Account, UserData

log = logging.getLogger("bridge.watch")

# Folders IDLE cannot see are polled this often: push stays under 2 s for them too.
SWEEP = 1.0
# NOTIFY with CONDSTORE reports every kind of change; a rare sweep still catches what a
# server might fail to report (and renews IDLE well within RFC 2177's 29 minutes). With
# IDLE and polling, a sync runs at least this often too.
SWEEP_NOTIFIED = 60.0
MAX_BACKOFF = 60.0
# What the selected folder's session hears when another session changes it.
_NEWS = frozenset({"EXISTS", "EXPUNGE", "FETCH", "VANISHED", "RECENT"})

# Folder name -> what its STATUS says of its content (not its id: Cyrus 3.6 answers a new,
# random MAILBOXID beside other items every time).
Statuses = dict[str, tuple[int, int, int, int, int | None] | None]


class Watcher:
    def __init__(
        self,
        user: UserData,
        pool: ConnectionPool,
        password: str,
        report: Callable[[dict[str, str]], None],
        settings: Settings | None = None,
    ) -> None:
        self.user = user
        self.pool = pool
        self.settings = settings or Settings()
        # Held in memory, by this thread only, while the user has listeners.
        self._password = password
        self.report = report
        self.listeners = 0
        self.mode: str | None = None  # "notify" or "idle" once watching
        self.syncs = 0
        self._synced_at = 0.0
        self._rounds = 0  # background flag scan rounds already reported
        self._stop = threading.Event()
        self._wake_lock = threading.Lock()  # the pipe's fds are never written once closed
        # stop() writes here to end an IDLE at once rather than at its next sweep.
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"watch-{user.username}"
        )
        self.lease = Lease(user.coordinator, user.username, WATCHER)
        # This process holds the lease and watches (else it waits for another's to end);
        # alone, it always does.
        self.holding = not user.coordinator.shared

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._wake_lock, contextlib.suppress(OSError):
            if self._wake_write >= 0:
                os.write(self._wake_write, b".")

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        pause = 1.0
        try:
            while not self._stop.is_set():
                self.holding = self.lease.take()
                if not self.holding:
                    self._stop.wait(self.lease.wait_interval)  # another process watches
                    continue
                try:
                    self._watch()
                except AuthFailed:
                    log.warning("watching %s stopped: the password is no longer accepted",
                                self.user.username)  # fmt: skip
                    return
                except UpstreamError as exc:
                    pause = 1.0 if self.mode is not None else min(pause * 2, MAX_BACKOFF)
                    self.mode = None
                    log.info("watching %s: upstream failed (%s); again in %.0f s",
                             self.user.username, exc, pause)  # fmt: skip
                    self._stop.wait(pause)
        finally:
            self.holding = False
            self.lease.release()
            with self._wake_lock:
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._wake_read = self._wake_write = -1

    def _watch(self) -> None:
        try:
            self._watch_session()
        finally:
            self.user.freshness.lost()

    def _watch_session(self) -> None:
        with self.pool.open_dedicated(self.user.username, self._password) as listener:
            sweep = self._listen(listener)
            # Read before the first sync: what moves after it shows in the next poll.
            polled = self._poll(listener)
            # Anything that changed before the server started listening shows here.
            self._sync()
            while not self._stop.is_set():
                said = listener.idle(sweep, self._wake_read)
                kinds = " ".join(response.kind for response in said)
                log.debug("watcher of %s woke: %s", self.user.username, kinds or "nothing said")
                # Only that the server is there: nothing moved, the cache stays level.
                quiet = (self.mode == "notify" and bool(said)
                         and all(_keepalive(response) for response in said)
                         and time.monotonic() - self._synced_at < sweep)  # fmt: skip
                if not quiet:
                    # News, or a sweep: either way the next sync decides what changed.
                    self.user.freshness.heard()
                if self._stop.is_set() or not self.lease.take():
                    return  # stopped, or this process lost the lease (it was stalled)
                if quiet:
                    continue
                if self.mode == "notify":
                    self._sync()  # one sync finds what moved
                    continue
                before, polled = polled, self._poll(listener)
                if self._news(said) or polled != before or self._sync_due():
                    self._sync()
                elif self.user.flag_scans.rounds != self._rounds:
                    self._rounds = self.user.flag_scans.rounds
                    self.report(self.user.states())

    def _listen(self, listener: ImapConnection) -> float:
        """Start the server reporting; how often folders it does not report need a poll."""
        if listener.has("NOTIFY") and "CONDSTORE" in listener.enabled:
            with self.user.sync_lock:  # not beside this user's folder writes (UserData)
                notified = listener.notify_changes()
            if notified:
                self.mode = "notify"
                self.user.freshness.listening()
                return SWEEP_NOTIFIED
            # Refused (Dovecot without its mailbox list index): IDLE on INBOX and poll.
        listener.select("INBOX", readonly=True)
        self.mode = "idle"
        return SWEEP

    def _poll(self, listener: ImapConnection) -> Statuses:
        """Every folder's STATUS, in idle mode (one LIST-STATUS where offered)."""
        if self.mode != "idle":
            return {}
        return {listing.name: _content(listing.status) for listing in listener.list_mailboxes()}

    @staticmethod
    def _news(said: Sequence[Untagged]) -> bool:
        return any(response.kind in _NEWS for response in said)

    def _sync_due(self) -> bool:
        """A sync when a flag scan falls due (the sync starts it), and now and then anyway."""
        now = time.monotonic()
        if now - self._synced_at >= SWEEP_NOTIFIED:
            return True
        due = self.user.flag_scans.next_due(self.settings.flag_scan_interval)
        return due <= now and not self.user.flag_scans.running and self._synced_at < due

    def _sync(self) -> None:
        self._rounds = self.user.flag_scans.rounds
        token = self.user.freshness.sync_starts()
        with Account(self.user, self.pool, self._password, self.settings) as account:
            account.sync()
        self.user.freshness.synced(token)
        self.syncs += 1
        self._synced_at = time.monotonic()
        # The hub passes on only what moved.
        self.report(self.user.states())


def _keepalive(response: Untagged) -> bool:
    """``* OK Still here``: what Dovecot sends during IDLE now and then, to keep the
    connection open (its imap_idle_notify_interval, two minutes by default). An OK with a
    code (NOTIFY's NOTIFICATIONOVERFLOW, RFC 5465) is not one."""
    return response.kind == "OK" and not response.text.lstrip().startswith(b"[")


def _content(status: MailboxStatus | None) -> tuple[int, int, int, int, int | None] | None:
    if status is None:
        return None
    return (status.uidvalidity, status.uidnext, status.messages, status.unseen,
            status.highestmodseq)  # fmt: skip


class Watchers:
    """The running watchers, by user; a listener joins one and leaves it."""

    def __init__(self, pool: ConnectionPool, settings: Settings | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self._watchers: dict[str, Watcher] = {}
        self._lock = threading.Lock()

    def get(self, username: str) -> Watcher | None:
        return self._watchers.get(username)

    def running(self) -> int:
        """How many watch now (one that gave up on a refused password does not, nor one
        waiting while another process holds the user's watcher lease)."""
        with self._lock:
            return sum(w.alive and w.holding for w in self._watchers.values())

    def join(self, user: UserData, password: str, report: Callable[[dict[str, str]], None]) -> None:
        with self._lock:
            watcher = self._watchers.get(user.username)
            if watcher is None or not watcher.alive:
                # None yet, or one that gave up (its password no longer accepted): this
                # listener's password may be the new one.
                listeners = watcher.listeners if watcher is not None else 0
                watcher = Watcher(user, self.pool, password, report, self.settings)
                self._watchers[user.username] = watcher
                watcher.listeners = listeners
                watcher.start()
            watcher.listeners += 1

    def leave(self, username: str) -> None:
        with self._lock:
            watcher = self._watchers.get(username)
            if watcher is None:
                return
            watcher.listeners -= 1
            if watcher.listeners <= 0:
                watcher.stop()
                del self._watchers[username]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every watcher, and wait up to ``timeout`` seconds in all for them to log
        out of their upstream sessions."""
        with self._lock:
            stopping = list(self._watchers.values())
            self._watchers.clear()
        for watcher in stopping:
            watcher.stop()
        ends = time.monotonic() + timeout
        for watcher in stopping:
            watcher.join(max(0.0, ends - time.monotonic()))
