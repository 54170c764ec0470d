"""The cache's folders: their records, names and roles, and the state each was synced to."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from bridge.store.ids import derive_id
from bridge.store.journal import MAILBOX, REQUEST_KEYS, Journal, RequestMemo, placeholders
from bridge.store.records import (
    Counts,
    FolderState,
    MailboxRecord,
)

_MAILBOX_COLUMNS = (
    "id, upstream_key, name, delimiter, role, subscribed, selectable, sort_order, rights, "
    "status_uidvalidity, status_uidnext, status_messages, status_unseen, status_modseq, "
    "synced_uidvalidity, synced_uidnext, synced_messages, synced_unseen, synced_modseq, "
    "total_emails, unread_emails, total_threads, unread_threads, index_uidvalidity, "
    "special_use"
)


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


class Folders(Journal):
    """The folder records (a request's reads of them share one: ``Journal.one_request``)."""

    def _attach(self, conn: sqlite3.Connection) -> None:
        # Folders synced in this transaction, with the answer of the statement that wrote
        # their synced state had they none (read at commit: bridge.store.folder_counts).
        self._first_syncs: list[tuple[str, Any]] = []
        super()._attach(conn)

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
                        meta = self._read_meta(REQUEST_KEYS)
                        memo.mailboxes = self._read_mailboxes()
                        self._remember_meta(memo, meta)
            return list(memo.mailboxes)

    def _read_for_memo(self) -> Any:
        # A request reads the folders again after most of its commits (its sync's counts,
        # Mailbox/get, a FETCH by folder name): as the commit leaves them, read with it.
        if not self.pipelines:
            return None
        return self._conn.execute(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes")

    def _carry(self, memo: RequestMemo, written: dict[str, str | None], late: Any) -> None:
        super()._carry(memo, written, late)
        if late is not None:
            memo.mailboxes = [_mailbox(row) for row in late.fetchall()]

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
            f"({placeholders(25)})",
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

    def set_status(self, mailbox_id: str, status: FolderState) -> None:
        """The folder's STATUS as last listed: no client sees it, no change to log."""
        self._conn.execute(
            "UPDATE mailboxes SET status_uidvalidity = ?, status_uidnext = ?, "
            "status_messages = ?, status_unseen = ?, status_modseq = ? WHERE id = ?",
            (*_state_values(status), mailbox_id),
        )

    def set_sort_order(self, mailbox_id: str, sort_order: int) -> None:
        self._conn.execute(
            "UPDATE mailboxes SET sort_order = ? WHERE id = ?", (sort_order, mailbox_id)
        )
        self.log_updated(MAILBOX, mailbox_id)

    def set_synced(self, mailbox_id: str, state: FolderState | None) -> None:
        update = (
            "UPDATE mailboxes SET synced_uidvalidity = ?, synced_uidnext = ?, "
            "synced_messages = ?, synced_unseen = ?, synced_modseq = ? WHERE id = ?"
        )
        values = (*_state_values(state), mailbox_id)
        if state is None:
            self._conn.execute(update, values)
            return
        # One of the two changes the row. The second, a folder's first sync (its counts
        # were the server's until now), is told by its row count, read at commit with the
        # count shares rather than waited for here (a round trip on a store across a
        # network).
        self._conn.execute(f"{update} AND synced_uidvalidity IS NOT NULL", values)
        first = self._conn.execute(f"{update} AND synced_uidvalidity IS NULL", values)
        self._first_syncs.append((mailbox_id, first))

    def _newly_indexed(self) -> set[str]:
        """The folders this transaction synced for the first time."""
        return {mailbox_id for mailbox_id, first in self._first_syncs if first.rowcount > 0}
