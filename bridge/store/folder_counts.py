"""The counts of each folder (totalEmails, unreadEmails, totalThreads, unreadThreads),
kept by difference: before a transaction first touches a thread, the thread's share of
every folder's counts is noted; at commit the share is taken again and each folder's
counts move by the difference."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import msgspec

from bridge.store.folders import Folders
from bridge.store.journal import MAILBOX, in_chunks, placeholders
from bridge.store.records import (
    Counts,
    MailboxRecord,
)


def _server_counts(records: Iterable[MailboxRecord]) -> list[tuple[MailboxRecord, Counts]]:
    """Folders not indexed yet, with the counts their STATUS gives: each message counts as
    an Email and as its own thread."""
    counted = []
    for record in records:
        if record.selectable and not record.indexed and record.status is not None:
            messages, unseen = record.status.messages, record.status.unseen or 0
            counted.append((record, Counts(messages, unseen, messages, unseen)))
    return counted


class FolderCounts(Folders):
    """Folders with their counts kept right by every transaction."""

    def _attach(self, conn: sqlite3.Connection) -> None:
        self._shares_before: dict[tuple[str, str], tuple[int, int, int, int]] = {}
        self._touched_threads: set[str] = set()
        super()._attach(conn)

    def _before_commit(self) -> None:
        self._settle_counts()

    def _after_rollback(self) -> None:
        self._forget_shares()

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

    def _note_threads(self, thread_ids: Iterable[str]) -> None:
        """Note these threads' shares of the counts before this transaction changes them."""
        fresh = [t for t in thread_ids if t not in self._touched_threads]
        if fresh:
            self._touched_threads.update(fresh)
            self._shares_before.update(self._shares(fresh))

    def _shares(self, thread_ids: Sequence[str]) -> dict[tuple[str, str], tuple[int, ...]]:
        """(folder, thread) -> what the thread adds to the folder's four counts."""
        # Both statements are sent before either answer is read: one round trip, not two,
        # on a store that pipelines (bridge.store.postgres).
        trash_rows = self._conn.execute("SELECT id FROM mailboxes WHERE role = 'trash'")
        answers = [
            self._conn.execute(
                "SELECT l.mailbox_id, e.thread_id, COUNT(DISTINCT e.id), "
                "COUNT(DISTINCT CASE WHEN e.unread = 1 THEN e.id END) FROM emails e "
                "JOIN locations l ON l.email_id = e.id WHERE e.thread_id IN "
                f"({placeholders(len(chunk))}) GROUP BY l.mailbox_id, e.thread_id",
                tuple(chunk),
            )
            for chunk in in_chunks(list(thread_ids))
        ]
        trash = {row[0] for row in trash_rows.fetchall()}
        counted = [row for rows in answers for row in rows.fetchall()]
        # Which sides of the trash each thread has unread mail on (RFC 8621 §2).
        unread_in: dict[str, set[bool]] = {}
        for mailbox_id, thread_id, _, unread in counted:
            if unread:
                unread_in.setdefault(thread_id, set()).add(mailbox_id in trash)
        shares: dict[tuple[str, str], tuple[int, ...]] = {}
        for mailbox_id, thread_id, emails, unread in counted:
            unread_thread = (mailbox_id in trash) in unread_in.get(thread_id, set())
            shares[(mailbox_id, thread_id)] = (emails, unread, 1, int(unread_thread))
        return shares

    def _settle_counts(self) -> None:
        if not self._touched_threads and not self._first_syncs:
            return
        # Sent before the first syncs' answers are read: one round trip for both.
        after = self._shares(sorted(self._touched_threads)) if self._touched_threads else {}
        newly_indexed = self._newly_indexed()
        if not self._touched_threads and not newly_indexed:
            self._forget_shares()
            return
        moves: dict[str, list[int]] = {}
        for shares, sign in ((after, 1), (self._shares_before, -1)):
            for (mailbox_id, _), share in shares.items():
                total = moves.setdefault(mailbox_id, [0, 0, 0, 0])
                for i, value in enumerate(share):
                    total[i] += sign * value
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
        self._first_syncs = []
