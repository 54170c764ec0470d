"""The cache's change log, states and counts, on an in-memory database."""

from __future__ import annotations

import msgspec
import pytest

from bridge.mail.header_text import INEXACT_BIT
from bridge.store import email_query
from bridge.store.cache import Cache
from bridge.store.email_query import (
    any_of,
    header_holds,
    in_mailbox,
    negation,
    shaped,
    size_at_least,
)
from bridge.store.journal import EMAIL, EMAIL_DELIVERY, IDENTITY, MAILBOX, THREAD
from bridge.store.records import (
    Counts,
    FlagUpdate,
    FolderState,
    HeaderText,
    MailboxRecord,
    NewMessage,
)
from tests.support.stores import add_mailbox, open_test_cache


@pytest.fixture
def cache() -> Cache:
    return open_test_cache()


def message(uid: int, key: str, *keywords: str, refs: tuple[str, ...] = ()) -> NewMessage:
    return NewMessage(
        uid=uid,
        email_key=key,
        keywords=frozenset(keywords),
        message_ids=(f"{key}@example",),
        referenced_ids=refs,
    )


def everything(cache: Cache) -> set[str]:
    return {row[0] for row in cache.email_facts()}


def test_state_round_trip_and_foreign_states(cache: Cache) -> None:
    add_mailbox(cache, "INBOX", "inbox")
    state = cache.encode_state(cache.state(MAILBOX))
    assert cache.decode_state(state) == cache.state(MAILBOX)
    assert cache.decode_state("other-1") is None
    assert cache.decode_state(f"{cache.epoch}-999999") is None  # from the future
    assert cache.decode_state("garbage") is None


def test_changes_report_created_updated_destroyed(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    start = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a"), message(2, "b")])
    middle = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(
            inbox, removed=[2], flag_updates=[FlagUpdate(1, frozenset({"$seen"}))]
        )
        cache.purge_orphans(everything(cache))
    changes = cache.changes(EMAIL, start, None)
    # b was created and destroyed inside the window: the client never needs to hear of it.
    assert len(changes.created) == 1 and changes.updated == [] and changes.destroyed == []
    later = cache.changes(EMAIL, middle, None)
    assert len(later.updated) == 1 and len(later.destroyed) == 1 and later.created == []
    assert later.new_modseq == cache.state(EMAIL)


def test_max_changes_pages_through_the_log(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    start = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(uid, f"m{uid}") for uid in range(1, 6)])
    seen: list[str] = []
    since = start
    while True:
        page = cache.changes(EMAIL, since, 2)
        seen += page.created
        since = page.new_modseq
        if not page.has_more:
            break
    assert len(seen) == 5 and len(set(seen)) == 5


def test_flag_change_without_keyword_change_is_not_an_update(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a", "$seen")])
    before = cache.state(EMAIL)
    with cache.transaction():
        changed = cache.apply_folder_delta(
            inbox, flag_updates=[FlagUpdate(1, frozenset({"$seen"}), modseq=9)]
        )
    assert changed == set()
    assert cache.state(EMAIL) == before


def test_one_email_in_two_folders(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    archive = add_mailbox(cache, "Archive", "archive")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "same")])
        cache.apply_folder_delta(archive, added=[message(7, "same")])
    assert cache.locations(inbox)[1].email_id == cache.locations(archive)[7].email_id
    since = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1])
        cache.purge_orphans(everything(cache))
    changes = cache.changes(EMAIL, since, None)
    assert changes.updated and not changes.destroyed  # still in Archive
    with cache.transaction():
        cache.apply_folder_delta(archive, removed=[7])
    # Out of every folder, but a MOVE may still bring it back: destroyed only by the purge.
    assert not cache.changes(EMAIL, since, None).destroyed
    with cache.transaction():
        cache.purge_orphans(everything(cache))
    assert cache.changes(EMAIL, since, None).destroyed


def test_a_move_is_an_update(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    archive = add_mailbox(cache, "Archive", "archive")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "moved")])
    since = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1])
    with cache.transaction():
        cache.apply_folder_delta(archive, added=[message(4, "moved")])
        cache.purge_orphans(everything(cache))
    changes = cache.changes(EMAIL, since, None)
    assert len(changes.updated) == 1 and not changes.created and not changes.destroyed


def test_counts_follow_the_trash_rule(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    trash = add_mailbox(cache, "Trash", "trash")
    with cache.transaction():
        # One thread: a read reply in INBOX and its unread parent in the trash.
        cache.apply_folder_delta(trash, added=[message(1, "parent")])
        cache.apply_folder_delta(
            inbox, added=[message(1, "reply", "$seen", refs=("parent@example",))]
        )
    counts = {record.id: record.counts for record in cache.mailboxes()}
    assert counts[inbox] == Counts(total_emails=1, unread_emails=0, total_threads=1,
                                   unread_threads=0)  # fmt: skip
    assert counts[trash] == Counts(total_emails=1, unread_emails=1, total_threads=1,
                                   unread_threads=1)  # fmt: skip


def test_counts_only_changes_are_told_apart(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    since = cache.state(MAILBOX)
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a")])
    changes = cache.changes(MAILBOX, since, None)
    assert changes.updated == [inbox] and changes.counts_only
    assert cache.changed_since(MAILBOX, since, properties_only=True) == set()
    with cache.transaction():
        cache.set_sort_order(inbox, 5)
    assert not cache.changes(MAILBOX, since, None).counts_only


def test_threads_join_by_references_in_either_order(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    with cache.transaction():
        # The reply arrives first; its parent must still land in the same thread.
        cache.apply_folder_delta(inbox, added=[message(1, "reply", refs=("root@example",))])
        cache.apply_folder_delta(inbox, added=[message(2, "root")])
        cache.apply_folder_delta(inbox, added=[message(3, "other")])
    rows = cache._conn.execute("SELECT id, thread_id FROM emails").fetchall()
    threads = {thread for _, thread in rows}
    assert len(rows) == 3 and len(threads) == 2
    assert cache.state(THREAD) > 0


def test_rollback_leaves_no_trace(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    before = cache.state(EMAIL)
    with pytest.raises(RuntimeError), cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a")])
        raise RuntimeError("crash half way")
    assert cache.locations(inbox) == {}
    assert cache.state(EMAIL) == before
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a")])
    assert cache.changes(EMAIL, before, None).created


def test_pruned_tombstones_set_a_horizon(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "a")])
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1])
        cache.purge_orphans(everything(cache))
    assert cache.prune_tombstones(EMAIL, cache.state(EMAIL)) == 1
    assert cache.horizon(EMAIL) == cache.state(EMAIL)


def test_reopening_keeps_epoch_and_counter(tmp_path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = Cache.open(path)
    add_mailbox(first, "INBOX")
    epoch, state = first.epoch, first.state(MAILBOX)
    first.close()
    second = Cache.open(path)
    assert second.epoch == epoch and second.state(MAILBOX) == state
    assert second.decode_state(second.encode_state(state)) == state


def test_prune_keeps_recent_history(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(uid, f"m{uid}") for uid in range(1, 4)])
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1, 2, 3])
        cache.purge_orphans(everything(cache))
    assert cache.prune(keep_changes=1_000) == 0
    assert cache.horizon(EMAIL) == 0
    assert cache.prune(keep_changes=0) == 3 + 3  # three Email and three Thread tombstones
    assert cache.horizon(EMAIL) == cache.counter


def test_pages_end_at_true_intermediate_states(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX")
    since = cache.state(EMAIL)
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(uid, f"m{uid}") for uid in range(1, 5)])
    # The first Email changes again later: a page that ends before that must still call it
    # created, and the next page updated.
    with cache.transaction():
        cache.apply_folder_delta(inbox, flag_updates=[FlagUpdate(1, frozenset({"$seen"}))])
    changed = cache.locations(inbox)[1].email_id
    first = cache.changes(EMAIL, since, 2)
    second = cache.changes(EMAIL, first.new_modseq, 10)
    assert first.has_more and len(first.created) == 2 and not first.updated
    assert len(set(first.created) | set(second.created)) == 4
    if changed in first.created:
        assert second.updated == [changed] and changed not in second.created
    else:
        assert changed in second.created and not second.updated
    everything_at_once = cache.changes(EMAIL, since, None)
    assert len(everything_at_once.created) == 4 and not everything_at_once.updated


def test_counts_kept_by_difference_match_a_full_count(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    archive = add_mailbox(cache, "Archive", "archive")
    trash = add_mailbox(cache, "Trash", "trash")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(u, f"m{u}") for u in range(1, 9)])
        cache.apply_folder_delta(
            archive, added=[message(20 + u, f"r{u}", refs=(f"m{u}@example",)) for u in (1, 2)]
        )
    with cache.transaction():
        cache.apply_folder_delta(inbox, flag_updates=[FlagUpdate(1, frozenset({"$seen"}))])
        cache.apply_folder_delta(inbox, removed=[2])
        cache.apply_folder_delta(trash, added=[message(40, "m2")])
        cache.apply_folder_delta(archive, added=[message(50, "m3")])
        # One message filed twice in a folder is one Email there.
        cache.apply_folder_delta(inbox, added=[message(30, "m4")])
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[5, 6])
        cache.apply_folder_delta(inbox, flag_updates=[FlagUpdate(30, frozenset({"$seen"}))])
        cache.purge_orphans(everything(cache))
    kept = {record.id: record.counts for record in cache.mailboxes()}
    with cache.transaction():
        cache.recount(None)
    assert {record.id: record.counts for record in cache.mailboxes()} == kept
    assert kept[inbox].total_emails == 5 and kept[trash].total_emails == 1


def test_a_folders_first_sync_trades_the_servers_counts_for_its_own(cache: Cache) -> None:
    """Until its first sync a folder counts what its STATUS says; the transaction of that
    sync counts it from the cache, and later ones move its counts by difference."""
    archive = cache.mailbox_id_for("guid:Archive")
    status = FolderState(uidvalidity=7, uidnext=501, messages=500, unseen=200)
    with cache.transaction():
        cache.add_mailboxes([MailboxRecord(id=archive, upstream_key="guid:Archive",
                                           name="Archive", status=status)])  # fmt: skip
        cache.recount(())

    def counts() -> Counts:
        return next(r.counts for r in cache.mailboxes() if r.id == archive)

    assert counts() == Counts(500, 200, 500, 200)
    with cache.transaction():
        cache.apply_folder_delta(archive, added=[message(1, "a", "$seen"), message(2, "b")])
        cache.set_synced(archive, FolderState(uidvalidity=7, uidnext=3, messages=2))
    assert counts() == Counts(2, 1, 2, 1)
    with cache.transaction():
        cache.apply_folder_delta(archive, flag_updates=[FlagUpdate(2, frozenset({"$seen"}))])
        cache.set_synced(archive, FolderState(uidvalidity=7, uidnext=3, messages=2))
    assert counts() == Counts(2, 0, 2, 0)
    with cache.transaction():  # synced again, nothing changed
        cache.set_synced(archive, FolderState(uidvalidity=7, uidnext=3, messages=2))
    assert counts() == Counts(2, 0, 2, 0)
    assert next(r for r in cache.mailboxes() if r.id == archive).synced == FolderState(7, 3, 2)


def test_email_delivery_moves_only_when_an_email_is_added(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    archive = add_mailbox(cache, "Archive", "archive")
    before = cache.state(EMAIL_DELIVERY)
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "new")])
    delivered = cache.state(EMAIL_DELIVERY)
    assert delivered > before
    # A keyword change, a MOVE and a destroy change Emails but add none.
    with cache.transaction():
        cache.apply_folder_delta(inbox, flag_updates=[FlagUpdate(1, frozenset({"$seen"}), 3)])
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1])
        cache.apply_folder_delta(archive, added=[message(5, "new")])
        cache.purge_orphans(everything(cache))
    with cache.transaction():
        cache.apply_folder_delta(archive, removed=[5])
        cache.purge_orphans(everything(cache))
    assert cache.state(EMAIL) > delivered and cache.state(EMAIL_DELIVERY) == delivered
    # A transaction rolled back delivers nothing.
    with pytest.raises(RuntimeError), cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(2, "lost")])
        raise RuntimeError
    assert cache.state(EMAIL_DELIVERY) == delivered


def test_one_email_twice_in_one_delta_takes_the_keywords_of_both(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    since = cache.state(EMAIL)
    with cache.transaction():
        changed = cache.apply_folder_delta(
            inbox, added=[message(1, "same", "$seen"), message(2, "same", "$flagged")]
        )
    (email_id,) = changed
    assert cache.locations(inbox)[2].email_id == email_id
    (record,) = cache.emails([email_id]).values()
    assert record.keywords == frozenset({"$seen", "$flagged"})
    changes = cache.changes(EMAIL, since, None)
    assert changes.created == [email_id] and not changes.updated
    kept = {record.id: record.counts for record in cache.mailboxes()}
    with cache.transaction():
        cache.recount(None)
    assert {record.id: record.counts for record in cache.mailboxes()} == kept
    assert kept[inbox].total_emails == 1 and kept[inbox].unread_emails == 0


def test_mirrored_locations_follow_their_source_and_keep_counts(cache: Cache) -> None:
    all_mail = add_mailbox(cache, "All Mail", "all")
    label = add_mailbox(cache, "Work")
    with cache.transaction():
        cache.apply_folder_delta(all_mail, added=[message(u, f"m{u}") for u in range(1, 5)])
    start = cache.state(EMAIL)
    with cache.transaction():
        changed = cache.mirror_locations(all_mail, label, [2, 3])
    assert set(cache.locations(label)) == {2, 3}
    assert sorted(cache.changes(EMAIL, start, None).updated) == sorted(changed)
    assert len(changed) == 2  # their mailboxIds grew
    again = cache.state(EMAIL)
    with cache.transaction():
        assert cache.mirror_locations(all_mail, label, [2, 3]) == set()  # nothing moved
        cache.apply_folder_delta(all_mail, flag_updates=[FlagUpdate(3, frozenset({"$seen"}))])
        cache.mirror_locations(all_mail, label, [3])
    assert cache.locations(label)[3].keywords == {"$seen"}
    assert cache.changes(EMAIL, again, None).updated == [cache.locations(label)[3].email_id]
    kept = {record.id: record.counts for record in cache.mailboxes()}
    with cache.transaction():
        cache.recount(None)
    assert {record.id: record.counts for record in cache.mailboxes()} == kept
    assert kept[label].total_emails == 2 and kept[label].unread_emails == 1


def test_keyword_rows_follow_flag_changes_moves_and_destroys(cache: Cache) -> None:
    """email_keywords (what hasKeyword reads) holds exactly each Email's keywords: the
    rows that changed are written by their whole key, never by a scan of the table."""
    inbox = add_mailbox(cache, "INBOX", "inbox")
    archive = add_mailbox(cache, "Archive", "archive")

    def rows() -> set[tuple[str, str]]:
        with cache.sql() as conn:
            return set(conn.execute("SELECT keyword, email_id FROM email_keywords"))

    with cache.transaction():
        (first,) = cache.apply_folder_delta(inbox, added=[message(1, "a", "$seen", "x")])
        (second,) = cache.apply_folder_delta(inbox, added=[message(2, "b", "$seen")])
    assert rows() == {("$seen", first), ("x", first), ("$seen", second)}
    with cache.transaction():
        cache.apply_folder_delta(inbox, flag_updates=[FlagUpdate(1, frozenset({"$flagged"}))])
    assert rows() == {("$flagged", first), ("$seen", second)}
    with cache.transaction():  # a second location brings its flags to the Email
        cache.apply_folder_delta(archive, added=[message(7, "a", "$seen")])
    assert rows() == {("$flagged", first), ("$seen", first), ("$seen", second)}
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[1])
        cache.apply_folder_delta(archive, removed=[7])
        cache.purge_orphans([first])
    assert rows() == {("$seen", second)}


def test_the_full_text_index_follows_the_header_index(cache: Cache) -> None:
    """Every write of header_text (a new Email, the indexer's fill-in, a purge) reaches
    header_words, so its answers stay those of reading the rows."""
    inbox = add_mailbox(cache, "INBOX")
    texts = {
        1: HeaderText("ALICE SMITH ALICE EX TEST", "BOB", "", "", "QUARTERLY BUDGET"),
        2: HeaderText("ZOE", "ALICE", "", "", "BUDGETS", inexact=INEXACT_BIT["from"]),
        3: None,
    }
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[
            msgspec.structs.replace(message(uid, f"k{uid}"), header_text=text)
            for uid, text in texts.items()
        ])  # fmt: skip
    by_uid = {uid: location.email_id for uid, location in cache.locations(inbox).items()}

    def found(field: str, *words: str) -> set[str]:
        clause = header_holds(
            field, INEXACT_BIT[field], list(words), index=cache.header_words_match
        )
        return set(cache.query_page(clause, ()))

    assert found("from", "LIC") == {by_uid[1]}  # 2's From is inexact: not the index's
    assert found("subject", "BUDGET") == {by_uid[1], by_uid[2]}
    assert found("to", "ALICE") == {by_uid[2]}
    assert cache.header_common("to", ["ALICE"]) is False  # one Email in three
    assert cache.header_common("to", ["AL"]) is None  # too short for trigrams
    cache.set_header_texts(inbox, {3: HeaderText("", "ALICE ZED", "", "", "")})
    assert found("to", "ALICE") == {by_uid[2], by_uid[3]}
    assert cache.header_common("to", ["ALICE"]) is True  # two in three
    assert found("to", "ALICE", "ZED") == {by_uid[3]}
    with cache.transaction():
        cache.apply_folder_delta(inbox, removed=[2, 3])
        cache.purge_orphans([by_uid[2], by_uid[3]])
    assert found("to", "ALICE") == set()
    assert found("subject", "BUDGET") == {by_uid[1]}
    for common in (False, True):  # both shapes of the clause give one answer
        clause = header_holds("subject", INEXACT_BIT["subject"], ["QUA", "GE"], common=common,
                              index=cache.header_words_match)  # fmt: skip
        assert set(cache.query_page(clause, ())) == {by_uid[1]}


def test_a_page_walked_for_a_common_header_word_gives_the_sets_answer(cache: Cache) -> None:
    """A common header condition is tested row by row where a page walks in received order
    and stops at its end; pages, counts and other orders give what the set gives, in a
    folder and across the account, negated and joined with another condition."""
    inbox = add_mailbox(cache, "INBOX")
    other = add_mailbox(cache, "Other")
    subjects = {uid: "WEEKLY REPORT" if uid % 4 else "LUNCH" for uid in range(1, 13)}
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[
            msgspec.structs.replace(
                message(uid, f"w{uid}"), received_at=uid, size=uid * 100,
                header_text=HeaderText("ANN", "BOB", "", "", subject),
            )
            for uid, subject in subjects.items()
        ])  # fmt: skip
        cache.apply_folder_delta(other, added=[message(1, "w3"), message(2, "w4")])
    by_uid = {uid: location.email_id for uid, location in cache.locations(inbox).items()}
    weekly = header_holds("subject", INEXACT_BIT["subject"], ["REPORT"], common=True,
                          index=cache.header_words_match)  # fmt: skip
    assert weekly.walked is not None
    uids = sorted(subjects, reverse=True)  # newest first
    newest = [by_uid[uid] for uid in uids]
    reports = [by_uid[uid] for uid in uids if subjects[uid] != "LUNCH"]
    others = [by_uid[uid] for uid in uids if subjects[uid] == "LUNCH"]
    small = size_at_least(1_000)
    cases = {
        weekly: reports,
        negation(weekly): others,
        any_of([negation(weekly), small]): [e for e in newest if e in others or e in newest[:3]],
    }
    for clause, expected in cases.items():
        assert cache.query_page(clause, ()) == expected
        for mailbox_id in (None, inbox):
            assert cache.query_page(clause, (), limit=4, mailbox_id=mailbox_id) == expected[:4]
            assert (
                cache.query_page(clause, (), offset=2, limit=3, mailbox_id=mailbox_id)
                == (expected[2:5])
            )
            by_size = [email_query.by_column("size", True)]
            assert (
                cache.query_page(clause, by_size, limit=2, mailbox_id=mailbox_id)
                == (expected[::-1][:2])
            )
        assert cache.query_count(clause, mailbox_id=inbox) == len(expected)
    in_other = [e for e in reports if e in {by_uid[3], by_uid[4]}]
    assert cache.query_page(weekly, (), limit=5, mailbox_id=other) == in_other
    assert cache.query_page(any_of([weekly, in_mailbox(other)]), (), limit=1) == reports[:1]
    page, _ = email_query.select_ids(weekly, (), collapse=False, ranks=None, offset=0, limit=50)
    everything, _ = email_query.select_ids(
        weekly, (), collapse=False, ranks=None, offset=0, limit=None
    )
    assert "EXISTS" in page and "EXISTS" not in everything


def test_both_shapes_of_a_row_condition_give_one_answer(cache: Cache) -> None:
    """``shaped``: tested on each row or built as a set, in a folder's scope or not."""
    inbox = add_mailbox(cache, "INBOX")
    other = add_mailbox(cache, "Other")
    sizes = {1: 100, 2: 5_000, 3: 70_000, 4: 250}
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[
            msgspec.structs.replace(message(uid, f"s{uid}"), size=size, received_at=uid)
            for uid, size in sizes.items()
        ])  # fmt: skip
        cache.apply_folder_delta(other, added=[message(1, "s3")])
    by_uid = {uid: location.email_id for uid, location in cache.locations(inbox).items()}
    test = size_at_least(1_000)
    assert cache.share(test) == pytest.approx(2 / 4)
    for common in (False, True):
        clause = shaped(test, common=common)
        assert cache.query_page(clause, ()) == [by_uid[3], by_uid[2]]
        assert cache.query_page(clause, (), mailbox_id=inbox) == [by_uid[3], by_uid[2]]
        assert cache.query_count(clause, mailbox_id=other) == 1


def test_a_request_reads_states_once_and_never_newer_than_its_reads(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    before = cache.state(EMAIL)
    with cache.one_request():
        first = cache.state(EMAIL)
        # Another process's change (on a shared store it moves nothing of this one's).
        with cache.sql() as conn:
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = ?", (str(first + 7), f"state:{EMAIL}")
            )
        assert cache.state(EMAIL) == first == before  # older than the data: heard again
        names = [record.name for record in cache.mailboxes()]
        with cache.sql() as conn:
            conn.execute("UPDATE mailboxes SET name = 'Elsewhere' WHERE id = ?", (inbox,))
        assert [record.name for record in cache.mailboxes()] == names
        assert cache.mailbox(inbox) == cache.mailboxes()[0]
        with cache.transaction():
            cache.apply_folder_delta(inbox, added=[message(1, "k1")])
        assert cache.state(EMAIL) > first  # a change committed here is never hidden
        assert [record.name for record in cache.mailboxes()] == ["Elsewhere"]
    assert cache.state(EMAIL) == cache.states([EMAIL])[EMAIL]


def test_a_request_keeps_its_reads_across_its_own_commit(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a commit of its own, a request answers the states that commit wrote without
    reading ``meta`` again (a round trip on PostgreSQL), and the rest as it read them;
    where the store pipelines, the folders come back with the commit too."""
    inbox = add_mailbox(cache, "INBOX", "inbox")
    sent: list[str] = []
    execute = cache._conn.execute

    def counted(sql: str, *args: object) -> object:
        sent.append(sql)
        return execute(sql, *args)

    monkeypatch.setattr(cache._conn, "execute", counted)
    with cache.one_request():
        first = cache.states([EMAIL, IDENTITY])
        with cache.sql() as conn:  # another process's change after the request read
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value",
                ("state:Identity", str(first[IDENTITY] + 9)),
            )
        with cache.transaction():
            cache.apply_folder_delta(inbox, added=[message(1, "k1")])
        sent.clear()
        after = cache.states([EMAIL, IDENTITY])
        assert after[EMAIL] > first[EMAIL]  # its own change, never hidden
        # A state it hands out is one it knows (a shared store reads the counter for this).
        assert cache.decode_state(cache.encode_state(after[EMAIL])) == after[EMAIL]
        assert cache.states([EMAIL]) == {EMAIL: after[EMAIL]}
        assert after[IDENTITY] == first[IDENTITY]  # never newer than what it read
        assert not [sql for sql in sent if "FROM meta" in sql]
        (record,) = cache.mailboxes()
        assert record.counts.total_emails == 1
        assert bool([sql for sql in sent if "FROM mailboxes" in sql]) != cache.pipelines
    assert cache.states([IDENTITY])[IDENTITY] == first[IDENTITY] + 9  # the next request's


def test_reads_together_answer_each_and_fail_alone(cache: Cache) -> None:
    inbox = add_mailbox(cache, "INBOX", "inbox")
    with cache.transaction():
        cache.apply_folder_delta(inbox, added=[message(1, "k1"), message(2, "k2")])
    ids = sorted(everything(cache))
    assert sorted(cache.emails(ids)) == ids
    with cache.sql() as conn, pytest.raises(Exception), conn.together():  # noqa: B017
        conn.execute("SELECT no_such_column FROM emails").fetchall()
    assert sorted(cache.emails(ids)) == ids  # the connection goes on working
