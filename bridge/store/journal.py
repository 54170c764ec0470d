"""The ground floor of a user's cache: its connection, transactions, and the change log.

Every mutation runs inside ``transaction()`` and logs what it changed with a fresh value of
the cache's own counter, so /changes is a range scan over ``changelog``. States handed to
clients carry the cache's epoch: a rebuilt cache starts a new epoch, and old states then
answer cannotCalculateChanges instead of a wrong delta. The floors above it
(bridge.store.folders, folder_counts, messages, cache) add what the cache holds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from bridge import inline
from bridge.store.ids import random_token
from bridge.store.records import ChangeSet, Committed, MailboxRecord
from bridge.store.schema import migrate

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

CHUNK = 500
# Parameters in one multi-row statement: under SQLite's oldest limit (999).
MAX_PARAMS = 990
# In meta while Emails cached before the header index (migration 6) wait for their fields.
HEADER_BACKFILL = "header_backfill"
# Set to "1" (and checkpointed into the main file) while a process has the cache open, "0"
# at a clean close: "1" with no write-ahead log beside the file means the log of an unclean
# stop was lost, with the last transactions in it, and with them states already handed out.
IN_USE = "in_use"


class RequestMemo:
    """What a request read of ``meta`` (the states, whether the header index waits for a
    backfill) and of the folders, and when: the commits made here and the change counter
    at the time (``Cache.one_request``)."""

    def __init__(self) -> None:
        self.at = (-1, -1)
        self.meta: dict[str, str] = {}
        self.read: frozenset[str] = frozenset()  # the keys looked up, found or not
        self.mailboxes: list[MailboxRecord] | None = None


# What a request's first read of ``meta`` asks for (``Cache.one_request``): the states, and
# what Foo/changes checks a state against (the counter, on a shared store, and the horizons).
REQUEST_KEYS = [
    *(f"state:{name}" for name in (*LOGGED_TYPES, EMAIL_DELIVERY)),
    *(f"horizon:{name}" for name in LOGGED_TYPES),
    "counter",
    HEADER_BACKFILL,
]


def in_chunks(items: Sequence[str] | Sequence[int]) -> Iterator[Sequence[str] | Sequence[int]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def placeholders(count: int) -> str:
    # "IN ()" is SQLite's alone; "IN (NULL)" holds for no value in both databases.
    return ",".join("?" * count) or "NULL"


class Journal:
    """The connection behind a re-entrant lock (which work inline on the event loop takes
    only when it is free: bridge.inline), transactions, the change counter and log, the
    states, and the objects kept whole."""

    # The change counter, and its read at a transaction's start not looked at yet.
    _counter_value = 0
    _counter_read: Any = None
    # Whether statements sent are answered later, together (PostgreSQL): a read sent
    # early then costs no wait of its own.
    pipelines = False

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
        # What the outermost transaction wrote to ``meta`` (None: deleted), for the
        # committing request's memo (``_carry``); emptied as each one begins.
        self._meta_written: dict[str, str | None] = {}
        # Per thread: what the JMAP request it runs has read (``one_request``).
        self._request = threading.local()
        self._commits = 0  # transactions committed here
        self._upgrade(conn)
        opened = dict(self._read_meta(["counter", "epoch"]).fetchall())
        self._counter = int(opened.get("counter") or 0)
        self.epoch = opened.get("epoch") or self._init_epoch()

    def _current_counter(self) -> int:
        """The counter as committed, when other processes may have moved it; inside this
        thread's transaction, as it stands here."""
        if self.shared:
            with self._lock:
                if self._depth == 0:
                    self._counter = int(self._request_meta("counter") or 0)
        return self._counter

    @property
    def damaged(self) -> bool:
        """Whether a statement met a damaged page: the cache must be rebuilt."""
        return getattr(self._conn, "damage", None) is not None

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
                carried = self._current_memo()
                self._meta_written = {}
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
                    self._before_commit()
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._conn.execute("ROLLBACK")
                    if self._counter_read is not None:
                        self._counter_read = None  # never read: the value before stands
                    else:
                        self._counter = self._tx_start
                    self._pending_states.clear()
                    self._after_rollback()
                raise
            self._depth -= 1
            if outermost:
                if self._counter_read is None and self._counter != self._tx_start:
                    self._set_meta("counter", str(self._counter))
                committed.logged = frozenset(self._pending_states)
                if self._pending_states:
                    states = [(f"state:{t}", str(v)) for t, v in self._pending_states.items()]
                    self._conn.executemany(
                        "INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        states,
                    )
                    self._meta_written.update(states)
                    self._pending_states.clear()
                late = self._read_for_memo() if carried is not None else None
                self._conn.execute("COMMIT")
                self._commits += 1
                written, self._meta_written = self._meta_written, {}
                if carried is not None:
                    self._carry(carried, written, late)

    def _before_commit(self) -> None:
        """What the outermost transaction settles before it commits (the floors above: the
        folder counts)."""

    def _read_for_memo(self) -> Any:
        """A read sent last in a transaction of a request, whose answer ``_carry`` gives
        the request's memo after the commit (the floors above: the folders, on a store that
        pipelines): the read the request would make next, without a round trip of its own."""
        return None

    def _carry(self, memo: RequestMemo, written: dict[str, str | None], late: Any) -> None:
        """Keep the request's memo across its own commit: what it read of ``meta``, with
        what the transaction wrote there, rather than a read of it all again (on a store
        across a network, a round trip after each commit). Only from a memo current when
        the transaction began: another writer's change since is then the transaction's to
        have seen, under its lock. A key another process wrote may be older in the memo
        than in the store, as it would be had the request read it before that write."""
        for key, value in written.items():
            if value is None:
                memo.meta.pop(key, None)
            else:
                memo.meta[key] = value
        memo.mailboxes = None
        memo.at = (self._commits, self._counter)

    def _after_rollback(self) -> None:
        """Forget what the outermost transaction noted before it was rolled back."""

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

    def _request_meta(self, key: str) -> str | None:
        """A value of ``meta`` as this request's read of it found it (``one_request``),
        read with the states; outside a request, or in a transaction, read now."""
        memo = self._memo()
        if memo is None:
            return self._meta(key)
        return self._memo_meta(memo, [key]).get(key)

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        self._meta_written[key] = value

    def _delete_meta(self, key: str) -> None:
        self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        self._meta_written[key] = None

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
            return self._states_of(self._memo_meta(memo, keys), type_names)

    def _read_meta(self, keys: Sequence[str]) -> Any:
        keys = list(dict.fromkeys(keys))
        return self._conn.execute(
            f"SELECT key, value FROM meta WHERE key IN ({placeholders(len(keys))})", keys
        )

    def _memo_meta(self, memo: RequestMemo, keys: Sequence[str]) -> dict[str, str]:
        """``meta`` as the request read it, read first (with REQUEST_KEYS) if ``keys`` were
        not among what it read."""
        if not memo.read >= set(keys):
            self._remember_meta(memo, self._read_meta([*REQUEST_KEYS, *keys]), keys)
        return memo.meta

    @staticmethod
    def _remember_meta(memo: RequestMemo, rows: Any, keys: Sequence[str] = ()) -> None:
        memo.meta = dict(rows.fetchall())
        memo.read = frozenset((*REQUEST_KEYS, *keys))

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
        self._request.memo = RequestMemo()
        try:
            yield
        finally:
            self._request.memo = None

    def _memo(self) -> RequestMemo | None:
        """This thread's request memo, emptied if a commit here made it old; None outside
        a request or inside a transaction (whose own changes are not committed yet)."""
        memo: RequestMemo | None = getattr(self._request, "memo", None)
        if memo is None or self._depth > 0:
            return None
        now = (self._commits, self._counter)
        if memo.at != now:
            memo.at, memo.meta, memo.read, memo.mailboxes = now, {}, frozenset(), None
        return memo

    def _current_memo(self) -> RequestMemo | None:
        """This thread's request memo, if it has read ``meta`` and nothing committed here
        since (a transaction about to begin may carry it over its commit)."""
        memo: RequestMemo | None = getattr(self._request, "memo", None)
        if memo is None or not memo.read or memo.at != (self._commits, self._counter):
            return None
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
            return int(self._request_meta(f"horizon:{type_name}") or 0)

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
        for statement, values in self._bulk_inserts(head, row, rows):
            self._conn.execute(f"{statement} {tail}", [*values, *tail_params])

    def _bulk_inserts(
        self, head: str, row: str, rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, list[Any]]]:
        """The statements (less their tail) that insert ``rows``, with their values."""
        per_statement = max(1, MAX_PARAMS // len(rows[0]))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = [value for one_row in chunk for value in one_row]
            yield f"{head} VALUES {', '.join([row] * len(chunk))}", values

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
            query += f" AND id IN ({placeholders(len(ids))})"
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
