"""Which thread each new Email joins, for a whole batch of arrivals at once.

The cache reads what the batch needs first (the threads its Message-IDs already point to,
and which candidate threads hold Emails), then ``plan_threads`` decides in memory, in the
batch's order, exactly as adding the messages one at a time would: a message threads with
an earlier one of the same batch, and the first message to name a Message-ID claims it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bridge.store.ids import derive_id
from bridge.store.records import NewMessage


class Arrival(msgspec.Struct, frozen=True):
    email_id: str
    message: NewMessage
    thread_id: str
    # Whether the thread held Emails before this one joined it.
    thread_existed: bool
    # (Message-ID, thread) pairs this arrival adds to thread_refs.
    new_refs: tuple[tuple[str, str], ...] = ()


class Facts(msgspec.Struct):
    """What the store holds that a batch of arrivals depends on."""

    # The header index's highest entry (new rows number on from it).
    top_entry: int
    # Email -> thread, for the batch's Emails already held.
    thread_of: dict[str, str] = msgspec.field(default_factory=dict)
    # Message-ID -> thread, for the Message-IDs the batch names.
    ref_threads: dict[str, str] = msgspec.field(default_factory=dict)
    # Thread -> base subject (None: none recorded), for those threads.
    subjects: dict[str, str | None] = msgspec.field(default_factory=dict)
    # Threads that hold Emails, among those the batch may join.
    occupied: set[str] = msgspec.field(default_factory=set)


def lookup_ids(fresh: dict[str, NewMessage]) -> list[str]:
    """The Message-IDs whose threads the batch's reference threading reads."""
    found = {
        message_id
        for message in fresh.values()
        if message.thread_key is None
        for message_id in (*message.message_ids, *message.referenced_ids)
    }
    return sorted(found)


def own_thread(email_id: str, message: NewMessage) -> str:
    """The thread of a message that matches none: the server's, or one named after it."""
    if message.thread_key is not None:
        return derive_id("t", message.thread_key)
    return "t" + email_id[1:]


def plan_threads(
    fresh: dict[str, NewMessage],
    ref_threads: dict[str, str],
    subjects: dict[str, str | None],
    occupied: set[str],
) -> list[Arrival]:
    """Place each new Email, in order. ``ref_threads`` (Message-ID -> thread), ``subjects``
    (thread -> base subject) and ``occupied`` (threads with Emails) are what the store
    holds; they are updated here as each arrival changes them."""
    arrivals: list[Arrival] = []
    for email_id, message in fresh.items():
        new_refs: list[tuple[str, str]] = []
        if message.thread_key is not None:
            thread_id = own_thread(email_id, message)
        else:
            thread_id = _matching_thread(message, ref_threads, subjects) or own_thread(
                email_id, message
            )
            for message_id in (*message.message_ids, *message.referenced_ids):
                if message_id not in ref_threads:  # the first to name a Message-ID keeps it
                    ref_threads[message_id] = thread_id
                    new_refs.append((message_id, thread_id))
        existed = thread_id in occupied
        if not existed:
            subjects[thread_id] = message.base_subject
            occupied.add(thread_id)
        arrivals.append(Arrival(email_id, message, thread_id, existed, tuple(new_refs)))
    return arrivals


def _matching_thread(
    message: NewMessage, ref_threads: dict[str, str], subjects: dict[str, str | None]
) -> str | None:
    """A thread that shares a Message-ID with the message and has its base subject."""
    for message_id in (*message.referenced_ids, *message.message_ids):
        thread_id = ref_threads.get(message_id)
        if thread_id is not None and subjects.get(thread_id) in (None, message.base_subject):
            return thread_id
    return None


def first_of_each(pairs: Iterable[tuple[str, NewMessage]]) -> dict[str, NewMessage]:
    """Each Email's first message in the batch (a second location of it adds no Email)."""
    fresh: dict[str, NewMessage] = {}
    for email_id, message in pairs:
        fresh.setdefault(email_id, message)
    return fresh
