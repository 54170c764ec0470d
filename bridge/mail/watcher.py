"""Watching the upstream for a user while someone listens for push.

One watcher per user, not per listener. It keeps an IMAP session of its own idling
upstream: with NOTIFY (RFC 5465) the server reports changes in every folder; without it
the session IDLEs on INBOX (RFC 2177) and the other folders are swept with one LIST-STATUS
every second. Whatever the server says runs the sync core (through the pool, like any
request), and the states it ends at are reported. The watcher stops with its last
listener, and after an upstream failure reconnects with a growing pause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

from bridge.imap.connection import ImapConnection
from bridge.imap.errors import AuthFailed, UpstreamError
from bridge.imap.pool import ConnectionPool
from bridge.mail.account import Account, UserData

log = logging.getLogger("bridge.watch")

# Folders IDLE cannot see are swept this often: push stays under 2 s for them too.
SWEEP = 1.0
# NOTIFY with CONDSTORE reports every kind of change; a rare sweep still catches what a
# server might fail to report (and renews IDLE well within RFC 2177's 29 minutes).
SWEEP_NOTIFIED = 60.0
MAX_BACKOFF = 60.0


class Watcher:
    def __init__(
        self,
        user: UserData,
        pool: ConnectionPool,
        password: str,
        report: Callable[[dict[str, str]], None],
    ) -> None:
        self.user = user
        self.pool = pool
        # Held in memory, by this thread only, while the user has listeners.
        self._password = password
        self.report = report
        self.listeners = 0
        self.mode: str | None = None  # "notify" or "idle" once watching
        self.syncs = 0
        self._stop = threading.Event()
        self._wake_lock = threading.Lock()  # the pipe's fds are never written once closed
        # stop() writes here to end an IDLE at once rather than at its next sweep.
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"watch-{user.username}"
        )

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
            with self._wake_lock:
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._wake_read = self._wake_write = -1

    def _watch(self) -> None:
        with self.pool.open_dedicated(self.user.username, self._password) as listener:
            sweep = self._listen(listener)
            # Anything that changed before the server started listening shows here.
            self._sync()
            while not self._stop.is_set():
                listener.idle(sweep, self._wake_read)
                if self._stop.is_set():
                    return
                # News or not (a sweep, a keepalive), one sync finds what moved.
                self._sync()

    def _listen(self, listener: ImapConnection) -> float:
        """Start the server reporting; how often folders it does not report need a sweep."""
        if listener.has("NOTIFY"):
            with self.user.sync_lock:  # not beside this user's folder writes (UserData)
                notified = listener.notify_changes()
            if notified:
                self.mode = "notify"
                return SWEEP_NOTIFIED if "CONDSTORE" in listener.enabled else SWEEP
        listener.select("INBOX", readonly=True)
        self.mode = "idle"
        return SWEEP

    def _sync(self) -> None:
        with Account(self.user, self.pool, self._password) as account:
            account.sync()
        self.syncs += 1
        # The hub passes on only what moved.
        self.report(self.user.states())


class Watchers:
    """The running watchers, by user; a listener joins one and leaves it."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._watchers: dict[str, Watcher] = {}
        self._lock = threading.Lock()

    def get(self, username: str) -> Watcher | None:
        return self._watchers.get(username)

    def join(self, user: UserData, password: str, report: Callable[[dict[str, str]], None]) -> None:
        with self._lock:
            watcher = self._watchers.get(user.username)
            if watcher is None or not watcher.alive:
                # None yet, or one that gave up (its password no longer accepted): this
                # listener's password may be the new one.
                listeners = watcher.listeners if watcher is not None else 0
                watcher = self._watchers[user.username] = Watcher(user, self.pool, password,
                                                                  report)  # fmt: skip
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

    def stop_all(self) -> None:
        with self._lock:
            for watcher in self._watchers.values():
                watcher.stop()
            self._watchers.clear()
