"""Idle authenticated connections per user, lent to one worker thread at a time.

Each user's entry has a Condition of its own: a borrow, a return or a wait for a free slot
touches only that user's, so users never queue behind each other here, and a return wakes
only that user's waiters. The pool's own lock guards just the table of users.

A password is never stored: the pool keeps an HMAC-SHA256 of the last password that
opened a connection for the user (under a random per-process key) and lends that user's
idle connections only to a caller presenting the same password. Every borrower supplies
the password anyway, so new connections are opened with the caller's own copy.

A verified password is trusted without a new LOGIN for ``verify_ttl`` seconds only: a
user who changes their password upstream (say, because it leaked) locks the old one out of
bridge within that time, even while busy connections keep the old session alive.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bridge import deadline as request_deadline
from bridge.imap.connection import ImapConnection, UpstreamConfig
from bridge.imap.errors import AuthFailed, UpstreamError, UpstreamUnavailable
from bridge.imap.responses import ObjectIds

log = logging.getLogger("bridge.imap")

Opener = Callable[[UpstreamConfig, str, str], ImapConnection]

# An idle connection older than this gets a NOOP before reuse: servers and middleboxes
# drop quiet sessions, and a failed NOOP costs less than a failed request.
NOOP_AFTER = 60.0


@dataclass
class _Idle:
    connection: ImapConnection
    since: float


@dataclass
class _User:
    # Guards every field below, and is what the user's borrowers wait on.
    cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    verifier: bytes | None = field(default=None, repr=False)
    verified_at: float = 0.0
    # Bumped whenever the connections in use belong to a password no longer current;
    # those are closed when they come back.
    generation: int = 0
    idle: list[_Idle] = field(default_factory=list)
    open: int = 0  # idle + lent + being opened
    checking: int = 0  # LOGINs of a not yet trusted password in flight
    # Taken out of the pool's table (nothing open, trust expired): look the user up again.
    gone: bool = False


@dataclass
class _Slot:
    """What the lock-holding part of a borrow decided."""

    idle: _Idle | None
    trusted: bool


# The folder an idle connection keeps selected between requests: the busiest,
# and the one whose SELECT costs most on a big Maildir.
KEPT_OPEN = "INBOX"


class ConnectionPool:
    def __init__(
        self,
        config: UpstreamConfig,
        max_idle_per_user: int = 4,
        max_open_per_user: int = 8,
        idle_timeout: float = 300.0,
        opener: Opener = ImapConnection.open,
        *,
        wait_timeout: float | None = None,
        verify_ttl: float | None = None,
    ) -> None:
        if max_open_per_user < 1:
            raise ValueError("max_open_per_user must be at least 1")
        self.config = config
        self.max_open_per_user = max_open_per_user
        self.max_idle_per_user = min(max_idle_per_user, max_open_per_user)
        self.idle_timeout = idle_timeout
        self.wait_timeout = config.timeout if wait_timeout is None else wait_timeout
        self.verify_ttl = idle_timeout if verify_ttl is None else verify_ttl
        self._opener = opener
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()  # the table only; never taken before a user's cond
        self._users: dict[str, _User] = {}
        self._reaper: threading.Thread | None = None
        self._reaper_stop = threading.Event()
        # Whether the server is Gmail, as the last connection opened found: None before one.
        self.gmail: bool | None = None

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.config.host}:{self.config.port} users={len(self._users)}>"

    # -- public -------------------------------------------------------------------------

    @contextmanager
    def connection(
        self, username: str, password: str, *, for_inbox: bool = True
    ) -> Iterator[ImapConnection]:
        """Borrow a logged-in connection; it goes back to the pool unless it broke. One
        with INBOX open is lent first, or last when not ``for_inbox`` (a second connection
        for other folders)."""
        connection, generation = self._acquire(username, password, for_inbox)
        failed = False
        try:
            yield connection
        except UpstreamUnavailable:
            failed = True
            raise
        finally:
            self._release(username, connection, generation, discard=failed)

    def open_dedicated(self, username: str, password: str) -> ImapConnection:
        """A connection of the caller's own, outside the pool's limits, for a session that
        stays busy for long (IDLE): lending one would starve requests. The caller closes it."""
        return self._opener(self.config, username, password)

    def verify(self, username: str, password: str) -> None:
        """Return if ``password`` is the user's; raise AuthFailed if the server says not."""
        if self.trusts(username, password):
            return
        with self.connection(username, password):
            pass

    def trusts(self, username: str, password: str) -> bool:
        """Whether ``password`` is the one the upstream accepted for the user lately: such a
        request is never held back by anyone else's failed guesses."""
        with self._lock:
            user = self._users.get(username)
        if user is None:
            return False
        digest = self._digest(password)
        with user.cond:
            return self._trusted(user, digest)

    def close_all(self) -> None:
        """Close idle connections and forget every verified password. Connections lent out
        are closed when they come back."""
        closing: list[ImapConnection] = []
        for user in self._all_users():
            with user.cond:
                closing.extend(idle.connection for idle in user.idle)
                user.open -= len(user.idle)
                user.idle.clear()
                user.verifier = None
                user.generation += 1
                user.cond.notify_all()
        for connection in closing:
            connection.close()

    def start_reaper(self) -> None:
        """Log out idle connections once they pass ``idle_timeout``, whether or not their
        user comes back: one daemon thread, stopped by ``stop_reaper``."""
        if self._reaper is not None:
            return
        self._reaper_stop.clear()
        self._reaper = threading.Thread(target=self._reap_forever, name="pool-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            self._reaper_stop.set()
            reaper.join()

    def _reap_forever(self) -> None:
        # A connection is logged out at most a quarter of the timeout after it expires.
        interval = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while not self._reaper_stop.wait(interval):
            expired = self._reap()
            for connection in expired:
                connection.close()  # LOGOUT with a short timeout, never raises
            if expired:
                log.info("logged out %d idle IMAP connections", len(expired))

    def stats(self, username: str) -> tuple[int, int]:
        """(open, idle) connections of a user: for tests and diagnostics."""
        with self._lock:
            user = self._users.get(username)
        if user is None:
            return (0, 0)
        with user.cond:
            return user.open, len(user.idle)

    def totals(self) -> tuple[int, int, int]:
        """(users, open, idle) over every user: for bridge.metrics."""
        users = self._all_users()
        # Each figure read without the users' locks: a gauge may be a borrow behind.
        return len(users), sum(u.open for u in users), sum(len(u.idle) for u in users)

    def _all_users(self) -> list[_User]:
        with self._lock:
            return list(self._users.values())

    def _user(self, username: str) -> _User:
        """The user's entry, made if missing (lock it, and check ``gone``, before use)."""
        with self._lock:
            user = self._users.get(username)
            if user is None:
                user = self._users[username] = _User()
            return user

    def _held(self, username: str) -> _User:
        """The entry of a user the caller holds a slot of (the reaper keeps it meanwhile)."""
        with self._lock:
            return self._users[username]

    # -- borrowing ------------------------------------------------------------------------

    def _digest(self, password: str) -> bytes:
        data = password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def _trusted(self, user: _User, digest: bytes) -> bool:
        return (
            user.verifier is not None
            and hmac.compare_digest(user.verifier, digest)
            and time.monotonic() - user.verified_at < self.verify_ttl
        )

    def _acquire(
        self, username: str, password: str, for_inbox: bool = True
    ) -> tuple[ImapConnection, int]:
        digest = self._digest(password)
        deadline = time.monotonic() + request_deadline.bounded(self.wait_timeout)
        while True:
            slot = self._take_slot(username, digest, deadline, for_inbox)
            if slot.idle is None:
                return self._open(username, password, digest, trusted=slot.trusted)
            connection = slot.idle.connection
            idle_for = time.monotonic() - slot.idle.since
            if idle_for > self.idle_timeout:
                self._drop(username, connection)
                continue
            if self._ready(connection, probe=idle_for > NOOP_AFTER):
                user = self._held(username)
                with user.cond:
                    return connection, user.generation
            log.info("replacing a dead idle connection of %s", username)
            connection.close()
            # The dead one's slot is still counted: the new connection takes it over.
            return self._open(username, password, digest, trusted=True)

    @staticmethod
    def _ready(connection: ImapConnection, *, probe: bool) -> bool:
        """Whether an idle connection can be lent. One left with a mailbox selected is
        unselected first: Dovecot ends a session whose selected mailbox another session
        renamed or deleted, and says so only when the next command arrives, so this is
        also the liveness probe. INBOX, which no one can rename away or delete, stays
        open (read-write too, once a write opened it so): the next sync asks it for changes
        instead of selecting it again, which on a big Maildir costs Dovecot a scan."""
        if connection.selected in (None, KEPT_OPEN):
            return connection.is_alive(probe=probe)
        try:
            connection.unselect()
        except UpstreamError:
            return False
        return connection.is_alive(probe=probe and connection.selected is not None)

    def _take_slot(self, username: str, digest: bytes, deadline: float, for_inbox: bool) -> _Slot:
        expired: list[ImapConnection] = []
        try:
            while True:
                user = self._user(username)
                with user.cond:
                    if user.gone:
                        continue  # the reaper took it out meanwhile: a new entry
                    expired = self._expire_idle(user)
                    return self._slot_of(user, digest, deadline, for_inbox)
        finally:
            for connection in expired:
                connection.close()

    def _slot_of(self, user: _User, digest: bytes, deadline: float, for_inbox: bool) -> _Slot:
        """An idle connection or the right to open one, waiting for either (user.cond held)."""
        while True:
            trusted = self._trusted(user, digest)
            if trusted and user.idle:
                return _Slot(user.idle.pop(_pick(user.idle, for_inbox)), trusted=True)
            # A password not yet trusted may LOGIN even when the user is at the limit (one
            # at a time): a wrong guess must not need, or take, their connections.
            limit = self.max_open_per_user
            if not trusted and user.checking == 0:
                limit += 1
            if user.open < limit:
                user.open += 1
                if not trusted:
                    user.checking += 1
                return _Slot(None, trusted=trusted)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamUnavailable(
                    f"no IMAP connection free within {self.wait_timeout:.0f} s"
                )
            user.cond.wait(remaining)

    def _expire_idle(self, user: _User) -> list[ImapConnection]:
        """Take the user's idle connections past idle_timeout out (user.cond held; the
        caller closes them)."""
        now = time.monotonic()
        stale = [idle for idle in user.idle if now - idle.since > self.idle_timeout]
        if not stale:
            return []
        user.idle = [idle for idle in user.idle if idle not in stale]
        user.open -= len(stale)
        user.cond.notify_all()
        return [idle.connection for idle in stale]

    def _reap(self) -> list[ImapConnection]:
        """Take idle connections past idle_timeout out of the pool (closed by the caller),
        and users with nothing open whose trust has expired."""
        expired: list[ImapConnection] = []
        with self._lock:
            users = list(self._users.items())
        for name, user in users:
            with user.cond:
                expired.extend(self._expire_idle(user))
                idle_user = user.open == 0 and user.checking == 0
                if idle_user and time.monotonic() - user.verified_at > self.verify_ttl:
                    with self._lock:  # the one place both are held: a user's cond first
                        if self._users.get(name) is user:
                            del self._users[name]
                            user.gone = True
        return expired

    def _open(
        self, username: str, password: str, digest: bytes, *, trusted: bool
    ) -> tuple[ImapConnection, int]:
        try:
            connection = self._opener(self.config, username, password)
        except AuthFailed:
            self._login_failed(username, digest, trusted=trusted)
            raise
        except BaseException:
            user = self._held(username)
            with user.cond:
                user.open -= 1
                if not trusted:
                    user.checking -= 1
                user.cond.notify_all()
            raise
        self.gmail = getattr(connection, "object_ids", None) is ObjectIds.GMAIL
        stale: list[ImapConnection] = []
        user = self._held(username)
        with user.cond:
            if not trusted:
                user.checking -= 1
            if user.verifier is None or not hmac.compare_digest(user.verifier, digest):
                # First login, or the password changed upstream: connections opened with the
                # old one are of the past.
                if user.verifier is not None:
                    log.info("new password for %s: replacing its connections", username)
                stale = [idle.connection for idle in user.idle]
                user.open -= len(user.idle)
                user.idle.clear()
                user.generation += 1
                user.verifier = digest
            user.verified_at = time.monotonic()
            generation = user.generation
            log.info("opened an IMAP connection for %s (%d open)", username, user.open)
            user.cond.notify_all()
        for old in stale:
            old.close()
        return connection, generation

    def _login_failed(self, username: str, digest: bytes, *, trusted: bool) -> None:
        stale: list[ImapConnection] = []
        user = self._held(username)
        with user.cond:
            user.open -= 1
            if not trusted:
                user.checking -= 1
            elif user.verifier is not None and hmac.compare_digest(user.verifier, digest):
                # The password that opened the pooled connections no longer works upstream.
                log.info("password of %s no longer accepted upstream", username)
                stale = [idle.connection for idle in user.idle]
                user.open -= len(user.idle)
                user.idle.clear()
                user.generation += 1
                user.verifier = None
            user.cond.notify_all()
        for old in stale:
            old.close()

    def _release(
        self, username: str, connection: ImapConnection, generation: int, *, discard: bool
    ) -> None:
        user = self._held(username)
        with user.cond:
            keep = (
                not discard
                and not connection.broken
                and generation == user.generation
                and len(user.idle) < self.max_idle_per_user
            )
            if keep:
                user.idle.append(_Idle(connection, time.monotonic()))
            else:
                user.open -= 1
            user.cond.notify_all()
        if not keep:
            connection.close()

    def _drop(self, username: str, connection: ImapConnection) -> None:
        user = self._held(username)
        with user.cond:
            user.open -= 1
            user.cond.notify_all()
        connection.close()


def _pick(idle: list[_Idle], for_inbox: bool) -> int:
    """Which idle connection to lend: the last returned with INBOX open (``for_inbox``: a
    request's sync asks it what changed rather than opening INBOX anew, which on a big
    Maildir costs Dovecot a scan) or without it (not ``for_inbox``), else the last
    returned."""
    for index in range(len(idle) - 1, -1, -1):
        if (idle[index].connection.selected == KEPT_OPEN) == for_inbox:
            return index
    return -1
