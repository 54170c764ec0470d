"""Watching the upstream for a user while someone listens for push.

One watcher per user, not per stream: while at least one event stream of the user is
open, a thread syncs that user's cache every ``interval`` seconds (one LIST-STATUS when
nothing changed) and reports the states it ends at. It stops with the last listener,
and after an upstream failure tries again with a growing pause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bridge.imap.errors import AuthFailed, UpstreamError
from bridge.imap.pool import ConnectionPool
from bridge.mail.account import Account, UserData

log = logging.getLogger("bridge.watch")

# Half a second keeps the median push latency near 0.5 s (B4) for one LIST-STATUS per
# watched user each time when nothing changed.
INTERVAL = 0.5
MAX_BACKOFF = 60.0


class Watcher:
    def __init__(
        self,
        user: UserData,
        pool: ConnectionPool,
        password: str,
        report: Callable[[dict[str, str]], None],
        interval: float = INTERVAL,
    ) -> None:
        self.user = user
        self.pool = pool
        # Held in memory, by this thread only, while the user's streams are open.
        self._password = password
        self.report = report
        self.interval = interval
        self.listeners = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"watch-{user.username}"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        pause = self.interval
        reported: dict[str, str] = {}
        while not self._stop.wait(pause):
            try:
                with Account(self.user, self.pool, self._password) as account:
                    account.sync()
                states = self.user.states()
                if states != reported:  # streams wake only for news
                    self.report(states)
                    reported = states
                pause = self.interval
            except AuthFailed:
                log.warning("watching %s stopped: the password is no longer accepted",
                            self.user.username)  # fmt: skip
                return
            except UpstreamError as exc:
                pause = min(max(pause * 2, 1.0), MAX_BACKOFF)
                log.info("watching %s: upstream failed (%s); again in %.0f s",
                         self.user.username, exc, pause)  # fmt: skip


class Watchers:
    """The running watchers, by user; a stream joins one and leaves it."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._watchers: dict[str, Watcher] = {}
        self._lock = threading.Lock()

    def join(self, user: UserData, password: str, report: Callable[[dict[str, str]], None]) -> None:
        with self._lock:
            watcher = self._watchers.get(user.username)
            if watcher is None:
                watcher = self._watchers[user.username] = Watcher(user, self.pool, password,
                                                                  report)  # fmt: skip
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
