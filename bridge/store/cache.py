"""The per-user cache: folder sync state, the uid -> Email map, the change log, and the
reads that Email/get, Email/query and the header index make of it (SQLite; the PostgreSQL
store, bridge.store.postgres, runs the same statements).

``Cache`` is the top floor of four below it, each a class adding one part of what the cache
holds: bridge.store.journal (the connection, transactions, the change log and states),
folders, folder_counts (the counts each transaction keeps right) and messages (where each
Email is). Here: opening the file, and the reads of the mail layer.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from bridge.store import email_query, health
from bridge.store.email_query import NO_LIMIT, Clause, OrderKey
from bridge.store.journal import HEADER_BACKFILL, IN_USE, in_chunks, placeholders
from bridge.store.messages import Messages
from bridge.store.records import EmailRecord, MessageRef, SortKeys
from bridge.store.schema import create_empty, migrate, table_names

# SQLite checkpoints the write-ahead log into the file every 1,000 pages by default and
# never shrinks it (a 4.1 MB log beside a 98 KB cache was seen): here every 256 pages
# (1 MiB), and the log is cut back to 1 MiB when it starts over after a checkpoint.
JOURNAL_SIZE_LIMIT = 1024 * 1024
CHECKPOINT_PAGES = 256
# Milliseconds the checkpoint at open waits for other processes' readers.
OPEN_CHECKPOINT_WAIT_MS = 100

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
            # Another process reading the cache (bridge serve --workers N) holds the log in
            # use, and TRUNCATE would wait out the busy timeout for a moment it does not:
            # briefly then, and the mark reaches the file with that process's checkpoints.
            conn.execute(f"PRAGMA busy_timeout = {OPEN_CHECKPOINT_WAIT_MS}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute(f"PRAGMA busy_timeout = {health.BUSY_TIMEOUT_MS}")
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


class Cache(Messages):
    """One user's cache. Thread-safe (see ``Journal``)."""

    def _attach(self, conn: sqlite3.Connection) -> None:
        # Folder -> (counter, its Email/query scope: whether it holds an Email twice, and
        # its count of Emails).
        self._scopes: dict[str, tuple[int, email_query.Scope]] = {}
        super()._attach(conn)

    @classmethod
    def open(cls, path: Path | str, *, shared: bool = False) -> Cache:
        """The cache at ``path``; one that is damaged is moved aside and built anew."""
        if str(path) == ":memory:":
            conn = health.connect(":memory:")
            _tune(conn)
            return cls(conn)
        return cls(_open_healthy(Path(path)), Path(path), shared=shared)

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

    def emails(self, ids: Sequence[str]) -> dict[str, EmailRecord]:
        found: dict[str, EmailRecord] = {}
        with self._lock:
            for chunk in in_chunks(list(dict.fromkeys(ids))):
                marks = placeholders(len(chunk))
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
            for chunk in in_chunks(list(dict.fromkeys(ids))):
                # Each Email's lowest UID (a copy in two folders is rare: few rows more).
                rows = self._conn.execute(
                    "SELECT email_id, mailbox_id, uid FROM locations WHERE email_id IN "
                    f"({placeholders(len(chunk))}) ORDER BY uid DESC, mailbox_id DESC",
                    tuple(chunk),
                )
                for email_id, mailbox_id, uid in rows:
                    refs[email_id] = MessageRef(mailbox_id, uid)
        return refs

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
            for chunk in in_chunks(list(uids)):
                rows = self._conn.execute(
                    "SELECT email_id FROM locations WHERE mailbox_id = ? "
                    f"AND uid IN ({placeholders(len(chunk))})",
                    (mailbox_id, *chunk),
                )
                found.update(row[0] for row in rows)
        return found

    def thread_emails(self, thread_ids: Sequence[str]) -> dict[str, list[str]]:
        """Thread id -> its Email ids, oldest first (RFC 8621 §3), ties by id."""
        threads: dict[str, list[str]] = {}
        with self._lock:
            for chunk in in_chunks(list(dict.fromkeys(thread_ids))):
                rows = self._conn.execute(
                    "SELECT thread_id, id FROM emails "
                    f"WHERE thread_id IN ({placeholders(len(chunk))}) ORDER BY received_at, id",
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
            scope = self._scope(mailbox_id)
            unmet = email_query.count_unmet(where, collapse=collapse, scope=scope)
            if unmet is not None:
                total, sql, params = unmet
                return total - int(self._conn.execute(sql, params).fetchone()[0])
            sql, params = email_query.count(where, collapse=collapse, scope=scope)
            return int(self._conn.execute(sql, params).fetchone()[0])

    def _scope(self, mailbox_id: str | None) -> email_query.Scope | None:
        if mailbox_id is None:
            return None
        known = self._scopes.get(mailbox_id)
        if known is not None and known[0] == self._current_counter():
            return known[1]
        row = self._conn.execute(
            "SELECT total_emails FROM mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        # The folder's count is of its distinct Emails: fewer than its rows, a duplicate.
        # Known until the next change (every change moves the counter).
        duplicates = row is None or row[0] != self.location_count(mailbox_id)
        scope = email_query.Scope(mailbox_id, duplicates, None if row is None else int(row[0]))
        self._scopes[mailbox_id] = (self._counter, scope)
        return scope

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

    def header_holders(
        self, field: str, bit: int, words: Sequence[str], at_most: int
    ) -> list[str] | None:
        """The Emails whose exact ``field`` (``bit`` clear) holds ``words``, by the full-text
        index (bridge.store.email_query.header_holders); None if there are more than
        ``at_most``."""
        sql, params = email_query.header_holders(field, bit, words, index=self.header_words_match)
        with self._lock:
            rows = self._conn.execute(f"{sql} LIMIT ?", (*params, at_most + 1)).fetchall()
        return [row[0] for row in rows] if len(rows) <= at_most else None

    def header_common(self, field: str, words: Sequence[str]) -> bool | None:
        """Whether COMMON_SHARE or more of the Emails have ``field`` holding ``words``,
        judged on the newest SHARE_SAMPLE entries of the header index; None when no word
        is long enough for the full-text index (bridge.store.email_query.header_words_match).
        A sample costs the same at any size, where counting the index's matches up to that
        share read 25,000 entries for a word every Email of 50,000 has (4.4 ms)."""
        if self.header_words_match(field, words) is None:
            return None
        column = email_query.HEADER_COLUMNS[field]
        holds = Clause(" AND ".join(f"instr({column}, ?) > 0" for _ in words), tuple(words))
        newest = f"SELECT {column} FROM header_text ORDER BY entry DESC"
        return self._sampled_share(newest, holds) >= email_query.COMMON_SHARE

    def _sampled_share(self, newest: str, test: Clause) -> float:
        """The share of the first SHARE_SAMPLE rows of ``newest`` (a SELECT with its ORDER
        BY) that meet ``test``; 0 when there are none."""
        with self._lock:
            sampled, hits = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {test.sql} THEN 1 ELSE 0 END), 0) "
                f"FROM ({newest} LIMIT ?) AS e",
                (*test.params, email_query.SHARE_SAMPLE),
            ).fetchone()
        return hits / sampled if sampled else 0.0

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
            return self._request_meta(HEADER_BACKFILL) is not None

    def header_backfill_done(self) -> None:
        with self._lock:
            self._delete_meta(HEADER_BACKFILL)
