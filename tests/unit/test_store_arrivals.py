"""A batch of arrivals lands exactly as the same messages added one at a time would."""

from __future__ import annotations

import random

import pytest

from bridge.store.cache import Cache
from bridge.store.journal import EMAIL, THREAD
from bridge.store.records import NewMessage
from tests.support.stores import add_mailbox, open_test_cache

SUBJECTS = ("plans", "lunch", "report")


def _random_messages(rng: random.Random, count: int, first_uid: int) -> list[NewMessage]:
    """Messages that reply to each other (in any order), share subjects, repeat Emails
    (one Email at two UIDs) and sometimes carry the server's thread id."""
    messages = []
    for n in range(count):
        key = f"m{rng.randrange(count * 2)}"
        refs = tuple(f"m{rng.randrange(count * 2)}@example" for _ in range(rng.randrange(3)))
        messages.append(
            NewMessage(
                uid=first_uid + n,
                email_key=key,
                keywords=frozenset(rng.sample(["$seen", "$flagged", "work"], rng.randrange(3))),
                thread_key=f"T{rng.randrange(4)}" if rng.random() < 0.2 else None,
                message_ids=(f"{key}@example",),
                referenced_ids=refs,
                base_subject=rng.choice(SUBJECTS),
                size=100 + n,
            )
        )
    return messages


EMAIL_COLUMNS = (
    "id, thread_id, keywords, unread, size, received_at, summary, sort_from, sort_to, "
    "sort_subject, sent_at, has_attachment"
)
HEADER_COLUMNS = "email_id, from_text, to_text, cc_text, bcc_text, subject_text, inexact"


def _picture(cache: Cache, since: dict[str, int]) -> dict[str, object]:
    def rows(query: str) -> list[tuple[object, ...]]:
        return sorted(tuple(row) for row in cache._conn.execute(query).fetchall())

    return {
        "emails": rows(f"SELECT {EMAIL_COLUMNS} FROM emails"),
        "keywords": rows("SELECT keyword, email_id FROM email_keywords"),
        "threads": rows("SELECT id, base_subject FROM threads"),
        "refs": rows("SELECT message_id, thread_id FROM thread_refs"),
        "locations": rows(
            "SELECT mailbox_id, uid, email_id, flags, modseq, received_at FROM locations"
        ),
        "headers": rows(f"SELECT {HEADER_COLUMNS} FROM header_text"),
        "counts": sorted((r.name, r.counts) for r in cache.mailboxes()),
        "changes": {
            kind: (sorted(c.created), sorted(c.updated), sorted(c.destroyed))
            for kind in (EMAIL, THREAD)
            for c in [cache.changes(kind, since[kind], None)]
        },
    }


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_lands_as_one_message_at_a_time_would(seed: int) -> None:
    rng = random.Random(seed)
    earlier = _random_messages(rng, 15, 1)
    batch = _random_messages(rng, 40, 100)
    pictures = []
    for one_at_a_time in (False, True):
        cache = open_test_cache()
        inbox = add_mailbox(cache, "INBOX", "inbox")
        archive = add_mailbox(cache, "Archive", "archive")
        with cache.transaction():
            cache.apply_folder_delta(archive, added=earlier)
        since = {EMAIL: cache.state(EMAIL), THREAD: cache.state(THREAD)}
        with cache.transaction():
            if one_at_a_time:
                for message in batch:
                    cache.apply_folder_delta(inbox, added=[message])
            else:
                cache.apply_folder_delta(inbox, added=batch)
        pictures.append(_picture(cache, since))
        cache.close()
    batched, single = pictures
    assert batched == single
    assert batched["emails"] and batched["changes"][EMAIL][0]  # the batch did add Emails


def test_a_reply_and_its_parent_in_one_batch_share_a_thread() -> None:
    cache = open_test_cache()
    inbox = add_mailbox(cache, "INBOX")
    reply = NewMessage(
        uid=1, email_key="r", keywords=frozenset(), message_ids=("r@x",),
        referenced_ids=("p@x",), base_subject="plans",
    )  # fmt: skip
    parent = NewMessage(
        uid=2, email_key="p", keywords=frozenset(), message_ids=("p@x",), base_subject="plans"
    )
    with cache.transaction():
        created = cache.apply_folder_delta(inbox, added=[reply, parent])
    records = cache.emails(sorted(created))
    assert len(records) == 2
    assert len({record.thread_id for record in records.values()}) == 1


def test_a_statement_that_fails_fails_its_transaction_and_leaves_no_trace() -> None:
    """On a store that pipelines (PostgreSQL), the error surfaces at the next read or at
    COMMIT rather than at the statement: the transaction must still roll back whole, and
    the cache carry on."""
    cache = open_test_cache()
    inbox = add_mailbox(cache, "INBOX")
    first = NewMessage(uid=1, email_key="a", keywords=frozenset(), message_ids=("a@x",))
    with cache.transaction():
        (held,) = cache.apply_folder_delta(inbox, added=[first])
    before = cache.state(EMAIL)
    second = NewMessage(uid=2, email_key="b", keywords=frozenset(), message_ids=("b@x",))
    with pytest.raises(Exception, match=r"(?i)unique"), cache.transaction():
        cache.apply_folder_delta(inbox, added=[second])
        cache._conn.execute(  # the id of an Email already held: a unique key broken
            "INSERT INTO emails(id, thread_id, keywords, unread, size, received_at) "
            "VALUES (?, 't', '', 0, 0, 0)",
            (held,),
        )
    assert cache.state(EMAIL) == before
    assert sorted(cache.locations(inbox)) == [1]
    third = NewMessage(uid=3, email_key="c", keywords=frozenset(), message_ids=("c@x",))
    with cache.transaction():
        assert len(cache.apply_folder_delta(inbox, added=[third])) == 1
    assert sorted(cache.locations(inbox)) == [1, 3] and cache.state(EMAIL) > before
