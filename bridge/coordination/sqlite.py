"""The coordinator of several bridge processes on one machine, over one data directory:
a SQLite file (WAL) beside the users' caches, and a lock file per user.

- Leases are rows (user, name, holder, expiry). Taking one is a single upsert that wins
  only if the row is free, expired or already this process's; a thread renews every
  lease of this process each third of ``lease_time``, so a process that dies (SIGKILL
  included) loses them ``lease_time`` after its last renewal.
- A user's sync lock is flock(2) on the user's lock file: the kernel frees it the
  moment its holder dies.
- Issued tokens are rows keyed by the token's SHA-256, what they stand for encrypted
  under the token itself (bridge.http.token_store): the file holds no password.
- Failed logins are rows of (a digest of login and address, time), so guessing is held
  back at every instance alike.
- A claim (the one process that sends a push all of them would send) is a row that only
  the first insert makes.
- Published states are rows of an append-only table; every process reads the rows of
  others when a publisher wakes it (a Unix datagram, bridge.coordination.wake) and every
  ``POLL`` seconds anyway, and rows older than a minute are deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bridge.coordination.base import WATCHER, ProcessLock
from bridge.coordination.filelock import FileLock
from bridge.coordination.shared import EVENTS_KEPT, FAILURES_KEPT, SharedCoordinator
from bridge.coordination.wake import Wakeups
from bridge.states import States

log = logging.getLogger("bridge.coordination")

POLL = 0.05

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    username TEXT NOT NULL, name TEXT NOT NULL, holder TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (username, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vouchers (
    username TEXT PRIMARY KEY, holder TEXT NOT NULL, level INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    key BLOB PRIMARY KEY, owner BLOB NOT NULL, sealed BLOB NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_owner ON tokens (owner);
CREATE TABLE IF NOT EXISTS failures (key BLOB NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failures_by_key ON failures (key, at);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL, username TEXT NOT NULL,
    states TEXT NOT NULL, at REAL NOT NULL
);
"""


def _into_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch a new file to WAL. Workers starting together all do: SQLite answers a
    switch that meets another one "database is locked" at once, without waiting out the
    busy timeout, so it is tried again (a worker failed to start on it)."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)


# The word of the user's live watcher lease holder (``vouched``).
_VOUCHED = (
    "SELECT v.level FROM vouchers v JOIN leases l ON l.username = v.username"
    " AND l.name = ? AND l.holder = v.holder WHERE v.username = ? AND l.expires > ?"
)


class SqliteCoordinator(SharedCoordinator):
    def __init__(self, directory: Path, lease_time: float = 10.0) -> None:
        self._locks_dir = directory / "locks"
        self._locks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            directory / "coordination.sqlite3", timeout=10.0, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        _into_wal(self._db)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._guard = threading.Lock()
        # For ``vouched_at_once``, on the event loop: a connection that never waits for a
        # lock (timeout 0), taken only when no other thread holds it.
        self._reader = sqlite3.connect(
            directory / "coordination.sqlite3", timeout=0, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        self._reader_guard = threading.Lock()
        self._user_locks: dict[str, FileLock] = {}
        self._wakeups = Wakeups(directory / "wake")
        super().__init__(lease_time)

    def _execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        with self._guard:
            return self._db.execute(sql, args)

    def holds(self, username: str, name: str) -> bool:
        now = time.time()
        cursor = self._execute(
            "INSERT INTO leases VALUES (?, ?, ?, ?) ON CONFLICT (username, name) DO UPDATE"
            " SET holder = excluded.holder, expires = excluded.expires"
            " WHERE leases.holder = excluded.holder OR leases.expires < ?",
            username, name, self.holder, now + self.lease_time, now,
        )  # fmt: skip
        return cursor.rowcount > 0

    def release(self, username: str, name: str) -> None:
        self._execute(
            "DELETE FROM leases WHERE username = ? AND name = ? AND holder = ?",
            username, name, self.holder,
        )  # fmt: skip
        if name == WATCHER:
            self._execute(
                "DELETE FROM vouchers WHERE username = ? AND holder = ?", username, self.holder
            )

    def user_lock(self, username: str) -> ProcessLock:
        with self._guard:
            lock = self._user_locks.get(username)
            if lock is None:
                digest = hashlib.sha256(username.encode()).hexdigest()[:32]
                lock = self._user_locks[username] = FileLock(self._locks_dir / digest)
            return lock

    def vouch(self, username: str, level: bool) -> None:
        self._execute(
            "INSERT OR REPLACE INTO vouchers VALUES (?, ?, ?)", username, self.holder, level
        )

    def vouched(self, username: str) -> bool:
        row = self._execute(_VOUCHED, WATCHER, username, time.time()).fetchone()
        return bool(row and row[0])

    def vouched_at_once(self, username: str) -> bool | None:
        if not self._reader_guard.acquire(blocking=False):
            return None
        try:
            row = self._reader.execute(_VOUCHED, (WATCHER, username, time.time())).fetchone()
        except sqlite3.OperationalError:  # busy (a checkpoint, a recovery): ask from a thread
            return None
        finally:
            self._reader_guard.release()
        return bool(row and row[0])

    def claim(self, key: str) -> bool:
        cursor = self._execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", key, time.time())
        return cursor.rowcount > 0

    def keep_token(
        self, key: bytes, owner: bytes, sealed: bytes, expires: float, per_owner: int
    ) -> None:
        with self._guard:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM tokens WHERE expires < ?", (time.time(),))
                self._db.execute(
                    "DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens WHERE owner = ?"
                    " ORDER BY expires DESC LIMIT -1 OFFSET ?)", (owner, per_owner - 1),
                )  # fmt: skip
                self._db.execute(
                    "INSERT INTO tokens VALUES (?, ?, ?, ?)", (key, owner, sealed, expires)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def token(self, key: bytes) -> tuple[bytes, float] | None:
        row = self._execute(
            "SELECT sealed, expires FROM tokens WHERE key = ? AND expires >= ?", key, time.time()
        ).fetchone()
        return (row[0], row[1]) if row else None

    def drop_token(self, key: bytes) -> bool:
        cursor = self._execute(
            "DELETE FROM tokens WHERE key = ? AND expires >= ?", key, time.time()
        )
        return cursor.rowcount > 0

    def failures(self, key: bytes, since: float) -> list[float]:
        rows = self._execute(
            "SELECT at FROM failures WHERE key = ? AND at > ? ORDER BY at", key, since
        ).fetchall()
        return [row[0] for row in rows]

    def fail(self, key: bytes) -> None:
        self._execute("INSERT INTO failures VALUES (?, ?)", key, time.time())

    def forgive(self, key: bytes) -> None:
        self._execute("DELETE FROM failures WHERE key = ?", key)

    def _send(self, username: str, states: States) -> None:
        self._execute(
            "INSERT INTO events (origin, username, states, at) VALUES (?, ?, ?, ?)",
            self.holder, username, json.dumps(states), time.time(),
        )  # fmt: skip
        self._wakeups.wake_others()

    def subscribe(self, deliver: Callable[[str, States], None]) -> None:
        self._wakeups.listen()
        row = self._execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        self._start(lambda: self._poll_forever(row[0], deliver), "coordination-poll")

    def _poll_forever(self, seen: int, deliver: Callable[[str, States], None]) -> None:
        while not self._stop.is_set():
            self._wakeups.wait(POLL)
            try:
                rows = self._execute(
                    "SELECT seq, username, states FROM events WHERE seq > ? AND origin != ?"
                    " ORDER BY seq", seen, self.holder,
                ).fetchall()  # fmt: skip
            except sqlite3.Error as exc:
                log.warning("reading published states failed: %s", exc)
                continue
            for seq, username, states in rows:
                seen = seq
                deliver(username, json.loads(states))

    def _renew(self) -> None:
        now = time.time()
        self._execute(
            "UPDATE leases SET expires = ? WHERE holder = ?", now + self.lease_time, self.holder
        )
        self._execute("DELETE FROM events WHERE at < ?", now - EVENTS_KEPT)
        self._execute("DELETE FROM claims WHERE at < ?", now - EVENTS_KEPT)
        self._execute("DELETE FROM failures WHERE at < ?", now - FAILURES_KEPT)

    def close(self) -> None:
        self._stop_threads()
        self._wakeups.close()
        with self._guard:
            self._db.execute("DELETE FROM leases WHERE holder = ?", (self.holder,))
            self._db.execute("DELETE FROM vouchers WHERE holder = ?", (self.holder,))
            self._db.close()
            for lock in self._user_locks.values():
                lock.close()
        with self._reader_guard:
            self._reader.close()
