"""The cache's messages: where each Email is (folder, UID, flags), the Emails and their
threads, written as folders sync."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence

from bridge.store import arrivals
from bridge.store.folder_counts import FolderCounts
from bridge.store.ids import derive_id
from bridge.store.journal import (
    EMAIL,
    HEADER_BACKFILL,
    MAILBOX,
    THREAD,
    in_chunks,
    placeholders,
)
from bridge.store.records import (
    FlagUpdate,
    HeaderText,
    Location,
    NewMessage,
    SortKeys,
)

# SQLite's INSERT OR REPLACE of a location, in the upsert both databases know.
_REPLACE_LOCATION = (
    "ON CONFLICT(mailbox_id, uid) DO UPDATE SET email_id = excluded.email_id, "
    "flags = excluded.flags, modseq = excluded.modseq, received_at = excluded.received_at"
)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _keywords_text(keywords: Iterable[str]) -> str:
    return " ".join(sorted(keywords))


def _is_unread(keywords: Iterable[str]) -> bool:
    found = set(keywords)
    return "$seen" not in found and "$draft" not in found


def _sort_values(keys: SortKeys | None) -> tuple[str | int | None, ...]:
    if keys is None:
        return (None, None, None, None)
    return (keys.from_, keys.to, keys.subject, keys.sent_at)


def _header_values(text: HeaderText | None) -> tuple[str | int | None, ...]:
    if text is None:
        return (None,) * 6
    return (text.from_, text.to, text.cc, text.bcc, text.subject, text.inexact)


class Messages(FolderCounts):
    """Locations and Emails, and the folder changes that drop locations."""

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
                with self._conn.together():
                    pending = [
                        self._conn.execute(
                            f"{query} AND uid IN ({placeholders(len(chunk))})",
                            (mailbox_id, *chunk),
                        )
                        for chunk in in_chunks(sorted(set(uids or ())))
                    ]
                    if from_uid is not None:
                        pending.append(
                            self._conn.execute(f"{query} AND uid >= ?", (mailbox_id, from_uid))
                        )
                    rows = [row for answer in pending for row in answer.fetchall()]
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

        All that the changes depend on is asked for before any row changes, and read at
        once: where the store pipelines, one round trip for the locations and the arrivals'
        facts and one for the threads' count shares, not one per step.
        """
        removed = list(removed)
        gone = set(removed)
        flag_updates = [u for u in flag_updates if u.uid not in gone]
        added = list(added)
        email_ids = [derive_id("e", message.email_key) for message in added]
        firsts = arrivals.first_of_each(zip(email_ids, added, strict=True))
        read_located = self._ask_located(mailbox_id, [*removed, *(u.uid for u in flag_updates)])
        read_facts = self._ask_arrival_facts(firsts) if added else None
        located = read_located()
        facts = read_facts() if read_facts is not None else arrivals.Facts(top_entry=0)
        fresh = {e: m for e, m in firsts.items() if e not in facts.thread_of}
        placed = arrivals.plan_threads(fresh, facts.ref_threads, facts.subjects, facts.occupied)
        # The threads of the locations named, of Emails already held, and those new Emails
        # join (a location of an Email not yet in emails counts for nothing).
        self._note_threads({
            *(thread_id for _, thread_id in located.values() if thread_id is not None),
            *facts.thread_of.values(),
            *(a.thread_id for a in placed if a.thread_existed),
        })  # fmt: skip
        # A thread with no Email yet adds nothing to any count: nothing to note.
        self._touched_threads.update(a.thread_id for a in placed if not a.thread_existed)
        self._delete_locations(mailbox_id, removed)
        moved = {located[uid][0] for uid in removed if uid in located}
        flagged = self._update_flags(mailbox_id, flag_updates, located)
        moved |= self._add_locations(mailbox_id, added, email_ids, facts, placed)
        if any(message.header_text is None for message in fresh.values()):
            # The header index of a first page: the indexer fills it in.
            self._set_meta(HEADER_BACKFILL, "1")
        # An Email created here with a second location in this delta is derived from all
        # of them below, like any other.
        return (fresh.keys() - moved) | self._refresh_emails(moved | flagged, moved)

    def _ask_located(
        self, mailbox_id: str, uids: Sequence[int]
    ) -> Callable[[], dict[int, tuple[str, str | None]]]:
        """Send the read of the Emails (and their threads) at these UIDs; the returned
        function reads it: UID -> (Email, thread)."""
        pending = [self._conn.execute(
            "SELECT l.uid, l.email_id, e.thread_id FROM locations l LEFT JOIN emails e "
            f"ON e.id = l.email_id WHERE l.mailbox_id = ? AND l.uid IN ({placeholders(len(c))})",
            (mailbox_id, *c),
        ) for c in in_chunks(sorted(set(uids)))]  # fmt: skip

        def read() -> dict[int, tuple[str, str | None]]:
            return {
                uid: (email_id, thread_id)
                for rows in pending
                for uid, email_id, thread_id in rows.fetchall()
            }

        return read

    def _update_flags(
        self,
        mailbox_id: str,
        updates: Sequence[FlagUpdate],
        located: dict[int, tuple[str, str | None]],
    ) -> set[str]:
        """New flags at known locations; returns the Emails there."""
        known = [u for u in updates if u.uid in located]
        self._conn.executemany(
            "UPDATE locations SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
            [(_keywords_text(u.keywords), u.modseq, mailbox_id, u.uid) for u in known],
        )
        return {located[u.uid][0] for u in known}

    def mirror_locations(self, source_id: str, target_id: str, uids: Sequence[int]) -> set[str]:
        """Make ``target``'s locations at ``uids`` copies of ``source``'s (Email, flags,
        mod-sequence, date): how a folder that shows another's messages under the same
        UIDs (a Gmail label, a view of All Mail) follows it. Returns the Emails that
        changed."""
        uids = sorted(set(uids))
        # Both reads answered in one round trip where the store pipelines.
        read_located = self._ask_located(source_id, uids)
        before = self.locations(target_id, uids=uids)
        located = read_located()
        self._note_threads({thread_id for _, thread_id in located.values() if thread_id})
        for chunk in in_chunks(uids):
            self._conn.execute(
                "INSERT INTO locations(mailbox_id, uid, email_id, flags, modseq, received_at) "
                "SELECT ?, uid, email_id, flags, modseq, received_at FROM locations "
                f"WHERE mailbox_id = ? AND uid IN ({placeholders(len(chunk))}) {_REPLACE_LOCATION}",
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
        self,
        mailbox_id: str,
        added: Sequence[NewMessage],
        email_ids: Sequence[str],
        facts: arrivals.Facts,
        placed: Sequence[arrivals.Arrival],
    ) -> set[str]:
        """Record new locations, their Emails placed in threads already; returns the
        Emails they add a location to (held before, or at a second UID of the batch). What
        adding them one at a time would do, in a few statements for the whole batch."""
        if not added:
            return set()
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
        twice = {e for e, n in collections.Counter(email_ids).items() if n > 1}
        return twice | (facts.thread_of.keys() & set(email_ids))

    def _ask_arrival_facts(self, batch: dict[str, NewMessage]) -> Callable[[], arrivals.Facts]:
        """Send the reads of what the store holds that a batch of arrivals depends on; the
        returned function reads them."""
        ids = sorted(batch)
        own = sorted({arrivals.own_thread(e, m) for e, m in batch.items()})
        lookups = arrivals.lookup_ids(batch)
        top = self._conn.execute("SELECT COALESCE(MAX(entry), 0) FROM header_text")
        held = [self._conn.execute(
            f"SELECT id, thread_id FROM emails WHERE id IN ({placeholders(len(c))})", tuple(c)
        ) for c in in_chunks(ids)]  # fmt: skip
        occupied = [self._conn.execute(
            f"SELECT DISTINCT thread_id FROM emails WHERE thread_id IN ({placeholders(len(c))})",
            tuple(c),
        ) for c in in_chunks(own)]  # fmt: skip
        refs, ref_occupied = [], []
        for chunk in in_chunks(lookups):
            marks = placeholders(len(chunk))
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

        def read() -> arrivals.Facts:
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

        return read

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
        """Drop these locations; returns the Emails they held."""
        held = {email_id for email_id, _ in self._ask_located(mailbox_id, uids)().values()}
        self._delete_locations(mailbox_id, uids)
        return held

    def _delete_locations(self, mailbox_id: str, uids: Sequence[int]) -> None:
        for chunk in in_chunks(uids):
            marks = placeholders(len(chunk))
            self._conn.execute(
                f"DELETE FROM locations WHERE mailbox_id = ? AND uid IN ({marks})",
                (mailbox_id, *chunk),
            )

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
        for chunk in in_chunks(wanted):
            marks = placeholders(len(chunk))
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

    # -- immutable facts of Emails (no change to log) ----------------------------------

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

    def set_header_texts(self, mailbox_id: str, texts: dict[int, HeaderText]) -> None:
        """The header index's keys of messages by UID: immutable, no change to log."""
        with self._lock:
            self._conn.executemany(
                "UPDATE header_text SET from_text = ?, to_text = ?, cc_text = ?, bcc_text = ?, "
                "subject_text = ?, inexact = ? WHERE email_id = "
                "(SELECT email_id FROM locations WHERE mailbox_id = ? AND uid = ?)",
                [(*_header_values(text), mailbox_id, uid) for uid, text in texts.items()],
            )
