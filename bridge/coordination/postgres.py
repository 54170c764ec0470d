"""The coordinator of bridge instances on several machines: one PostgreSQL database.

- Leases are rows (user, name, holder, expiry), taken by the same single upsert as in
  bridge.coordination.sqlite and renewed by a thread each third of ``lease_time``; expiry
  is read on the database's clock, so the instances' clocks need not agree.
- A user's sync lock is a session-level advisory lock (``pg_try_advisory_lock``) held on a
  connection of a small pool: PostgreSQL frees it the moment the holder's connection dies.
- Published states go out by ``NOTIFY bridge_states`` and arrive at once on every
  instance's listening connection (payloads are far below NOTIFY's 8,000 octets).
- Tokens, failed logins and claims are rows, as in the SQLite coordinator.

psycopg is imported here only: a bridge that does not coordinate over PostgreSQL never
loads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from bridge.coordination.base import WATCHER, ProcessLock
from bridge.coordination.filelock import keep_trying
from bridge.coordination.shared import EVENTS_KEPT, FAILURES_KEPT, SharedCoordinator
from bridge.states import States

log = logging.getLogger("bridge.coordination")

CHANNEL = "bridge_states"
NOW = "extract(epoch FROM clock_timestamp())"
# Serializes CREATE TABLE IF NOT EXISTS between instances starting at once.
SCHEMA_LOCK = 0x62726964
SCHEMA = """
CREATE TABLE IF NOT EXISTS coordination_leases (
    username text NOT NULL, name text NOT NULL, holder text NOT NULL,
    expires double precision NOT NULL, PRIMARY KEY (username, name));
CREATE TABLE IF NOT EXISTS coordination_vouchers (
    username text PRIMARY KEY, holder text NOT NULL, level boolean NOT NULL);
CREATE TABLE IF NOT EXISTS coordination_claims (
    key text PRIMARY KEY, at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS coordination_tokens (
    key bytea PRIMARY KEY, owner bytea NOT NULL, sealed bytea NOT NULL,
    expires double precision NOT NULL);
CREATE INDEX IF NOT EXISTS coordination_tokens_by_owner ON coordination_tokens (owner);
CREATE TABLE IF NOT EXISTS coordination_failures (key bytea NOT NULL, at double precision NOT NULL);
CREATE INDEX IF NOT EXISTS coordination_failures_by_key ON coordination_failures (key, at);
"""


class AdvisoryLock:
    """One user's sync lock: a PostgreSQL advisory lock on a pooled connection."""

    def __init__(self, coordinator: PostgresCoordinator, key: int) -> None:
        self._coordinator = coordinator
        self._key = key
        self._held_on: psycopg.Connection[Any] | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        connection = self._coordinator.borrow()

        def attempt() -> bool:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            return bool(row and row[0])

        try:
            locked = keep_trying(attempt, blocking, timeout)
        except BaseException:
            self._coordinator.give_back(connection, broken=True)
            raise
        if not locked:
            self._coordinator.give_back(connection)
            return False
        self._held_on = connection
        return True

    def release(self) -> None:
        connection, self._held_on = self._held_on, None
        if connection is None:
            return
        try:
            connection.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.Error as exc:
            # The connection is gone, and the lock with it.
            log.warning("releasing a sync lock failed: %s", exc)
            self._coordinator.give_back(connection, broken=True)
            return
        self._coordinator.give_back(connection)


class PostgresCoordinator(SharedCoordinator):
    def __init__(self, dsn: str, lease_time: float = 10.0) -> None:
        self.dsn = dsn
        self._guard = threading.Lock()
        self._db = self._connect()
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self._db.execute(SCHEMA)
        self._idle: list[psycopg.Connection[Any]] = []
        self._pool_guard = threading.Lock()
        self._locks: dict[str, AdvisoryLock] = {}
        super().__init__(lease_time)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)

    def _execute(self, sql: str, *args: object) -> psycopg.Cursor[Any]:
        with self._guard:
            try:
                return self._db.execute(sql, args)
            except psycopg.OperationalError:
                # The server restarted or the connection dropped: one fresh try.
                self._db.close()
                self._db = self._connect()
                return self._db.execute(sql, args)

    # -- the advisory locks' connections --

    def borrow(self) -> psycopg.Connection[Any]:
        with self._pool_guard:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def give_back(self, connection: psycopg.Connection[Any], broken: bool = False) -> None:
        if broken or connection.closed:
            connection.close()
            return
        with self._pool_guard:
            self._idle.append(connection)

    # -- the Coordinator protocol --

    def holds(self, username: str, name: str) -> bool:
        cursor = self._execute(
            "INSERT INTO coordination_leases VALUES (%s, %s, %s, " + NOW + " + %s)"
            " ON CONFLICT (username, name) DO UPDATE"
            " SET holder = excluded.holder, expires = excluded.expires"
            " WHERE coordination_leases.holder = excluded.holder"
            " OR coordination_leases.expires < " + NOW,
            username, name, self.holder, self.lease_time,
        )  # fmt: skip
        return cursor.rowcount > 0

    def release(self, username: str, name: str) -> None:
        self._execute(
            "DELETE FROM coordination_leases WHERE username = %s AND name = %s AND holder = %s",
            username, name, self.holder,
        )  # fmt: skip
        if name == WATCHER:
            self._execute(
                "DELETE FROM coordination_vouchers WHERE username = %s AND holder = %s",
                username, self.holder,
            )  # fmt: skip

    def user_lock(self, username: str) -> ProcessLock:
        with self._pool_guard:
            lock = self._locks.get(username)
            if lock is None:
                digest = hashlib.sha256(username.encode()).digest()
                key = int.from_bytes(digest[:8], "big", signed=True)
                lock = self._locks[username] = AdvisoryLock(self, key)
            return lock

    def vouch(self, username: str, level: bool) -> None:
        self._execute(
            "INSERT INTO coordination_vouchers VALUES (%s, %s, %s) ON CONFLICT (username)"
            " DO UPDATE SET holder = excluded.holder, level = excluded.level",
            username, self.holder, level,
        )  # fmt: skip

    def vouched(self, username: str) -> bool:
        row = self._execute(
            "SELECT v.level FROM coordination_vouchers v JOIN coordination_leases l"
            " ON l.username = v.username AND l.name = %s AND l.holder = v.holder"
            " WHERE v.username = %s AND l.expires > " + NOW,
            WATCHER, username,
        ).fetchone()  # fmt: skip
        return bool(row and row[0])

    def vouched_at_once(self, username: str) -> None:
        return None  # a round trip: never on the event loop

    def claim(self, key: str) -> bool:
        cursor = self._execute(
            "INSERT INTO coordination_claims VALUES (%s, " + NOW + ") ON CONFLICT DO NOTHING",
            key,
        )
        return cursor.rowcount > 0

    def keep_token(
        self, key: bytes, owner: bytes, sealed: bytes, expires: float, per_owner: int
    ) -> None:
        with self._guard, self._db.transaction():
            self._db.execute("DELETE FROM coordination_tokens WHERE expires < " + NOW)
            self._db.execute(
                "DELETE FROM coordination_tokens WHERE key IN (SELECT key FROM"
                " coordination_tokens WHERE owner = %s ORDER BY expires DESC OFFSET %s)",
                (owner, per_owner - 1),
            )  # fmt: skip
            self._db.execute(
                "INSERT INTO coordination_tokens VALUES (%s, %s, %s, %s)",
                (key, owner, sealed, expires),
            )

    def token(self, key: bytes) -> tuple[bytes, float] | None:
        row = self._execute(
            "SELECT sealed, expires FROM coordination_tokens WHERE key = %s AND expires >= "
            + NOW, key,
        ).fetchone()  # fmt: skip
        return (bytes(row[0]), row[1]) if row else None

    def drop_token(self, key: bytes) -> bool:
        cursor = self._execute(
            "DELETE FROM coordination_tokens WHERE key = %s AND expires >= " + NOW, key
        )
        return cursor.rowcount > 0

    def failures(self, key: bytes, since: float) -> list[float]:
        rows = self._execute(
            "SELECT at FROM coordination_failures WHERE key = %s AND at > %s ORDER BY at",
            key, since,
        ).fetchall()  # fmt: skip
        return [row[0] for row in rows]

    def fail(self, key: bytes) -> None:
        self._execute("INSERT INTO coordination_failures VALUES (%s, " + NOW + ")", key)

    def forgive(self, key: bytes) -> None:
        self._execute("DELETE FROM coordination_failures WHERE key = %s", key)

    def _send(self, username: str, states: States) -> None:
        payload = json.dumps({"o": self.holder, "u": username, "s": states})
        self._execute("SELECT pg_notify(%s, %s)", CHANNEL, payload)

    def subscribe(self, deliver: Callable[[str, States], None]) -> None:
        listening = threading.Event()
        self._start(lambda: self._listen_forever(deliver, listening), "coordination-listen")
        listening.wait(10)

    def _listen_forever(
        self, deliver: Callable[[str, States], None], listening: threading.Event
    ) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    listening.set()
                    while not self._stop.is_set():
                        for note in connection.notifies(timeout=0.5):
                            payload = json.loads(note.payload)
                            if payload["o"] != self.holder:
                                deliver(payload["u"], payload["s"])
            except psycopg.Error as exc:
                # Published states missed meanwhile: push resumes with the next change.
                log.warning("listening for published states failed: %s; again in 1 s", exc)
                self._stop.wait(1.0)

    def _renew(self) -> None:
        self._execute(
            "UPDATE coordination_leases SET expires = " + NOW + " + %s WHERE holder = %s",
            self.lease_time, self.holder,
        )  # fmt: skip
        self._execute("DELETE FROM coordination_claims WHERE at < " + NOW + " - %s", EVENTS_KEPT)
        self._execute(
            "DELETE FROM coordination_failures WHERE at < " + NOW + " - %s", FAILURES_KEPT
        )

    def close(self) -> None:
        self._stop_threads()
        try:
            self._execute("DELETE FROM coordination_leases WHERE holder = %s", self.holder)
            self._execute("DELETE FROM coordination_vouchers WHERE holder = %s", self.holder)
        except psycopg.Error as exc:
            log.warning("releasing leases at shutdown failed: %s", exc)
        with self._pool_guard:
            for connection in self._idle:
                connection.close()
            self._idle.clear()
        self._db.close()
