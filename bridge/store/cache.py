"""The per-user SQLite cache: folder sync state, the uid -> Email map, and the change log.

Every mutation runs inside ``transaction()`` and logs what it changed with a fresh value of
the cache's own counter, so /changes is a range scan over ``changelog``. States handed to
clients carry the cache's epoch: a rebuilt cache starts a new epoch, and old states then
answer cannotCalculateChanges instead of a wrong delta.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import msgspec

from bridge import inline
from bridge.store import arrivals, email_query, health
from bridge.store.email_query import NO_LIMIT, Clause, OrderKey
from bridge.store.ids import derive_id, random_token
from bridge.store.records import (
    ChangeSet,
    Committed,
    Counts,
    EmailRecord,
    FlagUpdate,
    FolderState,
    HeaderText,
    Location,
    MailboxRecord,
    MessageRef,
    NewMessage,
    SortKeys,
)
from bridge.store.schema import create_empty, migrate, table_names

MAILBOX = "Mailbox"
EMAIL = "Email"
THREAD = "Thread"
IDENTITY = "Identity"
EMAIL_SUBMISSION = "EmailSubmission"
# RFC 8621 §1.5: a push-only type whose state moves when an Email is added to the store,
# and on no other change.
EMAIL_DELIVERY = "EmailDelivery"
# The types whose changes the log keeps (EmailDelivery has a state but no /changes).
LOGGED_TYPES = (MAILBOX, EMAIL, THREAD, IDENTITY, EMAIL_SUBMISSION)

_MAILBOX_COLUMNS = (
    "id, upstream_key, name, delimiter, role, subscribed, selectable, sort_order, rights, "
    "status_uidvalidity, status_uidnext, status_messages, status_unseen, status_modseq, "
    "synced_uidvalidity, synced_uidnext, synced_messages, synced_unseen, synced_modseq, "
    "total_emails, unread_emails, total_threads, unread_threads, index_uidvalidity, "
    "special_use"
)
_CHUNK = 500
# Parameters in one multi-row statement: under SQLite's oldest limit (999).
_MAX_PARAMS = 990
# SQLite's INSERT OR REPLACE of a location, in the upsert both databases know.
_REPLACE_LOCATION = (
    "ON CONFLICT(mailbox_id, uid) DO UPDATE SET email_id = excluded.email_id, "
    "flags = excluded.flags, modseq = excluded.modseq, received_at = excluded.received_at"
)
# In meta while Emails cached before the header index (migration 6) wait for their fields.
HEADER_BACKFILL = "header_backfill"
# Set to "1" (and checkpointed into the main file) while a process has the cache open, "0"
# at a clean close: "1" with no write-ahead log beside the file means the log of an unclean
# stop was lost, with the last transactions in it, and with them states already handed out.
IN_USE = "in_use"
# SQLite checkpoints the write-ahead log into the file every 1,000 pages by default and
# never shrinks it (a 4.1 MB log beside a 98 KB cache was seen): here every 256 pages
# (1 MiB), and the log is cut back to 1 MiB when it starts over after a checkpoint.
JOURNAL_SIZE_LIMIT = 1024 * 1024
CHECKPOINT_PAGES = 256

log = logging.getLogger("bridge.store")


def _tune(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")


def _open_healthy(path: Path) -> sqlite3.Connection:
    """A checked connection to the cache at ``path``: a damaged file is moved aside (kept
    for inspection) and an empty cache takes its place."""
    try:
        return _open_checked(path)
    except sqlite3.DatabaseError as exc:
        if not health.is_damage(exc):
            raise
        moved = health.move_aside(path)
        log.warning("cache %s is damaged (%s): moved to %s, rebuilding", path, exc, moved.name)
    return _open_checked(path)


def _open_checked(path: Path) -> sqlite3.Connection:
    try:
        return _connect_checked(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        if health.is_full(exc):
            raise health.StorageFull("a cache") from exc
        raise


def _connect_checked(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A cache made just now from the empty image needs no migration, no check and no
    # checkpoint: a new user's first request does not wait for them (nor for the disk).
    created = not path.exists() and create_empty(path)
    wal_present = path.with_name(path.name + "-wal").exists()
    conn = health.connect(path)
    try:
        _tune(conn)
        if not created:
            _check(conn, wal_present)
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, '1') "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (IN_USE,),
        )
        if not created:
            # Into the main file: gone with the log, the mark would not tell of the loss.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        conn.close()
        raise
    return conn


def _check(conn: sqlite3.Connection, wal_present: bool) -> None:
    migrate(conn)
    health.check_integrity(conn, table_names())
    in_use = conn.execute("SELECT value FROM meta WHERE key = ?", (IN_USE,)).fetchone()
    if in_use is not None and in_use[0] == "1" and not wal_present:
        raise health.CacheDamaged("the write-ahead log of an unclean stop is gone")


class _RequestMemo:
    """What a request read of ``meta`` (the states, whether the header index waits for a
    backfill) and of the folders, and when: the commits made here and the change counter
    at the time (``Cache.one_request``)."""

    def __init__(self) -> None:
        self.at = (-1, -1)
        self.meta: dict[str, str] = {}
        self.read: frozenset[str] = frozenset()  # the keys looked up, found or not
        self.mailboxes: list[MailboxRecord] | None = None


# What a request's first read of ``meta`` asks for (``Cache.one_request``).
_REQUEST_KEYS = [f"state:{name}" for name in (*LOGGED_TYPES, EMAIL_DELIVERY)] + [HEADER_BACKFILL]


def _server_counts(records: Iterable[MailboxRecord]) -> list[tuple[MailboxRecord, Counts]]:
    """Folders not indexed yet, with the counts their STATUS gives: each message counts as
    an Email and as its own thread."""
    counted = []
    for record in records:
        if record.selectable and not record.indexed and record.status is not None:
            messages, unseen = record.status.messages, record.status.unseen or 0
            counted.append((record, Counts(messages, unseen, messages, unseen)))
    return counted


def _chunks(items: Sequence[str] | Sequence[int]) -> Iterator[Sequence[str] | Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(count: int) -> str:
    # "IN ()" is SQLite's alone; "IN (NULL)" holds for no value in both databases.
    return ",".join("?" * count) or "NULL"


def _folder_state(values: Sequence[int | None]) -> FolderState | None:
    uidvalidity, uidnext, messages, unseen, modseq = values
    if uidvalidity is None or uidnext is None or messages is None:
        return None
    return FolderState(uidvalidity, uidnext, messages, unseen, modseq)


def _state_values(state: FolderState | None) -> tuple[int | None, ...]:
    if state is None:
        return (None,) * 5
    return (state.uidvalidity, state.uidnext, state.messages, state.unseen, state.modseq)


def _mailbox(row: sqlite3.Row) -> MailboxRecord:
    return MailboxRecord(
        id=row[0],
        upstream_key=row[1],
        name=row[2],
        delimiter=row[3],
        role=row[4],
        subscribed=bool(row[5]),
        selectable=bool(row[6]),
        sort_order=row[7],
        rights=row[8],
        status=_folder_state(row[9:14]),
        synced=_folder_state(row[14:19]),
        counts=Counts(*row[19:23]),
        index_uidvalidity=row[23],
        special_use=row[24],
    )


def _sort_values(keys: SortKeys | None) -> tuple[str | int | None, ...]:
    if keys is None:
        return (None, None, None, None)
    return (keys.from_, keys.to, keys.subject, keys.sent_at)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _header_values(text: HeaderText | None) -> tuple[str | int | None, ...]:
    if text is None:
        return (None,) * 6
    return (text.from_, text.to, text.cc, text.bcc, text.subject, text.inexact)


def _keywords_text(keywords: Iterable[str]) -> str:
    return " ".join(sorted(keywords))


def _is_unread(keywords: Iterable[str]) -> bool:
    found = set(keywords)
    return "$seen" not in found and "$draft" not in found


class Cache:
    """One user's cache. Thread-safe: one connection behind a re-entrant lock, which work
    inline on the event loop takes only when it is free (bridge.inline)."""

    # The change counter, and its read at a transaction's start not looked at yet.
    _counter_value = 0
    _counter_read: Any = None

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | None = None,
        *,
        lock: AbstractContextManager[Any] | None = None,
        shared: bool = False,
    ) -> None:
        # A PostgreSQL store passes its session (bridge.store.postgres) as both ``conn`` and
        # ``lock``: holding it holds a pooled connection. (Requests on a PostgreSQL store
        # never run inline on the event loop: bridge.core.)
        self._lock = lock or inline.GuardedLock()
        # Where the file lives, for a rebuild after damage (None: in memory).
        self.path = path
        # Other processes write the same file (README "Several instances"): the counter
        # held here is read again before every use, since theirs moved it too.
        self.shared = shared
        self._attach(conn)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        migrate(conn)

    def _attach(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._depth = 0
        self._tx_start = 0
        # Each type's new state, written once at commit rather than at every change.
        self._pending_states: dict[str, int] = {}
        # Counts are kept by difference: before a transaction first touches a thread, the
        # thread's share of every folder's counts is noted; at commit the share is taken
        # again and each folder's counts move by the difference.
        self._shares_before: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self._touched_threads: set[str] = set()
        # Per thread: what the JMAP request it runs has read (``one_request``).
        self._request = threading.local()
        self._commits = 0  # transactions committed here
        self._newly_indexed: set[str] = set()
        # Folder -> (counter, whether it holds an Email twice), for Email/query.
        self._duplicates: dict[str, tuple[int, bool]] = {}
        self._upgrade(conn)
        self._counter = int(self._meta("counter") or 0)
        self.epoch = self._meta("epoch") or self._init_epoch()

    @classmethod
    def open(cls, path: Path | str, *, shared: bool = False) -> Cache:
        """The cache at ``path``; one that is damaged is moved aside and built anew."""
        if str(path) == ":memory:":
            conn = health.connect(":memory:")
            _tune(conn)
            return cls(conn)
        return cls(_open_healthy(Path(path)), Path(path), shared=shared)

    def _current_counter(self) -> int:
        """The counter as committed, when other processes may have moved it; inside this
        thread's transaction, as it stands here."""
        if self.shared:
            with self._lock:
                if self._depth == 0:
                    self._counter = int(self._meta("counter") or 0)
        return self._counter

    @property
    def damaged(self) -> bool:
        """Whether a statement met a damaged page: the cache must be rebuilt."""
        return getattr(self._conn, "damage", None) is not None

    def rebuild(self) -> None:
        """Move a damaged cache aside and start an empty one (with a new epoch) in its
        place; the caller keeps syncs out meanwhile."""
        with self._lock:
            if self.path is None:
                raise RuntimeError("an in-memory cache cannot be rebuilt")
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            moved = health.move_aside(self.path)
            log.warning("cache %s was damaged: moved to %s, rebuilding", self.path, moved.name)
            self._attach(_open_healthy(self.path))

    def close(self) -> None:
        with self._lock:
            if self.path is not None and not self.damaged:
                # A clean stop: the next open need not suspect a lost write-ahead log.
                with contextlib.suppress(sqlite3.Error):
                    self._set_meta(IN_USE, "0")
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    @contextmanager
    def sql(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the cache's lock, for a table kept apart from the change
        log by a store of its own (bridge.store.push_subscriptions)."""
        with self._lock:
            yield self._conn

    @contextmanager
    def erasing(self) -> Iterator[sqlite3.Connection]:
        """``sql()`` for deletes whose rows must not stay readable in the file's free pages
        (``secure_delete`` overwrites them)."""
        with self.sql() as conn:
            (before,) = conn.execute("PRAGMA secure_delete").fetchone()
            conn.execute("PRAGMA secure_delete = ON")
            try:
                yield conn
            finally:
                conn.execute(f"PRAGMA secure_delete = {int(before)}")

    # -- transactions and the counter -------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Committed]:
        """Everything inside commits together, or not at all. Yields a ``Committed``: at
        the end of the outermost transaction, the types it logged changes of."""
        inline.refuse("a write to the cache")
        committed = Committed()
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._conn.execute("BEGIN IMMEDIATE")
                if self.shared:
                    # The write lock is ours: no other process moves the counter now. It is
                    # read when first needed: a pipelining store sends the read with the
                    # next statement, and a transaction that logs nothing never waits for it.
                    self._counter_read = self._conn.execute(
                        "SELECT value FROM meta WHERE key = ?", ("counter",)
                    )
                else:
                    self._tx_start = self._counter
            self._depth += 1
            try:
                yield committed
                if outermost:
                    self._settle_counts()
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._conn.execute("ROLLBACK")
                    if self._counter_read is not None:
                        self._counter_read = None  # never read: the value before stands
                    else:
                        self._counter = self._tx_start
                    self._pending_states.clear()
                    self._forget_shares()
                raise
            self._depth -= 1
            if outermost:
                if self._counter_read is None and self._counter != self._tx_start:
                    self._set_meta("counter", str(self._counter))
                committed.logged = frozenset(self._pending_states)
                if self._pending_states:
                    self._conn.executemany(
                        "INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        [(f"state:{t}", str(v)) for t, v in self._pending_states.items()],
                    )
                    self._pending_states.clear()
                self._conn.execute("COMMIT")
                self._commits += 1

    @property
    def _counter(self) -> int:
        """The change counter; inside a transaction on a shared store, as read at its start
        (see ``transaction``)."""
        pending = self._counter_read
        if pending is not None:
            self._counter_read = None
            row = pending.fetchone()
            self._counter_value = self._tx_start = int(row[0]) if row else 0
        return self._counter_value

    @_counter.setter
    def _counter(self, value: int) -> None:
        self._counter_read = None
        self._counter_value = value

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _init_epoch(self) -> str:
        epoch = random_token(6)
        with self.transaction():
            self._set_meta("epoch", epoch)
        return epoch

    def _next(self) -> int:
        assert self._depth > 0, "mutations run inside transaction()"
        self._counter += 1
        return self._counter

    # -- state strings ------------------------------------------------------------------

    def state(self, type_name: str) -> int:
        return self.states([type_name])[type_name]

    def states(self, type_names: Sequence[str]) -> dict[str, int]:
        """The state of each type, in one read (push asks for all after every request)."""
        keys = [f"state:{name}" for name in type_names]
        with self._lock:
            memo = self._memo()
            if memo is None:
                return self._states_of(dict(self._read_meta(keys).fetchall()), type_names)
            if not memo.read >= set(keys):
                self._remember_meta(memo, self._read_meta(_REQUEST_KEYS + keys), keys)
            return self._states_of(memo.meta, type_names)

    def _read_meta(self, keys: Sequence[str]) -> Any:
        keys = list(dict.fromkeys(keys))
        return self._conn.execute(
            f"SELECT key, value FROM meta WHERE key IN ({_marks(len(keys))})", keys
        )

    @staticmethod
    def _remember_meta(memo: _RequestMemo, rows: Any, keys: Sequence[str] = ()) -> None:
        memo.meta = dict(rows.fetchall())
        memo.read = frozenset((*_REQUEST_KEYS, *keys))

    def _states_of(self, meta: dict[str, str], type_names: Sequence[str]) -> dict[str, int]:
        found = {name: int(meta.get(f"state:{name}", 0)) for name in type_names}
        # Inside a transaction of this thread, its changes are not written yet.
        found.update((t, v) for t, v in self._pending_states.items() if t in found)
        return found

    @contextmanager
    def one_request(self) -> Iterator[None]:
        """A JMAP request runs on this thread: its reads of the states and of the folders
        outside a transaction share one each, kept while no transaction commits here. The
        states are read first, so that a state a method answers is never newer than what
        it read after it (another process's change may be newer: the client then hears of
        it again, never not at all)."""
        self._request.memo = _RequestMemo()
        try:
            yield
        finally:
            self._request.memo = None

    def _memo(self) -> _RequestMemo | None:
        """This thread's request memo, emptied if a commit here made it old; None outside
        a request or inside a transaction (whose own changes are not committed yet)."""
        memo: _RequestMemo | None = getattr(self._request, "memo", None)
        if memo is None or self._depth > 0:
            return None
        now = (self._commits, self._counter)
        if memo.at != now:
            memo.at, memo.meta, memo.read, memo.mailboxes = now, {}, frozenset(), None
        return memo

    def encode_state(self, value: int) -> str:
        return f"{self.epoch}-{value}"

    def decode_state(self, state: str) -> int | None:
        """The counter value a state string names, or None if it is not ours."""
        epoch, _, number = state.rpartition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        value = int(number)
        return value if value <= self._current_counter() else None

    def horizon(self, type_name: str) -> int:
        """Changes at or below this value were pruned: older states cannot be served."""
        with self._lock:
            return int(self._meta(f"horizon:{type_name}") or 0)

    # -- the change log -------------------------------------------------------------------

    def log_created(self, type_name: str, object_id: str) -> None:
        self._log_rows(created=[(type_name, object_id, self._next())])

    def log_updated(self, type_name: str, object_id: str, *, counts_only: bool = False) -> None:
        self._log_rows(updated=[(type_name, object_id, self._next())], counts_only=counts_only)

    def _log_rows(
        self,
        created: Sequence[tuple[str, str, int]] = (),
        updated: Sequence[tuple[str, str, int]] = (),
        *,
        counts_only: bool = False,
    ) -> None:
        """Log (type, id, counter value) entries, at most one per object in each list.

        An update never waits for the log's row count (a store that pipelines its writes
        would wait for it): a live entry moves, and an object created earlier in this same
        transaction stays "created" at its latest touch, since no client saw a state between
        the two. An object older than the log, pruned from it or destroyed is logged as
        updated, created at the horizon so no window reports it as created."""
        self._insert_rows(
            "INSERT INTO changelog(type, id, created, updated, props_updated, destroyed)",
            "(?, ?, ?, ?, ?, NULL)",
            [(t, i, v, v, v) for t, i, v in created],
            "ON CONFLICT(type, id) DO UPDATE SET created = excluded.created, "
            "updated = excluded.updated, props_updated = excluded.props_updated, "
            "destroyed = NULL",
        )
        props = "changelog.props_updated" if counts_only else "excluded.updated"
        self._insert_rows(
            "INSERT INTO changelog(type, id, created, updated, props_updated, destroyed)",
            "(?, ?, 0, ?, ?, NULL)",
            [(t, i, v, 0 if counts_only else v) for t, i, v in updated],
            "ON CONFLICT(type, id) DO UPDATE SET updated = excluded.updated, "
            "props_updated = CASE WHEN changelog.destroyed IS NULL "
            f"THEN {props} ELSE excluded.props_updated END, "
            "created = CASE WHEN changelog.destroyed IS NOT NULL THEN 0 "
            "WHEN changelog.created > ? THEN excluded.updated ELSE changelog.created END, "
            "destroyed = NULL",
            (self._tx_start,),
        )
        for type_name, _, value in (*created, *updated):
            self._raise_state(type_name, value)
        for type_name, _, value in created:
            if type_name == EMAIL:
                self._raise_state(EMAIL_DELIVERY, value)

    def _raise_state(self, type_name: str, value: int) -> None:
        pending = self._pending_states
        pending[type_name] = max(value, pending.get(type_name, 0))

    def _insert_rows(
        self,
        head: str,
        row: str,
        rows: Sequence[Sequence[Any]],
        tail: str = "",
        tail_params: Sequence[Any] = (),
    ) -> None:
        """``head`` VALUES ``row``, ``row``, ... ``tail``: many rows in few statements (a
        store across a network pays for each statement, not for each row)."""
        if not rows:
            return
        per_statement = max(1, _MAX_PARAMS // len(rows[0]))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            self._conn.execute(
                f"{head} VALUES {', '.join([row] * len(chunk))} {tail}",
                [*(value for values in chunk for value in values), *tail_params],
            )

    def log_destroyed(self, type_name: str, object_id: str) -> None:
        value = self._next()
        self._conn.execute(
            "INSERT INTO changelog(type, id, created, updated, props_updated, destroyed) "
            "VALUES (?, ?, 0, ?, ?, ?) ON CONFLICT(type, id) DO UPDATE SET "
            "updated = excluded.updated, props_updated = excluded.props_updated, "
            "destroyed = excluded.destroyed",
            (type_name, object_id, value, value, value),
        )
        self._pending_states[type_name] = value

    def changes(self, type_name: str, since: int, max_changes: int | None) -> ChangeSet:
        """Objects changed after ``since``, in the order of their first change after it, at
        most ``max_changes`` of them.

        The log keeps each object's creation and its latest change. A page that ends at an
        intermediate state reports what was true at that state: an object created inside
        the page but changed again later is "created" here and "updated" in a later page.
        """
        with self._lock:
            query = (
                "SELECT id, created, updated, props_updated, destroyed, "
                "CASE WHEN created > :since THEN created ELSE updated END AS first "
                "FROM changelog WHERE type = :type AND updated > :since ORDER BY first"
            )
            params: dict[str, object] = {"type": type_name, "since": since}
            if max_changes is not None:
                query += " LIMIT :limit"
                params["limit"] = max_changes + 1
            rows = self._conn.execute(query, params).fetchall()
            current = self.state(type_name)
        has_more = max_changes is not None and len(rows) > max_changes
        if has_more:
            rows = rows[:max_changes]
        until = rows[-1][5] if has_more else current
        created: list[str] = []
        updated: list[str] = []
        destroyed: list[str] = []
        counts_only = True
        for object_id, born, _, props_updated, died, _ in rows:
            gone = died is not None and died <= until
            if born > since:
                if not gone:
                    created.append(object_id)
            elif gone:
                destroyed.append(object_id)
            else:
                updated.append(object_id)
                counts_only = counts_only and props_updated <= since
        return ChangeSet(created, updated, destroyed, until, has_more, counts_only)

    def changed_since(
        self, type_name: str, since: int, *, properties_only: bool = False
    ) -> set[str]:
        """Every object created, updated or destroyed after ``since``; with
        ``properties_only``, not those whose only change was to Mailbox counts."""
        column = "props_updated" if properties_only else "updated"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id FROM changelog WHERE type = ? AND {column} > ?", (type_name, since)
            ).fetchall()
        return {row[0] for row in rows}

    @property
    def counter(self) -> int:
        return self._current_counter()

    @property
    def counter_seen(self) -> int:
        """The change counter as this process last saw it, without a read: it moves with
        every change committed here (and, on a shared store, as a transaction here
        begins after another process's changes)."""
        return self._counter

    def prune(self, keep_changes: int) -> int:
        """Forget tombstones more than ``keep_changes`` changes old, for every type; states
        older than that then answer cannotCalculateChanges."""
        if self._counter <= keep_changes:
            # The counter only grows, and the last one seen here is not past the mark: no
            # read of the store's (the usual case, on every sync of a young cache).
            return 0
        keep_after = self._current_counter() - keep_changes
        if keep_after <= 0:
            return 0
        # Tombstones are forgotten in batches, not after every change.
        with self._lock:
            last = int(self._meta("pruned_at") or 0)
        if keep_changes and keep_after <= last + keep_changes // 10:
            return 0
        pruned = sum(self.prune_tombstones(t, keep_after) for t in LOGGED_TYPES)
        with self.transaction():
            self._set_meta("pruned_at", str(keep_after))
        return pruned

    def prune_tombstones(self, type_name: str, keep_after: int) -> int:
        """Forget destroyed objects logged at or before ``keep_after``."""
        with self.transaction():
            cursor = self._conn.execute(
                "DELETE FROM changelog WHERE type = ? AND destroyed IS NOT NULL AND destroyed <= ?",
                (type_name, keep_after),
            )
            if cursor.rowcount:
                horizon = max(keep_after, self.horizon(type_name))
                self._set_meta(f"horizon:{type_name}", str(horizon))
            return cursor.rowcount

    # -- objects kept whole (Identity, EmailSubmission) -----------------------------------

    def objects(self, type_name: str, ids: Sequence[str] | None = None) -> dict[str, bytes]:
        """The stored objects of a type, all or those of ``ids``: id -> its encoded form."""
        query, params = "SELECT id, data FROM objects WHERE type = ?", [type_name]
        if ids is not None:
            query += f" AND id IN ({_marks(len(ids))})"
            params += list(ids)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return {object_id: bytes(data) for object_id, data in rows}

    def put_object(self, type_name: str, object_id: str, data: bytes) -> None:
        """Store an object, logged as created or updated by whether it existed."""
        with self.transaction():
            known = self._conn.execute(
                "SELECT 1 FROM objects WHERE type = ? AND id = ?", (type_name, object_id)
            ).fetchone()
            self._conn.execute(
                "INSERT INTO objects(type, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT(type, id) DO UPDATE SET data = excluded.data",
                (type_name, object_id, data),
            )
            if known:
                self.log_updated(type_name, object_id)
            else:
                self.log_created(type_name, object_id)

    def remove_object(self, type_name: str, object_id: str) -> bool:
        """Forget an object; False if there was none."""
        with self.transaction():
            cursor = self._conn.execute(
                "DELETE FROM objects WHERE type = ? AND id = ?", (type_name, object_id)
            )
            if cursor.rowcount:
                self.log_destroyed(type_name, object_id)
            return bool(cursor.rowcount)

    # -- mailboxes ----------------------------------------------------------------------

    def mailboxes(self) -> list[MailboxRecord]:
        with self._lock:
            memo = self._memo()
            if memo is None:
                return self._read_mailboxes()
            if memo.mailboxes is None:
                if memo.read:
                    memo.mailboxes = self._read_mailboxes()
                else:  # the states first (see ``one_request``), in the same round trip
                    with self._conn.together():
                        meta = self._read_meta(_REQUEST_KEYS)
                        memo.mailboxes = self._read_mailboxes()
                        self._remember_meta(memo, meta)
            return list(memo.mailboxes)

    def _read_mailboxes(self) -> list[MailboxRecord]:
        rows = self._conn.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes").fetchall()
        return [_mailbox(row) for row in rows]

    def mailbox(self, mailbox_id: str) -> MailboxRecord | None:
        with self._lock:
            memo = self._memo()
            if memo is not None and memo.mailboxes is not None:
                return next((r for r in memo.mailboxes if r.id == mailbox_id), None)
            row = self._conn.execute(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?", (mailbox_id,)
            ).fetchone()
        return _mailbox(row) if row else None

    def mailbox_id_for(self, upstream_key: str) -> str:
        return derive_id("m", upstream_key)

    def add_mailboxes(self, records: Sequence[MailboxRecord]) -> None:
        self._insert_rows(
            f"INSERT INTO mailboxes({_MAILBOX_COLUMNS})",
            f"({_marks(25)})",
            [
                (
                    r.id, r.upstream_key, r.name, r.delimiter, r.role, int(r.subscribed),
                    int(r.selectable), r.sort_order, r.rights, *_state_values(r.status),
                    *_state_values(r.synced), *msgspec.structs.astuple(r.counts),
                    r.index_uidvalidity, r.special_use,
                )
                for r in records
            ],
        )  # fmt: skip
        self._log_rows(created=[(MAILBOX, r.id, self._next()) for r in records])

    def update_mailbox(self, old: MailboxRecord, new: MailboxRecord) -> None:
        """Store ``new`` over ``old`` and log a change if a client-visible property moved."""
        if new == old:
            return  # the usual case: a folder whose listing did not change
        self._conn.execute(
            "UPDATE mailboxes SET upstream_key = ?, name = ?, delimiter = ?, role = ?, "
            "subscribed = ?, selectable = ?, sort_order = ?, rights = ?, "
            "status_uidvalidity = ?, status_uidnext = ?, status_messages = ?, "
            "status_unseen = ?, status_modseq = ?, special_use = ? WHERE id = ?",
            (
                new.upstream_key, new.name, new.delimiter, new.role, int(new.subscribed),
                int(new.selectable), new.sort_order, new.rights, *_state_values(new.status),
                new.special_use, old.id,
            ),
        )  # fmt: skip
        visible = ("name", "delimiter", "role", "subscribed", "sort_order", "rights")
        if any(getattr(old, field) != getattr(new, field) for field in visible):
            self.log_updated(MAILBOX, old.id)

    def remove_mailbox(self, mailbox_id: str) -> set[str]:
        """Forget a folder; returns the Emails it held (see ``purge_orphans``)."""
        uids = [row[0] for row in self._conn.execute(
            "SELECT uid FROM locations WHERE mailbox_id = ?", (mailbox_id,)
        )]  # fmt: skip
        held = self._remove_locations(mailbox_id, uids)
        self._refresh_emails(held, moved=held)
        self._conn.execute("DELETE FROM mailboxes WHERE id = ?", (mailbox_id,))
        self.log_destroyed(MAILBOX, mailbox_id)
        return held

    def set_sort_order(self, mailbox_id: str, sort_order: int) -> None:
        self._conn.execute(
            "UPDATE mailboxes SET sort_order = ? WHERE id = ?", (sort_order, mailbox_id)
        )
        self.log_updated(MAILBOX, mailbox_id)

    def set_index_uidvalidity(self, mailbox_id: str, uidvalidity: int) -> set[str]:
        """Note which UIDVALIDITY a folder's first locations belong to; locations of an
        older one are dropped (returned: the Emails they held)."""
        row = self._conn.execute(
            "SELECT index_uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        dropped: set[str] = set()
        if row is not None and row[0] not in (None, uidvalidity):
            uids = [r[0] for r in self._conn.execute(
                "SELECT uid FROM locations WHERE mailbox_id = ?", (mailbox_id,)
            )]  # fmt: skip
            dropped = self._remove_locations(mailbox_id, uids)
        self._conn.execute(
            "UPDATE mailboxes SET index_uidvalidity = ? WHERE id = ?", (uidvalidity, mailbox_id)
        )
        return dropped

    def set_synced(self, mailbox_id: str, state: FolderState | None) -> None:
        row = self._conn.execute(
            "SELECT synced_uidvalidity FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        if state is not None and row is not None and row[0] is None:
            self._newly_indexed.add(mailbox_id)  # its counts were the server's until now
        self._conn.execute(
            "UPDATE mailboxes SET synced_uidvalidity = ?, synced_uidnext = ?, "
            "synced_messages = ?, synced_unseen = ?, synced_modseq = ? WHERE id = ?",
            (*_state_values(state), mailbox_id),
        )

    # -- messages -----------------------------------------------------------------------

    def locations(
        self,
        mailbox_id: str,
        uids: Iterable[int] | None = None,
        from_uid: int | None = None,
    ) -> dict[int, Location]:
        """A folder's locations: all of them, or those of ``uids`` and those from
        ``from_uid`` up (a delta sync reads no more than it names)."""
        query = "SELECT uid, email_id, flags, modseq FROM locations WHERE mailbox_id = ?"
        with self._lock:
            if uids is None and from_uid is None:
                rows = self._conn.execute(query, (mailbox_id,)).fetchall()
            else:
                rows = []
                for chunk in _chunks(sorted(set(uids or ()))):
                    rows += self._conn.execute(
                        f"{query} AND uid IN ({_marks(len(chunk))})", (mailbox_id, *chunk)
                    ).fetchall()
                if from_uid is not None:
                    rows += self._conn.execute(
                        f"{query} AND uid >= ?", (mailbox_id, from_uid)
                    ).fetchall()
        return {
            uid: Location(uid, email_id, frozenset(flags.split()), modseq)
            for uid, email_id, flags, modseq in rows
        }

    def email_locations(self, email_id: str) -> dict[str, list[int]]:
        """Where an Email is: mailbox id -> its UIDs there."""
        found: dict[str, list[int]] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT mailbox_id, uid FROM locations WHERE email_id = ? ORDER BY uid",
                (email_id,),
            ).fetchall()
        for mailbox_id, uid in rows:
            found.setdefault(mailbox_id, []).append(uid)
        return found

    def location_count(self, mailbox_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM locations WHERE mailbox_id = ?", (mailbox_id,)
            ).fetchone()
        return int(row[0])

    def apply_folder_delta(
        self,
        mailbox_id: str,
        removed: Iterable[int] = (),
        flag_updates: Iterable[FlagUpdate] = (),
        added: Iterable[NewMessage] = (),
    ) -> set[str]:
        """Apply one folder's changes; returns the ids of the Emails that changed.

        Expunges go first: a UID that vanished and a message that arrived are different
        messages even when they are the same Email (a MOVE within the account).
        """
        removed = list(removed)
        flag_updates = list(flag_updates)
        self._note_threads_at(mailbox_id, [*removed, *(u.uid for u in flag_updates)])
        moved = self._remove_locations(mailbox_id, removed)
        flagged = self._update_flags(mailbox_id, flag_updates)
        created, relocated = self._add_locations(mailbox_id, list(added))
        moved |= relocated
        if any(message.header_text is None for message in created.values()):
            # The header index of a first page: the indexer fills it in.
            self._set_meta(HEADER_BACKFILL, "1")
        # An Email created here with a second location in this delta is derived from all
        # of them below, like any other.
        return (created.keys() - moved) | self._refresh_emails(moved | flagged, moved)

    def _update_flags(self, mailbox_id: str, updates: Sequence[FlagUpdate]) -> set[str]:
        """New flags at known locations; returns the Emails there."""
        email_at: dict[int, str] = {}
        for chunk in _chunks(sorted({u.uid for u in updates})):
            email_at.update(self._conn.execute(
                "SELECT uid, email_id FROM locations WHERE mailbox_id = ? AND uid IN "
                f"({_marks(len(chunk))})",
                (mailbox_id, *chunk),
            ).fetchall())  # fmt: skip
        self._conn.executemany(
            "UPDATE locations SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
            [
                (_keywords_text(u.keywords), u.modseq, mailbox_id, u.uid)
                for u in updates
                if u.uid in email_at
            ],
        )
        return set(email_at.values())

    def mirror_locations(self, source_id: str, target_id: str, uids: Sequence[int]) -> set[str]:
        """Make ``target``'s locations at ``uids`` copies of ``source``'s (Email, flags,
        mod-sequence, date): how a folder that shows another's messages under the same
        UIDs (a Gmail label, a view of All Mail) follows it. Returns the Emails that
        changed."""
        uids = sorted(set(uids))
        self._note_threads_at(source_id, uids)
        before = self.locations(target_id, uids=uids)
        for chunk in _chunks(uids):
            self._conn.execute(
                "INSERT INTO locations(mailbox_id, uid, email_id, flags, modseq, received_at) "
                "SELECT ?, uid, email_id, flags, modseq, received_at FROM locations "
                f"WHERE mailbox_id = ? AND uid IN ({_marks(len(chunk))}) {_REPLACE_LOCATION}",
                (target_id, source_id, *chunk),
            )
        after = self.locations(target_id, uids=uids)
        moved = {
            location.email_id
            for uid, location in after.items()
            if uid not in before or before[uid].email_id != location.email_id
        }
        flagged = {
            location.email_id
            for uid, location in after.items()
            if uid in before and before[uid].keywords != location.keywords
        }
        return self._refresh_emails(moved | flagged, moved)

    def _add_locations(
        self, mailbox_id: str, added: Sequence[NewMessage]
    ) -> tuple[dict[str, NewMessage], set[str]]:
        """Record new locations; returns the Emails they created (id -> message) and the
        Emails they add a location to. What adding them one at a time would do, in a few
        statements for the whole batch: a store across a network pays for every read, so
        all that the batch needs is read at once (``_arrival_facts``)."""
        if not added:
            return {}, set()
        email_ids = [derive_id("e", message.email_key) for message in added]
        firsts = arrivals.first_of_each(zip(email_ids, added, strict=True))
        facts = self._arrival_facts(firsts)
        fresh = {e: m for e, m in firsts.items() if e not in facts.thread_of}
        placed = arrivals.plan_threads(fresh, facts.ref_threads, facts.subjects, facts.occupied)
        # Before any row changes: the threads of Emails already held, and the threads new
        # Emails join (a location of an Email not yet in emails counts for nothing).
        self._note_threads(
            {*facts.thread_of.values(), *(a.thread_id for a in placed if a.thread_existed)}
        )
        # A thread with no Email yet adds nothing to any count: nothing to note.
        self._touched_threads.update(a.thread_id for a in placed if not a.thread_existed)
        last_at_uid = {m.uid: (m, e) for m, e in zip(added, email_ids, strict=True)}
        self._insert_rows(
            "INSERT INTO locations(mailbox_id, uid, email_id, flags, modseq, received_at)",
            "(?, ?, ?, ?, ?, ?)",
            [
                (mailbox_id, m.uid, e, _keywords_text(m.keywords), m.modseq, m.received_at)
                for m, e in last_at_uid.values()
            ],
            _REPLACE_LOCATION,
        )
        self._insert_emails(placed, facts.top_entry)
        # Emails held before, and those at a second UID of this batch.
        twice = {e for e, n in collections.Counter(email_ids).items() if n > 1}
        return fresh, twice | (facts.thread_of.keys() & set(email_ids))

    def _arrival_facts(self, batch: dict[str, NewMessage]) -> arrivals.Facts:
        """What the store holds that a batch of arrivals depends on, every statement sent
        before any answer is read (one round trip where the store pipelines)."""
        ids = sorted(batch)
        own = sorted({arrivals.own_thread(e, m) for e, m in batch.items()})
        lookups = arrivals.lookup_ids(batch)
        top = self._conn.execute("SELECT COALESCE(MAX(entry), 0) FROM header_text")
        held = [self._conn.execute(
            f"SELECT id, thread_id FROM emails WHERE id IN ({_marks(len(c))})", tuple(c)
        ) for c in _chunks(ids)]  # fmt: skip
        occupied = [self._conn.execute(
            f"SELECT DISTINCT thread_id FROM emails WHERE thread_id IN ({_marks(len(c))})",
            tuple(c),
        ) for c in _chunks(own)]  # fmt: skip
        refs, ref_occupied = [], []
        for chunk in _chunks(lookups):
            marks = _marks(len(chunk))
            refs.append(self._conn.execute(
                "SELECT r.message_id, r.thread_id, t.base_subject FROM thread_refs r "
                f"LEFT JOIN threads t ON t.id = r.thread_id WHERE r.message_id IN ({marks})",
                tuple(chunk),
            ))  # fmt: skip
            ref_occupied.append(self._conn.execute(
                "SELECT DISTINCT e.thread_id FROM thread_refs r JOIN emails e "
                f"ON e.thread_id = r.thread_id WHERE r.message_id IN ({marks})",
                tuple(chunk),
            ))  # fmt: skip
        facts = arrivals.Facts(top_entry=int(top.fetchone()[0]))
        for rows in held:
            facts.thread_of.update(rows.fetchall())
        for rows in (*occupied, *ref_occupied):
            facts.occupied.update(row[0] for row in rows.fetchall())
        for rows in refs:
            for message_id, thread_id, subject in rows.fetchall():
                facts.ref_threads[message_id] = thread_id
                facts.subjects[thread_id] = subject
        return facts

    def _insert_emails(self, placed: Sequence[arrivals.Arrival], top_entry: int) -> None:
        """The rows of new Emails (and of threads they start), and their log entries."""
        self._insert_rows(
            "INSERT INTO thread_refs(message_id, thread_id)",
            "(?, ?)",
            [ref for arrival in placed for ref in arrival.new_refs],
            "ON CONFLICT DO NOTHING",
        )
        self._insert_rows(
            "INSERT INTO threads(id, base_subject)",
            "(?, ?)",
            [(a.thread_id, a.message.base_subject) for a in placed if not a.thread_existed],
            "ON CONFLICT(id) DO UPDATE SET base_subject = excluded.base_subject",
        )
        self._insert_rows(
            "INSERT INTO emails(id, thread_id, keywords, unread, size, received_at, summary, "
            "sort_from, sort_to, sort_subject, sent_at, has_attachment)",
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.email_id, a.thread_id, _keywords_text(a.message.keywords),
                    int(_is_unread(a.message.keywords)), a.message.size,
                    a.message.received_at, a.message.summary,
                    *_sort_values(a.message.sort_keys), _flag(a.message.has_attachment),
                )
                for a in placed
            ],
        )  # fmt: skip
        self._insert_rows(
            "INSERT INTO email_keywords(keyword, email_id)",
            "(?, ?)",
            [(keyword, a.email_id) for a in placed for keyword in a.message.keywords],
            "ON CONFLICT DO NOTHING",
        )
        self._insert_rows(
            # An upsert, not a REPLACE: a REPLACE's delete would not run the triggers that
            # keep the full-text index (schema, migration 8).
            "INSERT INTO header_text(email_id, entry, from_text, to_text, cc_text, bcc_text, "
            "subject_text, inexact)",
            "(?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (a.email_id, top_entry + n, *_header_values(a.message.header_text))
                for n, a in enumerate(placed, start=1)
            ],
            "ON CONFLICT(email_id) DO UPDATE SET from_text = excluded.from_text, "
            "to_text = excluded.to_text, cc_text = excluded.cc_text, "
            "bcc_text = excluded.bcc_text, subject_text = excluded.subject_text, "
            "inexact = excluded.inexact",
        )
        # In the order one-at-a-time adds would log them, one entry per object: a thread
        # both started and joined here is logged once, as created, at its last touch.
        entries: dict[tuple[str, str], tuple[bool, int]] = {}
        for arrival in placed:
            thread = (THREAD, arrival.thread_id)
            started = thread in entries and entries[thread][0]
            entries[thread] = (started or not arrival.thread_existed, self._next())
            entries[(EMAIL, arrival.email_id)] = (True, self._next())
        self._log_rows(
            created=[(t, i, v) for (t, i), (new, v) in entries.items() if new],
            updated=[(t, i, v) for (t, i), (new, v) in entries.items() if not new],
        )

    def _remove_locations(self, mailbox_id: str, uids: Sequence[int]) -> set[str]:
        touched: set[str] = set()
        for chunk in _chunks(uids):
            marks = _marks(len(chunk))
            rows = self._conn.execute(
                f"SELECT email_id FROM locations WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *chunk),
            ).fetchall()
            touched.update(row[0] for row in rows)
            self._conn.execute(
                f"DELETE FROM locations WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *chunk),
            )
        return touched

    def _refresh_emails(self, email_ids: Iterable[str], moved: set[str]) -> set[str]:
        """Re-derive Emails from their locations; log and return those that changed.

        An Email in ``moved`` had a location added or removed (mailboxIds may differ);
        otherwise only flags changed, and an Email whose keywords stay the same did not
        change. An Email left in no folder stays until ``purge_orphans``: a MOVE by another
        client shows as an expunge in one folder before the arrival in the other.
        """
        wanted = sorted(set(email_ids))
        flags: dict[str, set[str]] = {}
        before: dict[str, str] = {}
        for chunk in _chunks(wanted):
            marks = _marks(len(chunk))
            # Both sent before either is read (one round trip where the store pipelines).
            location_rows = self._conn.execute(
                f"SELECT email_id, flags FROM locations WHERE email_id IN ({marks})", tuple(chunk)
            )
            email_rows = self._conn.execute(
                f"SELECT id, keywords FROM emails WHERE id IN ({marks})", tuple(chunk)
            )
            for email_id, text in location_rows.fetchall():
                flags.setdefault(email_id, set()).update(text.split())
            before.update(email_rows.fetchall())
        changed: dict[str, set[str]] = {
            email_id: keywords
            for email_id, keywords in flags.items()
            if email_id in before
            and (email_id in moved or _keywords_text(keywords) != before[email_id])
        }
        self._conn.executemany(
            "UPDATE emails SET keywords = ?, unread = ? WHERE id = ?",
            [(_keywords_text(k), int(_is_unread(k)), e) for e, k in changed.items()],
        )
        old = {e: set(before[e].split()) for e in changed}
        self._drop_keywords([(k, e) for e, keys in changed.items() for k in old[e] - keys])
        self._insert_rows(
            "INSERT INTO email_keywords(keyword, email_id)",
            "(?, ?)",
            [(k, e) for e, keys in changed.items() for k in keys - old[e]],
        )
        self._log_rows(updated=[(EMAIL, email_id, self._next()) for email_id in changed])
        return set(changed)

    def _drop_keywords(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Delete (keyword, Email) rows. By the whole primary key: email_keywords has no
        index on email_id alone, and a DELETE by email_id would read the whole table
        (50,000 Emails: ~1.5 ms an Email)."""
        self._conn.executemany(
            "DELETE FROM email_keywords WHERE keyword = ? AND email_id = ?", pairs
        )

    def purge_orphans(self, candidates: Iterable[str]) -> set[str]:
        """Destroy those of ``candidates`` that are in no folder any more."""
        destroyed: set[str] = set()
        for email_id in set(candidates):
            if self._conn.execute(
                "SELECT 1 FROM locations WHERE email_id = ? LIMIT 1", (email_id,)
            ).fetchone():
                continue
            row = self._conn.execute(
                "SELECT thread_id, keywords FROM emails WHERE id = ?", (email_id,)
            ).fetchone()
            if row is None:
                continue
            self._conn.execute("DELETE FROM emails WHERE id = ?", (email_id,))
            self._drop_keywords([(keyword, email_id) for keyword in row[1].split()])
            self._conn.execute("DELETE FROM header_text WHERE email_id = ?", (email_id,))
            self.log_destroyed(EMAIL, email_id)
            self._thread_lost_email(row[0])
            destroyed.add(email_id)
        return destroyed

    def _thread_lost_email(self, thread_id: str) -> None:
        remaining = self._conn.execute(
            "SELECT 1 FROM emails WHERE thread_id = ? LIMIT 1", (thread_id,)
        ).fetchone()
        if remaining:
            self.log_updated(THREAD, thread_id)
        else:
            self._conn.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
            self.log_destroyed(THREAD, thread_id)

    # -- counts -------------------------------------------------------------------------

    def recount(self, mailbox_ids: Iterable[str] | None = ()) -> list[str]:
        """Count these folders afresh (every folder when None), and give folders not
        indexed yet the server's counts; log and return those whose counts moved. Mail
        changes keep counts right by themselves (see ``_settle_counts``): a whole recount
        is for changes to the folder list, where the trash may have moved.

        unreadThreads follows RFC 8621 §2's trash rule: mail only in the trash does not make
        another folder's thread unread, and mail outside the trash does not count in it.
        """
        if mailbox_ids is None:
            self._forget_shares()
        wanted = None if mailbox_ids is None else set(mailbox_ids)
        records = self.mailboxes()
        trash = [r.id for r in records if r.role == "trash"]
        counted = _server_counts(records)
        served = {record.id for record, _ in counted}
        for record in records:
            if record.id not in served and (wanted is None or record.id in wanted):
                counted.append((record, self._count(record.id, trash)))
        return self._store_counts(counted)

    @staticmethod
    def server_counts_due(records: Iterable[MailboxRecord]) -> bool:
        """Whether a folder not indexed yet has counts other than its STATUS gives it:
        what ``recount(())`` would write."""
        return any(counts != record.counts for record, counts in _server_counts(records))

    def _store_counts(self, counted: Sequence[tuple[MailboxRecord, Counts]]) -> list[str]:
        """Write the counts that moved, in one statement; returns those folders."""
        moved = [(record.id, counts) for record, counts in counted if counts != record.counts]
        self._conn.executemany(
            "UPDATE mailboxes SET total_emails = ?, unread_emails = ?, total_threads = ?, "
            "unread_threads = ? WHERE id = ?",
            [(*msgspec.structs.astuple(counts), mailbox_id) for mailbox_id, counts in moved],
        )
        self._log_rows(
            updated=[(MAILBOX, mailbox_id, self._next()) for mailbox_id, _ in moved],
            counts_only=True,
        )
        return [mailbox_id for mailbox_id, _ in moved]

    def _count(self, mailbox_id: str, trash: list[str]) -> Counts:
        total, unread, threads = self._conn.execute(
            "SELECT COUNT(DISTINCT e.id), COUNT(DISTINCT CASE WHEN e.unread = 1 THEN e.id END), "
            "COUNT(DISTINCT e.thread_id) FROM locations l JOIN emails e ON e.id = l.email_id "
            "WHERE l.mailbox_id = ?",
            (mailbox_id,),
        ).fetchone()
        side = "IN" if mailbox_id in trash else "NOT IN"
        unread_threads = self._conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT e.thread_id AS thread FROM locations l "
            "JOIN emails e ON e.id = l.email_id WHERE l.mailbox_id = ?) AS t "
            "WHERE EXISTS (SELECT 1 FROM emails u JOIN locations ul ON ul.email_id = u.id "
            f"WHERE u.thread_id = t.thread AND u.unread = 1 AND ul.mailbox_id {side} "
            "(SELECT id FROM mailboxes WHERE role = 'trash'))",
            (mailbox_id,),
        ).fetchone()[0]
        return Counts(total, unread, threads, unread_threads)

    # -- counts by difference -----------------------------------------------------------

    def _note_threads_at(self, mailbox_id: str, uids: Sequence[int]) -> None:
        threads: set[str] = set()
        for chunk in _chunks(list(uids)):
            rows = self._conn.execute(
                "SELECT e.thread_id FROM locations l JOIN emails e ON e.id = l.email_id "
                f"WHERE l.mailbox_id = ? AND l.uid IN ({_marks(len(chunk))})",
                (mailbox_id, *chunk),
            )
            threads.update(row[0] for row in rows)
        self._note_threads(threads)

    def _note_threads(self, thread_ids: Iterable[str]) -> None:
        """Note these threads' shares of the counts before this transaction changes them."""
        fresh = [t for t in thread_ids if t not in self._touched_threads]
        if fresh:
            self._touched_threads.update(fresh)
            self._shares_before.update(self._shares(fresh))

    def _shares(self, thread_ids: Sequence[str]) -> dict[tuple[str, str], tuple[int, ...]]:
        """(folder, thread) -> what the thread adds to the folder's four counts."""
        # Every statement is sent before any answer is read: one round trip, not three,
        # on a store that pipelines (bridge.store.postgres).
        trash_rows = self._conn.execute("SELECT id FROM mailboxes WHERE role = 'trash'")
        answers = []
        for chunk in _chunks(list(thread_ids)):
            marks = _marks(len(chunk))
            unread_rows = self._conn.execute(
                "SELECT DISTINCT e.thread_id, l.mailbox_id FROM emails e JOIN locations l "
                f"ON l.email_id = e.id WHERE e.unread = 1 AND e.thread_id IN ({marks})",
                tuple(chunk),
            )
            count_rows = self._conn.execute(
                "SELECT l.mailbox_id, e.thread_id, COUNT(DISTINCT e.id), "
                "COUNT(DISTINCT CASE WHEN e.unread = 1 THEN e.id END) FROM emails e "
                f"JOIN locations l ON l.email_id = e.id WHERE e.thread_id IN ({marks}) "
                "GROUP BY l.mailbox_id, e.thread_id",
                tuple(chunk),
            )
            answers.append((unread_rows, count_rows))
        trash = {row[0] for row in trash_rows.fetchall()}
        shares: dict[tuple[str, str], tuple[int, ...]] = {}
        for unread_rows, count_rows in answers:
            unread_in: dict[str, set[bool]] = {}
            for thread_id, mailbox_id in unread_rows.fetchall():
                unread_in.setdefault(thread_id, set()).add(mailbox_id in trash)
            for mailbox_id, thread_id, emails, unread in count_rows.fetchall():
                unread_thread = (mailbox_id in trash) in unread_in.get(thread_id, set())
                shares[(mailbox_id, thread_id)] = (emails, unread, 1, int(unread_thread))
        return shares

    def _settle_counts(self) -> None:
        if not self._touched_threads and not self._newly_indexed:
            return
        after = self._shares(sorted(self._touched_threads))
        moves: dict[str, list[int]] = {}
        for shares, sign in ((after, 1), (self._shares_before, -1)):
            for (mailbox_id, _), share in shares.items():
                total = moves.setdefault(mailbox_id, [0, 0, 0, 0])
                for i, value in enumerate(share):
                    total[i] += sign * value
        newly_indexed = self._newly_indexed
        self._forget_shares()
        records = {r.id: r for r in self.mailboxes()}
        trash = [r.id for r in records.values() if r.role == "trash"]
        counted = [
            (records[mailbox_id], self._count(mailbox_id, trash))
            for mailbox_id in newly_indexed
            if mailbox_id in records
        ]
        for mailbox_id, move in moves.items():
            record = records.get(mailbox_id)
            if record is None or not record.indexed or mailbox_id in newly_indexed:
                continue  # not indexed: its counts are the server's
            old = msgspec.structs.astuple(record.counts)
            counts = Counts(*(max(0, o + m) for o, m in zip(old, move, strict=True)))
            counted.append((record, counts))
        self._store_counts(counted)

    def _forget_shares(self) -> None:
        self._shares_before = {}
        self._touched_threads = set()
        self._newly_indexed = set()

    # -- reads for the mail layer -------------------------------------------------------

    def emails(self, ids: Sequence[str]) -> dict[str, EmailRecord]:
        found: dict[str, EmailRecord] = {}
        with self._lock:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                marks = _marks(len(chunk))
                boxes: dict[str, list[str]] = {}
                with self._conn.together():
                    located = self._conn.execute(
                        f"SELECT email_id, mailbox_id FROM locations WHERE email_id IN ({marks})",
                        tuple(chunk),
                    )
                    rows = self._conn.execute(
                        "SELECT id, thread_id, keywords, size, received_at, summary "
                        f"FROM emails WHERE id IN ({marks})",
                        tuple(chunk),
                    )
                    for email_id, mailbox_id in located.fetchall():
                        boxes.setdefault(email_id, []).append(mailbox_id)
                    rows = rows.fetchall()
                for email_id, thread_id, keywords, size, received_at, summary in rows:
                    if email_id not in boxes:
                        continue  # in no folder: a MOVE half seen, or about to be purged
                    found[email_id] = EmailRecord(
                        email_id, thread_id, frozenset(keywords.split()), size, received_at,
                        tuple(sorted(set(boxes.get(email_id, ())))), summary,
                    )  # fmt: skip
        return found

    def message_refs(self, ids: Sequence[str]) -> dict[str, MessageRef]:
        """One place upstream to read each Email from."""
        refs: dict[str, MessageRef] = {}
        with self._lock:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                # Each Email's lowest UID (a copy in two folders is rare: few rows more).
                rows = self._conn.execute(
                    "SELECT email_id, mailbox_id, uid FROM locations "
                    f"WHERE email_id IN ({_marks(len(chunk))}) ORDER BY uid DESC, mailbox_id DESC",
                    tuple(chunk),
                )
                for email_id, mailbox_id, uid in rows:
                    refs[email_id] = MessageRef(mailbox_id, uid)
        return refs

    def set_summaries(self, summaries: dict[str, bytes]) -> None:
        """Parsed, immutable facts of messages: no change to log."""
        with self._lock:
            self._conn.executemany(
                "UPDATE emails SET summary = ? WHERE id = ?",
                [(summary, email_id) for email_id, summary in summaries.items()],
            )

    def set_sort_keys(self, keys: dict[str, SortKeys]) -> None:
        """Made from the messages' immutable headers: no change to log."""
        with self._lock:
            self._conn.executemany(
                # Keys made from the header fields alone do not say hasAttachment: kept.
                "UPDATE emails SET sort_from = ?, sort_to = ?, sort_subject = ?, sent_at = ?, "
                "has_attachment = COALESCE(?, has_attachment) WHERE id = ?",
                [
                    (*_sort_values(k), _flag(k.has_attachment), email_id)
                    for email_id, k in keys.items()
                ],
            )

    def sort_keys(self) -> dict[str, SortKeys]:
        """The sort keys of every Email that has them made."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, sort_from, sort_to, sort_subject, sent_at, has_attachment "
                "FROM emails WHERE sort_subject IS NOT NULL"
            ).fetchall()
        return {
            row[0]: SortKeys(*row[1:5], has_attachment=None if row[5] is None else bool(row[5]))
            for row in rows
        }

    def uids_to_emails(self, mailbox_id: str, uids: Iterable[int]) -> set[str]:
        found: set[str] = set()
        with self._lock:
            for chunk in _chunks(list(uids)):
                rows = self._conn.execute(
                    "SELECT email_id FROM locations WHERE mailbox_id = ? "
                    f"AND uid IN ({_marks(len(chunk))})",
                    (mailbox_id, *chunk),
                )
                found.update(row[0] for row in rows)
        return found

    def thread_emails(self, thread_ids: Sequence[str]) -> dict[str, list[str]]:
        """Thread id -> its Email ids, oldest first (RFC 8621 §3), ties by id."""
        threads: dict[str, list[str]] = {}
        with self._lock:
            for chunk in _chunks(list(dict.fromkeys(thread_ids))):
                rows = self._conn.execute(
                    "SELECT thread_id, id FROM emails "
                    f"WHERE thread_id IN ({_marks(len(chunk))}) ORDER BY received_at, id",
                    tuple(chunk),
                )
                for thread_id, email_id in rows:
                    threads.setdefault(thread_id, []).append(email_id)
        return threads

    def mailbox_page(
        self, mailbox_id: str, order: str, ascending: bool, offset: int, limit: int | None
    ) -> list[str]:
        """A folder's Emails by receivedAt or size, straight from the index."""
        column = {"receivedAt": "l.received_at", "size": "e.size"}[order]
        rows = "locations l"
        if order == "size":
            rows += " JOIN emails e ON e.id = l.email_id"
        direction = "ASC" if ascending else "DESC"
        # The same Email twice in one folder counts once: keep its lowest UID. The NOT
        # EXISTS probes only the rows the index walk reaches, so a page stays cheap.
        query = (
            f"SELECT l.email_id FROM {rows} "
            "WHERE l.mailbox_id = ? AND NOT EXISTS (SELECT 1 FROM locations d "
            "WHERE d.email_id = l.email_id AND d.mailbox_id = l.mailbox_id AND d.uid < l.uid) "
            f"ORDER BY {column} {direction}, l.email_id {direction} LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._conn.execute(
                query, (mailbox_id, NO_LIMIT if limit is None else limit, offset)
            ).fetchall()
        return [row[0] for row in rows]

    def email_facts(self) -> list[tuple[str, str, str, int, int]]:
        """(id, thread id, keywords, size, receivedAt) of every Email, for queries."""
        with self._lock:
            return self._conn.execute(
                "SELECT id, thread_id, keywords, size, received_at FROM emails"
            ).fetchall()

    def memberships(self) -> list[tuple[str, str, int]]:
        """(Email id, mailbox id, uid) of every location."""
        with self._lock:
            return self._conn.execute("SELECT email_id, mailbox_id, uid FROM locations").fetchall()

    # -- Email/query (bridge.store.email_query) -----------------------------------------

    def query_page(
        self,
        where: Clause,
        order: Sequence[OrderKey],
        *,
        collapse: bool = False,
        ranks: dict[str, int] | None = None,
        offset: int = 0,
        limit: int | None = None,
        mailbox_id: str | None = None,
    ) -> list[str]:
        """The matching Emails' ids in ``order``, from ``offset``, at most ``limit``;
        ``mailbox_id``: ``where`` holds only Emails of that folder (it has inMailbox)."""
        with self._lock:
            sql, params = email_query.select_ids(
                where, order, collapse=collapse, ranks=ranks, offset=offset, limit=limit,
                scope=self._scope(mailbox_id),
            )  # fmt: skip
            return [row[0] for row in self._conn.execute(sql, params)]

    def query_count(
        self, where: Clause, *, collapse: bool = False, mailbox_id: str | None = None
    ) -> int:
        with self._lock:
            sql, params = email_query.count(where, collapse=collapse, scope=self._scope(mailbox_id))
            return int(self._conn.execute(sql, params).fetchone()[0])

    def _scope(self, mailbox_id: str | None) -> email_query.Scope | None:
        if mailbox_id is None:
            return None
        known = self._duplicates.get(mailbox_id)
        if known is not None and known[0] == self._current_counter():
            return email_query.Scope(mailbox_id, known[1])
        row = self._conn.execute(
            "SELECT total_emails FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        # The folder's count is of its distinct Emails: fewer than its rows, a duplicate.
        # Known until the next change (every change moves the counter).
        duplicates = row is None or row[0] != self.location_count(mailbox_id)
        self._duplicates[mailbox_id] = (self._counter, duplicates)
        return email_query.Scope(mailbox_id, duplicates)

    def query_locations(self, where: Clause) -> dict[str, list[int]]:
        """Folder -> UIDs of the copies of the matching Emails."""
        sql, params = email_query.locations_of(where)
        found: dict[str, list[int]] = {}
        with self._lock:
            for mailbox_id, uid in self._conn.execute(sql, params):
                found.setdefault(mailbox_id, []).append(uid)
        return found

    def query_without_sort_keys(self, where: Clause) -> list[str]:
        """The matching Emails whose header sort keys are not made yet."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT e.id FROM emails e WHERE e.sort_subject IS NULL AND ({where.sql})",
                where.params,
            ).fetchall()
        return [row[0] for row in rows]

    def share(self, test: Clause) -> float:
        """The share of the cached Emails that meet ``test``, a condition on their own
        row (``e``), counted in the column's index (bridge.store.email_query.shaped)."""
        with self._lock:
            found = self._conn.execute(f"SELECT COUNT(*) FROM emails e WHERE {test.sql}",
                                       test.params).fetchone()[0]  # fmt: skip
            total = self._conn.execute("SELECT COUNT(*) FROM emails").fetchone()[0]
        return found / total if total else 0.0

    def attachment_unknown(self) -> bool:
        """Whether some Email has no hasAttachment yet (no summary made)."""
        with self._lock:
            return bool(self._conn.execute(
                "SELECT 1 FROM emails WHERE has_attachment IS NULL LIMIT 1"
            ).fetchone())  # fmt: skip

    def header_words_match(self, field: str, words: Sequence[str]) -> Clause | None:
        """The full-text index's entries for ``words`` in ``field``: SQLite's FTS5 table
        (bridge.store.email_query.header_words_match)."""
        return email_query.header_words_match(field, words)

    def header_share(self, field: str, words: Sequence[str]) -> float | None:
        """The share of the cached Emails whose ``field``, where exact, holds ``words``, as
        the full-text index alone counts them (no row read); None when no word is long
        enough for it (bridge.store.email_query.header_words_match)."""
        match = self.header_words_match(field, words)
        if match is None:
            return None
        with self._lock:
            found = self._conn.execute(f"SELECT COUNT(*) FROM ({match.sql}) AS m", match.params)
            hits = found.fetchone()[0]
            total = self._conn.execute("SELECT COUNT(*) FROM header_text").fetchone()[0]
        return hits / total if total else 0.0

    def without_header_text(
        self, mailbox_id: str, limit: int, below: int | None = None
    ) -> list[int]:
        """UIDs in a folder (below ``below``, newest first) whose Email the header index
        does not know yet."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT l.uid FROM locations l JOIN header_text h ON h.email_id = l.email_id "
                "WHERE l.mailbox_id = ? AND l.uid < ? AND h.inexact IS NULL "
                "ORDER BY l.uid DESC LIMIT ?",
                (mailbox_id, below if below is not None else 2**32, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def header_backfill_due(self) -> bool:
        """Whether Emails cached without their header index (before it existed, or on a
        first page) still wait for their fields."""
        with self._lock:
            memo = self._memo()
            if memo is None:
                return self._meta(HEADER_BACKFILL) is not None
            if not memo.read:
                self._remember_meta(memo, self._read_meta(_REQUEST_KEYS))
            return HEADER_BACKFILL in memo.meta

    def header_backfill_done(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM meta WHERE key = ?", (HEADER_BACKFILL,))

    def set_header_texts(self, mailbox_id: str, texts: dict[int, HeaderText]) -> None:
        """The header index's keys of messages by UID: immutable, no change to log."""
        with self._lock:
            self._conn.executemany(
                "UPDATE header_text SET from_text = ?, to_text = ?, cc_text = ?, bcc_text = ?, "
                "subject_text = ?, inexact = ? WHERE email_id = "
                "(SELECT email_id FROM locations WHERE mailbox_id = ? AND uid = ?)",
                [(*_header_values(text), mailbox_id, uid) for uid, text in texts.items()],
            )
